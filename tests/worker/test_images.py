# Image resolution: references normalised as Docker does, found in CVMFS-style trees or the
# shared cache, and prepared into that cache by one job at a time without half-made images.
import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from scailfin_exec.job import ImageSources
from scailfin_exec.worker import images
from scailfin_exec.worker.images import ImageError, prepare_cached
from scailfin_exec.worker.references import ReferenceError, parse_reference
from scailfin_exec.worker.runtimes import RUNTIMES

from ..conftest import run_shim


@pytest.mark.fast
@pytest.mark.parametrize("text, normalised", [
    ("alpine", "docker.io/library/alpine:latest"),
    ("docker.io/bash:4.4", "docker.io/library/bash:4.4"),
    ("docker://python:3-slim", "docker.io/library/python:3-slim"),
    ("registry.hub.docker.com/library/alpine:3.20", "docker.io/library/alpine:3.20"),
    ("reanahub/reana-env-root6:6.18.04", "docker.io/reanahub/reana-env-root6:6.18.04"),
    ("ghcr.io/org/team/img:1.0", "ghcr.io/org/team/img:1.0"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    ("alpine@sha256:" + "a" * 64, "docker.io/library/alpine@sha256:" + "a" * 64),
])
def test_references_are_normalised_as_docker_does(text, normalised):
    assert str(parse_reference(text)) == normalised


@pytest.mark.fast
@pytest.mark.parametrize("text", ["Alpine", "a b", "", "alpine:", "alpine@sha256:xyz", "-x/y"])
def test_invalid_references_are_refused(text):
    with pytest.raises(ReferenceError, match="invalid image reference"):
        parse_reference(text)


@pytest.mark.fast
def test_unpacked_tree_uses_cvmfs_layout():
    ref = parse_reference("alpine:3.20")
    assert ref.tree_candidates("/cvmfs/unpacked.cern.ch")[0] == "/cvmfs/unpacked.cern.ch/registry.hub.docker.com/library/alpine:3.20"
    assert ref.shifter_name == "docker:alpine:3.20"
    assert parse_reference("ghcr.io/o/i:1").shifter_name == "docker:ghcr.io/o/i:1"


@pytest.mark.fast
def test_apptainer_prefers_a_sif_in_the_tree_and_charliecloud_the_directory(tmp_path):
    base = tmp_path / "registry.hub.docker.com" / "library" / "alpine:latest"
    base.mkdir(parents=True)
    (tmp_path / "registry.hub.docker.com" / "library" / "alpine:latest.sif").write_text("sif")
    sources = ImageSources([str(tmp_path)], str(tmp_path / "cache"), False)
    sif = images.resolve(RUNTIMES["apptainer"], "/usr/bin/apptainer", "alpine", sources, {})
    directory = images.resolve(RUNTIMES["charliecloud"], "/usr/bin/ch-run", "alpine", sources, {})
    assert (sif.kind, sif.location) == ("sif", str(base) + ".sif")
    assert (directory.kind, directory.location) == ("dir", str(base))


@pytest.mark.fast
def test_missing_image_lists_every_place_tried(tmp_path):
    sources = ImageSources([str(tmp_path / "root")], str(tmp_path / "cache"), False)
    with pytest.raises(ImageError) as info:
        images.resolve(RUNTIMES["charliecloud"], "/usr/bin/ch-run", "nope:1", sources, {})
    message = str(info.value)
    assert message.startswith("image docker.io/library/nope:1 not found for charliecloud: ")
    assert f"not in {tmp_path}/root ({tmp_path}/root/registry.hub.docker.com/library/nope:1)" in message
    assert f"not in the cache ({tmp_path}/cache/dir/docker.io_s_library_s_nope:1)" in message
    assert "pulling is disabled" in message


@pytest.mark.fast
def test_image_given_as_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        images.resolve(RUNTIMES["charliecloud"], "/usr/bin/ch-run", str(tmp_path / "nothing"), ImageSources(), {})


def _slow_producer(final, log, delay):
    def produce(tmp):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} start\n")
        os.makedirs(tmp)
        for i in range(20):  # written piece by piece: a reader of tmp would see it half-made
            with open(os.path.join(tmp, f"part{i}"), "w") as f:
                f.write("x" * 1000)
            time.sleep(delay / 20)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} end\n")
    return prepare_cached(final, produce)


