# Full file systems, each a 16 MiB tmpfs of the test site's (tests/site/start: /tmp/scailfin-full-*)
# filled during a run of scailfin-cwl (local scheduler, Charliecloud): the run directory's, the
# workspace's, the image cache's. The run fails with a line naming the file system that is full;
# no step is taken for good without its outputs, no result record is left half-written, and no
# shim is left running.
import errno
import glob
import json
import os
import subprocess
import sys
import time

import pytest

from scailfin_exec.report.trace import read_trace

from ..conftest import REPO, wait_for

DATA = os.path.join(REPO, "tests", "faults", "data")
FULL = "/tmp/scailfin-full-{}"
EXE = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")


@pytest.fixture
def full():
    """fill(name): fill the file system /tmp/scailfin-full-NAME; emptied again after the test."""
    used = []

    def fill(name):
        root = FULL.format(name)
        assert os.path.ismount(root), f"{root} is not mounted: tests/site/start makes it"
        used.append(root)
        with open(os.path.join(root, "filler"), "wb", buffering=0) as f:
            for size in (1 << 20, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
        return root

    yield fill
    for root in used:
        for entry in os.listdir(root):
            subprocess.run(["rm", "-rf", os.path.join(root, entry)], check=False)


def scatter(tmp_path, run_dir, *args, steps=6):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"ids": list(range(1, steps + 1)), "seconds": 2}))
    return subprocess.Popen([EXE, "--image-roots", os.environ["SCAILFIN_TEST_IMAGE_ROOTS"], "--pull", "no",
                             "--runtime", "charliecloud", "--parallel", "--max-parallel", "2", "--run-dir", run_dir,
                             "--outdir", tmp_path / "out", *args, os.path.join(DATA, "scatter24.cwl"), job],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def running_in(directory):
    """PIDs of live processes whose command line names something in directory (the run's shims)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if str(directory).encode() in f.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def ended(run_dir, n):
    return wait_for(lambda: len(read_trace(os.path.join(run_dir, "trace.tsv"))) >= n, 120)


def filled_mid_run(tmp_path, run_dir, fill, *args):
    """The scatter run with args, fill() called once two steps have ended: (the process, its stderr)."""
    proc = scatter(tmp_path, run_dir, *args)
    try:
        assert ended(run_dir, 2)
        fill()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # the test failed: leave no scailfin-cwl behind
            proc.kill()
            proc.communicate()
    return proc, err


def check_nothing_half_done(proc, run_dir, err):
    assert proc.returncode == 1, err[-3000:]
    assert "Final process status is permanentFail" in err
    for record in glob.glob(os.path.join(run_dir, "*", "job.result.json")):
        json.load(open(record))  # whole, or not there at all
    assert not glob.glob(os.path.join(run_dir, "*", "*.tmp-*"))
    assert not running_in(run_dir)


@pytest.mark.cell("the run directory's file system full mid-run", "local", "clear error: exit 1, the file system "
                  "named, no record half-written, nothing left running")
def test_a_full_run_directory_fails_the_run_naming_its_file_system(tmp_path, full):
    run_dir = os.path.join(FULL.format("run"), f"run-{os.getpid()}-{time.monotonic_ns()}")
    proc, err = filled_mid_run(tmp_path, run_dir, lambda: full("run"))
    check_nothing_half_done(proc, run_dir, err)
    assert f"(the file system holding {run_dir}" in err and "is full: 0 bytes free)" in err


@pytest.mark.cell("the workspace's file system full mid-run", "local", "clear error: exit 1, the file system named, "
                  "no step taken for good, nothing left running")
def test_a_full_workspace_fails_its_steps_naming_its_file_system(tmp_path, full):
    run_dir = tmp_path / "run"
    proc, err = filled_mid_run(tmp_path, run_dir, lambda: full("workspace"), "--tmp-outdir-prefix",
                               FULL.format("workspace") + "/out-")
    check_nothing_half_done(proc, run_dir, err)
    assert f"(the file system holding {FULL.format('workspace')}/out-" in err and "is full: 0 bytes free)" in err
    rows = read_trace(os.path.join(run_dir, "trace.tsv"))
    assert len(rows) == 6 and {r["state"] for r in rows} == {"done", "failed"}  # the first ones before it was full


@pytest.mark.cell("the image cache's file system full", "local", "clear error: exit 1 (the step: 252), the file "
                  "system named, nothing left running")
def test_a_full_image_cache_fails_the_pull_naming_its_file_system(tmp_path, full):
    cache = full("images")
    tool = tmp_path / "pull.cwl"
    tool.write_text("""cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "127.0.0.1:5001/library/alpine:3.20"}
inputs: []
baseCommand: [echo, hello]
stdout: hello.txt
outputs:
  hello: {type: stdout}
""")
    run_dir = tmp_path / "run"
    proc = subprocess.run([EXE, "--runtime", "charliecloud", "--image-cache", cache, "--run-dir", run_dir,
                           "--outdir", tmp_path / "out", tool], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    [record] = [json.load(open(p)) for p in glob.glob(os.path.join(run_dir, "*", "job.result.json"))]
    assert record["exit_code"] == 252 and record["shim_error"]["kind"] == "image"
    assert f"(the file system holding {cache} is full: 0 bytes free)" in proc.stderr
    assert not running_in(run_dir)
