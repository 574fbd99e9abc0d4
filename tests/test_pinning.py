# Images from the test site's real OCI registry (tests/site/registry: TLS from the site's CA, one
# anonymous registry and one behind basic auth), pinned by digest once per run: a tag moved in the
# middle of a run changes nothing for that run and everything for the next; one manifest request
# per image per run (the registry's access log counts them); Podman through the local scheduler
# and Apptainer on the pool pull the pinned image; a private image needs the user's login file; a
# step cached by scailfin-cwl --cachedir reruns once its tag has moved.
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid

import pytest

from scailfin_exec import Run, Settings
from scailfin_exec.report.trace import read_trace

from .conftest import REPO  # noqa: F401  (the suite's conftest: the site fixtures)

CACHE = os.environ.get("SCAILFIN_CACHE", "/var/cache/scailfin-exec")
REGISTRY = "127.0.0.1:5001"
PRIVATE = "127.0.0.1:5002"
LOGS = os.path.join(CACHE, "site", "registry")
AUTH_FILE = os.path.join(LOGS, "auth.json")  # the test user's login to PRIVATE, as `podman login` writes it


def push(tree, reference, tmp_path, extra=None, auth=False):
    """An image of the unpacked tree (plus files {path: text}) pushed as reference; its digest."""
    layer = tmp_path / f"layer-{uuid.uuid4().hex[:8]}.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(tree, arcname=".")
        for path, text in (extra or {}).items():
            source = tmp_path / f"extra-{uuid.uuid4().hex[:8]}"
            source.write_text(text)
            tar.add(source, arcname=path)
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet", f"tarball:{layer}", f"docker://{reference}"]
    subprocess.run(argv + (["--dest-authfile", AUTH_FILE] if auth else []), check=True, timeout=120)
    inspect = ["skopeo", "inspect", "--format", "{{.Digest}}", f"docker://{reference}"]
    return subprocess.run(inspect + (["--authfile", AUTH_FILE] if auth else []), check=True, capture_output=True,
                          text=True, timeout=60).stdout.strip()


def requests(log, repository, kind):
    """The GET requests of kind (manifests, blobs) for repository in a registry's access log so far."""
    with open(os.path.join(LOGS, log)) as f:
        return [line for line in f if re.search(rf'"GET /v2/{re.escape(repository)}/{kind}/', line)]


@pytest.fixture
def stand_in(image_roots):
    return os.path.join(image_roots[0], "registry.hub.docker.com", "library", "alpine:latest")


@pytest.fixture
def podman_forgets():
    """Images this test pulls into the test user's Podman storage are removed afterwards."""
    names = []
    yield names
    for name in names:
        subprocess.run(["podman", "rmi", "--force", name], capture_output=True, timeout=60)


def test_the_site_registry_serves_tls_anonymously_and_the_private_one_only_with_a_login(stand_in, tmp_path):
    inspect = ["skopeo", "inspect", "--format", "{{.Digest}}"]
    public = subprocess.run(inspect + [f"docker://{REGISTRY}/library/alpine:3.20"], capture_output=True, text=True)
    assert public.returncode == 0 and public.stdout.startswith("sha256:"), public.stderr  # TLS, trusted CA
    refused = subprocess.run(inspect + [f"docker://{PRIVATE}/private/alpine:3.20"], capture_output=True, text=True)
    assert refused.returncode != 0 and "authentication required" in refused.stderr
    allowed = subprocess.run(inspect + ["--authfile", AUTH_FILE, f"docker://{PRIVATE}/private/alpine:3.20"],
                             capture_output=True, text=True)
    assert allowed.returncode == 0 and allowed.stdout.startswith("sha256:"), allowed.stderr


