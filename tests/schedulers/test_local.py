# The local scheduler: the embedded default. Real containers (Podman and Charliecloud, rootless),
# a concurrency limit, per-step logs, and cancel that leaves no process behind.
import os

import pytest

from scailfin_exec.job import ImageSources, Job
from scailfin_exec.schedulers import SchedulerError
from scailfin_exec.schedulers.local import LocalScheduler

from ..conftest import processes_running, wait_for


@pytest.fixture
def job(workspace, image_roots, tmp_path):
    def make(name, argv, runtime="charliecloud", image="docker.io/library/alpine", **kw):
        return Job(id=name, image=image, argv=argv, workspace=str(workspace), runtime=[runtime],
                   images=ImageSources(image_roots, str(tmp_path / "cache"), False), labels={"step": name}, **kw)
    return make


@pytest.mark.parametrize("runtime, image", [("podman", "docker.io/library/debian:stable-slim"),
                                            ("charliecloud", "docker.io/library/debian:stable-slim")])
def test_a_step_runs_in_a_real_container_and_writes_into_the_workspace(job, workspace, tmp_path, runtime, image):
    (workspace / "numbers.txt").write_text("\n".join(str(i) for i in range(1, 101)))
    step = job("sum", ["python3", "-c", "print(sum(int(x) for x in open('numbers.txt')), file=open('sum.txt', 'w'))"],
               runtime=runtime, image=image)
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        result = scheduler.run(step)
    assert result.ok, (result.describe(), result.stderr_tail())
    assert (workspace / "sum.txt").read_text() == "5050\n"
    assert result.record.runtime.name == runtime and result.record.image.reference == image
    assert result.describe().startswith(f"job sum: exit 0 ({runtime} ")


def test_per_step_logs_hold_the_steps_output_and_what_ran_where(job, tmp_path):
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        result = scheduler.run(job("talk", ["sh", "-c", "echo to-out; echo to-err >&2; exit 4"]))
    assert result.exit_code == 4 and not result.ok
    assert open(result.stdout_log).read() == "to-out\n"
    err = open(result.stderr_log).read()
    assert "to-err" in err and "charliecloud" in err and "ran docker.io/library/alpine:latest on" in err
    assert result.stderr_tail(1) == "to-err"
    assert result.stdout_log == str(tmp_path / "run" / "talk" / "stdout.log")


def test_no_more_than_max_parallel_steps_run_at_once(job, workspace, tmp_path):
    steps = [job(f"s{i}", ["sh", "-c", f"date +%s.%N > s{i}.start; sleep 1; date +%s.%N > s{i}.end"],
                 image="docker.io/library/debian:stable-slim") for i in range(5)]
    with LocalScheduler(str(tmp_path / "run"), max_parallel=2) as scheduler:
        assert scheduler.capacity == 2
        handles = [scheduler.submit(s) for s in steps]
        results = [scheduler.wait(h) for h in handles]
    assert all(r.ok for r in results), [r.describe() for r in results]
    spans = [(float((workspace / f"s{i}.start").read_text()), float((workspace / f"s{i}.end").read_text())) for i in range(5)]
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert most == 2


def test_default_capacity_is_the_machines_cores(tmp_path):
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        assert scheduler.capacity == os.cpu_count()


def test_cancel_kills_everything_the_step_started(job, tmp_path):
    step = job("long", ["sh", "-c", "sleep 2861 & setsid sleep 2862 & wait"])
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        handle = scheduler.submit(step)
        assert wait_for(lambda: processes_running("2861") and processes_running("2862"))
        shim_pid = handle.native["proc"].pid
        scheduler.cancel(handle)
        result = scheduler.wait(handle)
    assert result.error == "cancelled" and result.exit_code is None
    assert wait_for(lambda: not processes_running("2861") and not processes_running("2862"), 15)
    assert not os.path.exists(f"/proc/{shim_pid}/cmdline") or open(f"/proc/{shim_pid}/stat").read().split()[2] == "Z"


def test_close_cancels_what_is_still_queued_or_running(job, workspace, tmp_path):
    scheduler = LocalScheduler(str(tmp_path / "run"), max_parallel=1)
    running = scheduler.submit(job("a", ["sh", "-c", "touch started-a; sleep 2863"]))
    queued = scheduler.submit(job("b", ["sh", "-c", "touch started-b"]))
    assert wait_for(lambda: processes_running("2863"))
    scheduler.close()
    assert scheduler.poll(running).error == "cancelled" and scheduler.poll(queued).error == "cancelled"
    assert not processes_running("2863") and not (workspace / "started-b").exists()
    assert os.listdir(workspace) == []  # the cancelled step's private copy is gone, and nothing came back


def test_the_same_job_id_twice_in_one_run_is_refused(job, tmp_path):
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        scheduler.run(job("same", ["true"]))
        with pytest.raises(SchedulerError, match="job id 'same' used twice"):
            scheduler.submit(job("same", ["true"]))
