# A step never outlives its limits: a time limit, a cancelled run, a step that ignores SIGTERM,
# starts processes in sessions of their own or leaves them running when it ends. When the step
# ends, everything it started is gone (the tier's fixture checks it after every test); a time
# limit no timer can hold runs the step without one, as stock cwltool does.
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import REPO, processes_running, wait_for

DATA = os.path.join(REPO, "tests", "adversarial", "data")
RUNTIMES = ["charliecloud", "podman"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_step_ignoring_sigterm_is_killed_at_its_time_limit_with_everything_it_started(scailfin_cwl, runtime):
    started = time.monotonic()
    run = scailfin_cwl("--runtime", runtime, os.path.join(DATA, "ignore-term.cwl"))
    took = time.monotonic() - started
    assert run.returncode == 1, run.stderr
    assert "walltime of 5 s exceeded" in run.stderr
    assert took < 5 + 10 + 20, took  # the limit, the grace period, cwltool's start-up and the container's
    assert processes_running(b"2847") == [] and processes_running(b"2848") == []


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_scailfin_cwl_stops_a_step_that_ignores_sigterm(image_roots, tmp_path, runtime, signum):
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    proc = subprocess.Popen([exe, "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--runtime", runtime,
                             os.path.join(DATA, "stubborn.cwl")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: processes_running(b"2849") and processes_running(b"2850"), 60), "the step never started"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted: cancelling this run's jobs" in err
    assert processes_running(b"2849") == [] and processes_running(b"2850") == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_process_a_successful_step_leaves_running_ends_with_it(scailfin_cwl, tmp_path, runtime):
    run = scailfin_cwl("--runtime", runtime, "--outdir", tmp_path / "out", os.path.join(DATA, "leave-behind.cwl"))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "started.txt").read_text() == "started\n"
    assert processes_running(b"2851") == []


def test_a_time_limit_no_timer_can_hold_runs_the_step_without_one(scailfin_cwl, tmp_path):
    run = scailfin_cwl("--runtime", "charliecloud", "--outdir", tmp_path / "out", "--run-dir", tmp_path / "run",
                       os.path.join(DATA, "huge-time-limit.cwl"))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "ran.txt").read_text() == "ran\n"
    assert "internal error" not in run.stderr


def test_a_huge_walltime_in_a_job_file_runs_the_step_and_says_so(tmp_path, make_job, shim, workspace):
    from ..conftest import run_shim

    job = make_job(argv=["sh", "-c", "echo ran > ran.txt"], resources={"walltime_s": 10 ** 20})
    code, err, record = run_shim(shim, job)
    assert code == 0, err
    assert (workspace / "ran.txt").read_text() == "ran\n"
    assert "walltime of 100000000000000000000 s is beyond any timer: the step ran without one" in record["notes"]
