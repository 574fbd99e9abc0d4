# transfer: chirp on the test site: the shim fetches what the step needs through HTCondor's I/O
# proxy (parrot_run, or condor_chirp when parrot is missing) and writes the declared outputs back,
# each under a temporary name then renamed. The workspaces live under /tmp, which no job sees:
# the only way in or out is chirp.
import hashlib
import os
import string
import threading
import time

import htcondor2
import pytest

from scailfin_exec.config import Settings
from scailfin_exec.job import ImageSources, Job
from scailfin_exec.schedulers.htcondor import HTCondorScheduler, HTCondorSettings

MIB = 1024 * 1024
ODD_NAMES = ["with space.txt", "colon:name.txt", "ünïcödé-Ωμέγα.txt"]


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def tree_sums(root):
    sums = {}
    for directory, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            sums[rel] = ("link", os.readlink(path)) if os.path.islink(path) else sha(path)
    return sums


@pytest.fixture
def chirp_job(image_roots):
    def make(name, argv, workspace, **kw):
        return Job(id=name, image="docker.io/library/alpine", argv=argv, workspace=str(workspace),
                   runtime=["apptainer"], transfer="chirp", images=ImageSources(image_roots, None, False),
                   labels={"step": name}, **kw)
    return make


@pytest.fixture(scope="module")
def difficult_tree(tmp_path_factory):
    """2,000 small files, a 200 MiB file, a symlink, names with spaces, a colon, non-ASCII."""
    root = tmp_path_factory.mktemp("tree") / "data"
    for i in range(2000):
        sub = root / f"small-{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:04d}.txt").write_text(f"small file {i}\n" * (i % 7 + 1))
    with open(root / "big.bin", "wb") as f:
        for i in range(200):
            f.write(hashlib.sha256(str(i).encode()).digest() * (MIB // 32))
    for name in ODD_NAMES:
        (root / name).write_text(f"name: {name}\n")
    os.symlink("big.bin", root / "link-to-big")
    return root


def test_a_difficult_tree_goes_through_chirp_and_comes_back_intact(pool, tmp_path, chirp_job, difficult_tree):
    ws = tmp_path / "ws"
    ws.mkdir()
    os.symlink(difficult_tree, ws / "unused")  # not needed by the step: must not matter
    os.unlink(ws / "unused")
    step = ["sh", "-c", f"cp -a {difficult_tree} {ws}/back && ls {ws}/back > /dev/null"]
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="chirp-tree") as sched:
        result = sched.run(chirp_job("tree", step, ws, inputs=[str(difficult_tree)], outputs=["back"]))
    assert result.ok, result.describe() + "\n" + result.stderr_tail()
    assert result.record.stage_in.method == "chirp (parrot)"
    assert result.record.stage_in.files >= 2004 and result.record.stage_in.bytes > 200 * MIB
    assert result.record.stage_out.files >= 2004
    assert tree_sums(ws / "back") == tree_sums(difficult_tree)  # in through chirp, out through chirp
    assert not [n for _, _, names in os.walk(ws) for n in names if ".scailfin-" in n]  # no temporaries left


def test_without_parrot_condor_chirp_takes_over_and_says_so(pool, tmp_path, chirp_job):
    ws = tmp_path / "ws"
    (ws / "in").mkdir(parents=True)
    for name in ODD_NAMES:
        (ws / "in" / name).write_text(name + "\n")
    (ws / "out").mkdir()
    options = HTCondorSettings(submit_commands={"environment": "SCAILFIN_PARROT=/nonexistent/parrot_run"})
    step = ["sh", "-c", "for f in in/*; do tr a-z A-Z < \"$f\" > \"out/${f#in/}\"; done"]
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), options=options, batch_name="chirp-fallback") as sched:
        result = sched.run(chirp_job("fallback", step, ws, outputs=["out"]))
    assert result.ok, result.describe() + "\n" + result.stderr_tail()
    assert result.record.stage_in.method == "chirp (condor_chirp)"
    assert "no parrot_run on this worker (SCAILFIN_PARROT=/nonexistent/parrot_run): fell back to condor_chirp" in \
        result.record.stage_in.notes
    ascii_upper = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)  # what tr a-z A-Z does
    assert {n: (ws / "out" / n).read_text() for n in ODD_NAMES} == {n: n.translate(ascii_upper) + "\n" for n in ODD_NAMES}


def test_condor_chirp_refuses_a_file_over_its_limit_instead_of_a_truncated_copy(pool, tmp_path, chirp_job):
    ws = tmp_path / "ws"
    ws.mkdir()
    with open(ws / "huge.bin", "wb") as f:  # sparse: 2 GiB on paper, nothing on disk
        f.truncate(2 ** 31)
    options = HTCondorSettings(submit_commands={"environment": "SCAILFIN_PARROT=/nonexistent/parrot_run"})
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), options=options, batch_name="chirp-too-large") as sched:
        result = sched.run(chirp_job("too-large", ["true"], ws))
    assert result.exit_code == 254
    assert f"{ws}/huge.bin is 2147483648 bytes: condor_chirp cannot move a file over 2147483647 bytes" in \
        result.shim_error.message
    assert os.path.getsize(ws / "huge.bin") == 2 ** 31


def test_without_the_io_proxy_chirp_fails_clearly(pool, tmp_path, chirp_job):
    ws = tmp_path / "ws"
    ws.mkdir()
    options = HTCondorSettings(job_attributes={"WantIOProxy": "false"})
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), options=options, batch_name="chirp-no-proxy") as sched:
        result = sched.run(chirp_job("no-proxy", ["true"], ws))
    assert result.exit_code == 254
    assert "the HTCondor I/O proxy is not available to this job" in result.shim_error.message
    assert "+WantIOProxy = true" in result.shim_error.message