def test_a_tag_moved_in_the_middle_of_a_run_changes_nothing_for_that_run_and_everything_for_the_next(
        stand_in, tmp_path, podman_forgets):
    repository = f"test/pin-{uuid.uuid4().hex[:8]}"
    tagged = f"{REGISTRY}/{repository}:v1"
    first = push(stand_in, tagged, tmp_path, {"etc/which": "first\n"})
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = Settings(runtime=["podman"], pull=True, run_dir=str(tmp_path / "run"))
    podman_forgets += [f"{REGISTRY}/{repository}@{first}"]

    def step(run, name):
        job = run.job(run.job_id(name), tagged, ["sh", "-c", f"cat /etc/which > {name}.txt"], str(ws))
        result = run.run(job)
        assert result.ok, result.describe()
        return result, (ws / f"{name}.txt").read_text()

    with Run(settings, name="pin") as run:
        before, text = step(run, "before")
        assert text == "first\n" and before.image == f"{tagged}@{first}"  # the record shows tag and digest
        second = push(stand_in, tagged, tmp_path, {"etc/which": "second\n"})  # the tag moves mid-run
        assert second != first
        after, text = step(run, "after")
        assert text == "first\n" and after.image == f"{tagged}@{first}"
    trace = (tmp_path / "run" / "trace.tsv").read_text()
    assert trace.count(f"{tagged}@{first}") == 2
    asked = len([line for line in requests("anonymous.log", repository, "manifests") if "skopeo" in line])
    settings.run_dir = str(tmp_path / "run2")
    podman_forgets += [f"{REGISTRY}/{repository}@{second}"]
    with Run(settings, name="pin") as run:
        later, text = step(run, "later")
    assert text == "second\n" and later.image == f"{tagged}@{second}"
    # one manifest request by the submit side per run: two runs, and the two pushes' own checks
    assert asked == 1 + 2 and len([line for line in requests("anonymous.log", repository, "manifests")
                                   if "skopeo" in line]) == asked + 1


def test_a_registry_the_submit_side_cannot_reach_is_said_once_and_the_tag_is_left_to_the_nodes(tmp_path, caplog):
    run = Run(Settings(pull=True), watch=False)
    image = "127.0.0.1:5999/nobody/here:v1"  # nothing listens there
    pinned = [run.pins.pin(image, run.job("x", image, ["true"], str(tmp_path)).images) for _ in range(3)]
    assert pinned == [image] * 3
    said = [r.getMessage() for r in caplog.records if "not pinned" in r.getMessage()]
    assert len(said) == 1 and "127.0.0.1:5999/nobody/here:v1" in said[0] and "connection refused" in said[0]