@pytest.mark.fast
def test_concurrent_preparation_produces_once_and_never_exposes_a_partial_image(tmp_path):
    final, log = str(tmp_path / "cache" / "img"), str(tmp_path / "log")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        waiting = [pool.apply_async(_slow_producer, (final, log, 1.0)) for _ in range(4)]
        seen_partial = False
        while not all(w.ready() for w in waiting):
            if os.path.exists(final) and len(os.listdir(final)) != 20:
                seen_partial = True
            time.sleep(0.01)
        made = [w.get() for w in waiting]
    assert made.count(True) == 1 and made.count(False) == 3
    assert open(log).read().count("start") == 1
    assert not seen_partial and sorted(os.listdir(final)) == sorted(f"part{i}" for i in range(20))
    assert sorted(os.listdir(tmp_path / "cache")) == ["img", "img.lock"]


@pytest.mark.fast
def test_a_temporary_left_by_a_killed_job_is_cleared(tmp_path):
    final, log = str(tmp_path / "cache" / "img"), str(tmp_path / "log")
    code = f"import sys; sys.path.insert(0, {os.getcwd()!r}); from tests.worker.test_images import _slow_producer; _slow_producer({final!r}, {log!r}, 30)"
    victim = subprocess.Popen([sys.executable, "-c", code])
    while not os.path.exists(log):  # the victim has started producing
        time.sleep(0.05)
    victim.kill()
    victim.wait()
    assert any(n.startswith("img.tmp-") for n in os.listdir(tmp_path / "cache"))
    assert _slow_producer(final, log, 0.1) is True
    assert sorted(os.listdir(tmp_path / "cache")) == ["img", "img.lock"]
    assert len(os.listdir(final)) == 20


def test_two_jobs_unpacking_one_archive_into_one_cache_with_charliecloud(tmp_path, image_roots, shim, make_job, workspace):
    """Real shims, real ch-run: an image shipped as a tarball is unpacked once into the shared cache."""
    root = tmp_path / "archives"
    archive = root / "registry.hub.docker.com" / "library" / "debian:stable-slim.tar"
    archive.parent.mkdir(parents=True)
    source = os.path.join(image_roots[0], "registry.hub.docker.com", "library", "debian:stable-slim")
    subprocess.run(["tar", "-C", source + "/", "-cf", str(archive), "."], check=True)
    cache = tmp_path / "shared-cache"
    cache.mkdir()  # (as the submit side makes it)
    sources = ImageSources([str(root)], str(cache), False)
    jobs = [make_job(image="debian:stable-slim", images=sources,
                     argv=["sh", "-c", f"python3 -c 'print(6*7)' > out{i}.txt"]) for i in range(2)]
    procs = [subprocess.Popen([sys.executable, shim, str(j)], stderr=subprocess.PIPE, text=True) for j in jobs]
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    records = [json.load(open(str(j)[:-5] + ".result.json")) for j in jobs]
    hows = sorted(r["image"]["how"] for r in records)
    assert hows[0].startswith("cached ") and hows[1].startswith(f"unpacked {archive} into the cache"), hows
    assert sorted(os.listdir(cache / "dir")) == ["docker.io_s_library_s_debian:stable-slim",
                                                 "docker.io_s_library_s_debian:stable-slim.lock"]
    assert [(workspace / f"out{i}.txt").read_text() for i in range(2)] == ["42\n", "42\n"]


def test_a_cache_the_node_does_not_have_is_not_made_there_and_the_nodes_own_serves_with_a_warning(
        tmp_path, image_roots, shim, make_job, workspace):
    """What an HTCondor job's private /tmp did: a new empty cache per job, a pull per step, silently."""
    archive_root = tmp_path / "roots"
    target = archive_root / "registry.hub.docker.com" / "library"
    target.mkdir(parents=True)
    stand_in = os.path.join(image_roots[0], "registry.hub.docker.com", "library", "alpine:latest")
    subprocess.run(["tar", "-C", stand_in, "-cf", str(target / "alpine:latest.tar"), "."], check=True)
    missing = tmp_path / "not-on-this-node"
    own = tmp_path / "own-cache"
    job = make_job(images=ImageSources([str(archive_root)], str(missing), False))
    code, err, record = run_shim(shim, job, env=dict(os.environ, SCAILFIN_IMAGE_CACHE=str(own)))
    assert code == 0, err
    warning = (f"the image cache {missing} does not exist here (a shared cache must be on a file system this node "
               f"mounts, made before the run): this node's own cache {own} is used instead")
    assert f"scailfin-shim: {warning}" in err.splitlines() and warning in record["notes"]
    assert not missing.exists() and record["image"]["location"].startswith(str(own))