def test_an_output_symlink_leaving_the_workspace_is_refused(pool, tmp_path, chirp_job):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "keep.txt").write_text("old\n")
    step = ["sh", "-c", "ln -s /etc/passwd escape && echo new > keep.txt"]
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="chirp-escape") as sched:
        result = sched.run(chirp_job("escape", step, ws, outputs=["."]))
    assert result.exit_code == 254
    assert "is a symbolic link leaving the workspace (to /etc/passwd): refused" in result.shim_error.message
    assert not os.path.lexists(ws / "escape") and (ws / "keep.txt").read_text() == "old\n"


def test_a_job_vacated_while_writing_back_leaves_the_old_file_or_the_whole_new_one(pool, tmp_path, chirp_job):
    ws = tmp_path / "ws"
    ws.mkdir()
    old = b"old content\n"
    (ws / "result.bin").write_bytes(old)
    new_sum = hashlib.sha256()
    block = hashlib.sha256(b"new").digest() * (MIB // 32)
    for _ in range(300):
        new_sum.update(block)
    seen, stop = set(), threading.Event()
    vacated = {}

    def watch():
        while not stop.is_set():
            writing = [n for n in os.listdir(ws) if n.startswith(".result.bin.scailfin-vacated+")]
            if writing and not vacated:  # the write-back has begun: evict the job now
                pool.act(htcondor2.JobAction.Vacate, 'JobBatchName == "chirp-vacate"', "test: vacate in stage-out")
                vacated["at"] = time.monotonic()
            try:
                data = (ws / "result.bin").read_bytes()
                seen.add(hashlib.sha256(data).hexdigest())
            except FileNotFoundError:
                seen.add("none")
            time.sleep(0.01)

    thread = threading.Thread(target=watch)
    thread.start()
    step = ["sh", "-c", "python3 -c \"import hashlib,sys; b=hashlib.sha256(b'new').digest()*(1048576//32); "
            "sys.stdout.buffer.write(b*300)\" > result.bin"]
    try:
        with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="chirp-vacate") as sched:
            result = sched.run(chirp_job("vacated", step, ws, outputs=["result.bin"])._replace(
                image="docker.io/library/debian:stable-slim"))
    finally:
        stop.set()
        thread.join()
    assert vacated, "the write-back was never seen starting"
    assert result.ok, result.describe()
    assert seen <= {hashlib.sha256(old).hexdigest(), new_sum.hexdigest(), "none"}  # never a partial file
    assert sha(ws / "result.bin") == new_sum.hexdigest()
    assert not [n for n in os.listdir(ws) if ".scailfin-" in n]


def test_a_directory_of_small_files_travels_as_one_archive_shared_then_removed(pool, tmp_path, chirp_job):
    """300 small files, odd names, a link, an empty and a read-only directory, an executable:
    one archive in the run directory, fetched with one request, the same tree on the worker;
    a second job needing the same content uses the same archive, one after a change gets the
    change; no archive is left once the jobs have ended."""
    tree = tmp_path / "tree"
    for i in range(300):
        sub = tree / f"d{i // 30:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:03d}.txt").write_text(f"small {i}\n")
    for name in ODD_NAMES:
        (tree / name).write_text(f"name: {name}\n")
    (tree / "empty").mkdir()
    (tree / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (tree / "run.sh").chmod(0o755)
    os.symlink("d00/f000.txt", tree / "link")
    (tree / "read-only").mkdir()
    (tree / "read-only" / "r.txt").write_text("r\n")
    (tree / "read-only").chmod(0o555)
    archives = tmp_path / "run" / "chirp-archives"

    def step(name):
        ws = tmp_path / name
        ws.mkdir()
        argv = ["sh", "-c", f"cp -a {tree} {ws}/back && {tree}/run.sh > {ws}/ran.txt"]
        return chirp_job(name, argv, ws, inputs=[str(tree)], outputs=["back", "ran.txt"])

    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="chirp-archive") as sched:
        first, second = sched.submit(step("first")), sched.submit(step("second"))
        assert first.job.archives[str(tree)] == second.job.archives[str(tree)]  # one archive of the tree
        assert len(os.listdir(archives)) == 1  # the tree's (the empty workspaces go entry by entry)
        results = [sched.wait(first), sched.wait(second)]
        (tree / "d00" / "f000.txt").write_text("changed\n")
        results.append(sched.run(step("third")))
    for result in results:
        assert result.ok, result.describe() + "\n" + result.stderr_tail()
        assert "1 directory fetched as one archive" in result.record.stage_in.notes, result.record.stage_in
        assert result.record.stage_in.files >= 300 + len(ODD_NAMES) + 3
    (tree / "read-only").chmod(0o755)
    for name in ("first", "second"):
        back = tmp_path / name / "back"
        assert (tmp_path / name / "ran.txt").read_text() == "ran\n"
        assert os.path.islink(back / "link") and (back / "empty").is_dir() and os.access(back / "run.sh", os.X_OK)
        sums = tree_sums(back)
        assert sums["d00/f000.txt"] == hashlib.sha256(b"small 0\n").hexdigest()
        assert {k: v for k, v in sums.items() if k != "d00/f000.txt"} == \
            {k: v for k, v in tree_sums(tree).items() if k != "d00/f000.txt"}
    assert (tmp_path / "third" / "back" / "d00" / "f000.txt").read_text() == "changed\n"  # a new archive
    assert os.listdir(archives) == []  # each removed once no job needed it