def test_apptainer_on_the_pool_pulls_a_pinned_image_once_for_a_scatter(stand_in, tmp_path, pool):
    repository = f"test/pool-{uuid.uuid4().hex[:8]}"
    tagged = f"{REGISTRY}/{repository}:v1"
    digest = push(stand_in, tagged, tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = Settings(scheduler="htcondor", transfer="htcondor", runtime=["apptainer"], pull=True,
                        run_dir=str(tmp_path / "run"))
    with Run(settings, name="pool-pin") as run:
        handles = [run.submit(run.job(run.job_id("scatter"), tagged, ["sh", "-c", f"echo {i} > out{i}.txt"], str(ws)))
                   for i in range(6)]
        results = [run.wait(h, timeout=300) for h in handles]
    assert all(r.ok for r in results), [r.describe() for r in results]
    assert {r.image for r in results} == {f"{tagged}@{digest}"}
    assert {r.record.runtime.name for r in results} == {"apptainer"}
    pulled = [r for r in results if r.record.image.how.startswith("pulled docker://")]
    assert len(pulled) == 1, [r.record.image.how for r in results]  # the node's cache lock held
    blobs = [line for line in requests("anonymous.log", repository, "blobs") if "skopeo" not in line]  # the nodes'
    assert blobs and len({line.split("/blobs/")[1].split()[0] for line in blobs}) == len(blobs)  # each blob once
    shutil.rmtree(ws)


@pytest.mark.parametrize("scheduler", ["local", "htcondor"])
def test_charliecloud_pulls_a_pinned_image_from_the_registry_over_tls(stand_in, tmp_path, scheduler, pool):
    """Locally ch-image runs with this project's environment first on PATH (as for anyone who
    activated it: its #!/usr/bin/env python3 found the project's Python, without Charliecloud's
    modules); on the pool's nodes it must trust the site's CA, which only the system store has."""
    assert any(os.path.isfile(os.path.join(os.path.dirname(d), "pyvenv.cfg")) for d in os.environ["PATH"].split(":")[:3])
    repository = f"test/ch-{uuid.uuid4().hex[:8]}"
    tagged = f"{REGISTRY}/{repository}:v1"
    digest = push(stand_in, tagged, tmp_path, {"etc/which": "from the registry\n"})
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = Settings(scheduler=scheduler, transfer="htcondor" if scheduler == "htcondor" else "shared",
                        runtime=["charliecloud"], pull=True, run_dir=str(tmp_path / "run"))
    with Run(settings, name="ch-pull") as run:
        result = run.run(run.job("pull-1", tagged, ["sh", "-c", "cat /etc/which > which.txt"], str(ws)))
    assert result.ok, f"{result.describe()}\n{result.stderr_tail(10)}"
    assert result.record.runtime.name == "charliecloud" and result.image == f"{tagged}@{digest}"
    assert result.record.image.how.startswith(f"pulled {tagged}@{digest}")
    assert (ws / "which.txt").read_text() == "from the registry\n"


def test_a_cached_step_reruns_when_its_tag_has_moved_and_not_before(stand_in, tmp_path, podman_forgets):
    """scailfin-cwl --cachedir keys a step by the digest its image's tag pins to (tests/cwl/test_cache.py)."""
    repository = f"test/cache-{uuid.uuid4().hex[:8]}"
    tagged = f"{REGISTRY}/{repository}:v1"
    workflow = tmp_path / "which.cwl"
    workflow.write_text(f"""cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {{dockerPull: "{tagged}"}}
inputs: []
baseCommand: [cat, /etc/which]
stdout: which.txt
outputs:
  which: {{type: stdout}}
""")
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")

    def run(n):
        run_dir = tmp_path / f"run-{n}"
        proc = subprocess.run([exe, "--runtime", "podman", "--cachedir", tmp_path / "cache", "--run-dir", run_dir,
                               "--outdir", tmp_path / f"out-{n}", workflow], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        [row] = read_trace(run_dir / "trace.tsv")
        return row["state"], open(json.loads(proc.stdout)["which"]["path"]).read()

    first = push(stand_in, tagged, tmp_path, {"etc/which": "first\n"})
    podman_forgets += [f"{REGISTRY}/{repository}@{first}"]
    assert run(1) == ("done", "first\n")
    assert run(2) == ("cached", "first\n")
    second = push(stand_in, tagged, tmp_path, {"etc/which": "second\n"})
    podman_forgets += [f"{REGISTRY}/{repository}@{second}"]
    assert run(3) == ("done", "second\n")
    assert run(4) == ("cached", "second\n")


def test_a_cache_in_the_jobs_private_tmp_gives_way_to_the_nodes_own_with_a_warning_and_one_pull(
        stand_in, tmp_path, pool):
    """HTCondor gives each job a private /tmp: a cache there was a new empty one in every job, and
    an 8-way scatter pulled its image 8 times, silently."""
    repository = f"test/tmpcache-{uuid.uuid4().hex[:8]}"
    tagged = f"{REGISTRY}/{repository}:v1"
    push(stand_in, tagged, tmp_path)
    private = f"/tmp/scailfin-private-cache-{uuid.uuid4().hex[:8]}"  # made here; the jobs' /tmp is their own
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = Settings(scheduler="htcondor", transfer="htcondor", runtime=["apptainer"], pull=True,
                        image_cache=private, run_dir=str(tmp_path / "run"))
    try:
        with Run(settings, name="tmp-cache") as run:
            handles = [run.submit(run.job(run.job_id("s"), tagged, ["sh", "-c", f"echo {i} > o{i}.txt"], str(ws)))
                       for i in range(4)]
            results = [run.wait(h, timeout=300) for h in handles]
        assert os.path.isdir(private)  # the submit side made it
    finally:
        shutil.rmtree(private, ignore_errors=True)
    assert all(r.ok for r in results), [r.describe() for r in results]
    for r in results:
        assert any(n.startswith(f"the image cache {private} does not exist here") for n in r.record.notes), r.record.notes
        assert not r.record.image.location.startswith(private)
    blobs = [line for line in requests("anonymous.log", repository, "blobs") if "skopeo" not in line]
    assert blobs and len({line.split("/blobs/")[1].split()[0] for line in blobs}) == len(blobs)  # each blob once
