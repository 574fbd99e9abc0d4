# The slurm scheduler against the test site's real Slurm cluster (slurmctld, slurmd and munge
# from Debian sid, in the site's network namespace; its commands on PATH through dev/as-test-user):
# real arrays, real worker shims, real containers on the node.
import glob
import os
import subprocess
import time

import pytest

from scailfin_exec.config import Settings
from scailfin_exec.job import ImageSources, Job, Resources
from scailfin_exec.schedulers import SchedulerError
from scailfin_exec.schedulers.slurm import SlurmScheduler, SlurmSettings

from ..conftest import slurm_jobs


@pytest.fixture
def job(image_roots):
    def make(name, argv, workspace, runtime="apptainer", **kw):
        return Job(id=name, image="docker.io/library/alpine", argv=argv, workspace=str(workspace), runtime=[runtime],
                   images=ImageSources(image_roots, None, False), labels={"step": name.split("-")[0]}, **kw)
    return make


def arrays(run_dir):
    """What the scheduler sent: one batch script and one directory list per sbatch call."""
    return sorted(glob.glob(os.path.join(run_dir, "array-*.sh")))


@pytest.mark.parametrize("runtime", ["apptainer", "charliecloud"])
def test_a_scatter_goes_as_one_array_and_each_step_runs_on_the_node(slurm, tmp_path, job, runtime):
    ws = tmp_path / "ws"
    ws.mkdir()
    run_dir = str(tmp_path / "run")
    with SlurmScheduler(run_dir, Settings(), batch_name="scatter") as sched:
        handles = [sched.submit(job(f"decay-{i}", ["sh", "-c", f"echo {i} > out{i}.txt"], ws, runtime=runtime))
                   for i in range(8)]
        results = [sched.wait(h, timeout=180) for h in handles]
    assert all(r.ok for r in results), [r.describe() for r in results]
    assert [(ws / f"out{i}.txt").read_text() for i in range(8)] == [f"{i}\n" for i in range(8)]
    assert len(arrays(run_dir)) == 1  # one sbatch call for the eight
    assert {r.record.runtime.name for r in results} == {runtime}
    assert {r.record.host for r in results} == {os.uname().nodename}  # the site's one node


def test_steps_with_different_requests_go_in_different_arrays_with_their_resources(slurm, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    run_dir = str(tmp_path / "run")
    with SlurmScheduler(run_dir, Settings(), batch_name="sizes") as sched:
        small = sched.submit(job("small", ["true"], ws))
        big = sched.submit(job("big", ["true"], ws, resources=Resources(cores=2, memory_mb=1000, walltime_s=120)))
        results = [sched.wait(h, timeout=180) for h in (small, big)]
        ids = [sched.native_id(h) for h in (small, big)]
    assert all(r.ok for r in results), [r.describe() for r in results]
    assert len(arrays(run_dir)) == 2
    shown = [subprocess.run(["scontrol", "--oneliner", "show", "job", i], capture_output=True, text=True).stdout
             for i in ids]
    assert "NumCPUs=1 " in shown[0] and "mem=256M" in shown[0] and "JobName=small" in shown[0]
    assert "TimeLimit=00:03:00" not in shown[0]  # no wall time asked: the partition's
    assert "NumCPUs=2 " in shown[1] and "mem=1000M" in shown[1] and "TimeLimit=00:03:00" in shown[1]
    assert all(f"Comment=scailfin-run-{sched.run_id} " in text for text in shown)


def test_a_failing_step_fails_with_its_exit_code_node_and_stderr(slurm, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    with SlurmScheduler(str(tmp_path / "run"), Settings(), batch_name="failing") as sched:
        result = sched.run(job("breaks", ["sh", "-c", "echo cannot find the calibration >&2; exit 1"], ws))
    assert result.exit_code == 1 and not result.ok
    assert "exit code 1 (apptainer" in result.reason() and os.uname().nodename in result.reason()
    assert "cannot find the calibration" in result.stderr_tail()


def test_a_missing_image_fails_with_the_image_named(slurm, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    with SlurmScheduler(str(tmp_path / "run"), Settings(), batch_name="missing") as sched:
        result = sched.run(job("missing", ["true"], ws)._replace(image="docker.io/library/no-such-image:1"))
    assert result.exit_code == 252 and "no-such-image" in result.shim_error.message


def test_a_run_directory_the_node_cannot_see_fails_with_what_slurm_and_the_script_say(slurm, job):
    # the host's home is not the node's (the site has its own /home): nothing there is shared
    import tempfile
    base = tempfile.mkdtemp(dir=os.path.expanduser("~"))
    try:
        os.makedirs(os.path.join(base, "ws"))
        with SlurmScheduler(os.path.join(base, "run"), Settings(), batch_name="unseen") as sched:
            result = sched.run(job("unseen", ["true"], os.path.join(base, "ws")))
        assert result.exit_code is None and "Slurm job" in result.error and "without a result record" in result.error
    finally:
        subprocess.run(["rm", "-rf", base])


def test_scontrol_requeue_of_a_running_job_reruns_it_and_the_step_completes(slurm, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    with SlurmScheduler(str(tmp_path / "run"), Settings(), batch_name="requeued") as sched:
        handle = sched.submit(job("slow", ["sh", "-c", "sleep 4; echo $$ >> attempts.txt"], ws))
        deadline = time.monotonic() + 120
        while sched.state(handle) != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sched.state(handle) == "running"
        time.sleep(1)
        subprocess.run(["scontrol", "requeue", sched.native_id(handle)], check=True)
        result = sched.wait(handle, timeout=300)
    assert result.ok, result.describe()
    assert sched.restarts(handle) == 1
    assert len((ws / "attempts.txt").read_text().splitlines()) == 1  # the first attempt was stopped before it wrote


def test_close_cancels_every_job_of_the_run_with_nothing_left_in_the_queue(slurm, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    sched = SlurmScheduler(str(tmp_path / "run"), Settings(), batch_name="closed")
    handles = [sched.submit(job(f"sleeper-{i}", ["sleep", "300"], ws)) for i in range(3)]
    deadline = time.monotonic() + 60
    while not all(sched.native_id(h) for h in handles) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(slurm_jobs(sched.run_id)) == 3
    sched.close()
    assert all(sched.poll(h).error == "cancelled" for h in handles)
    assert slurm_jobs(sched.run_id) == {}


def test_following_reads_the_queue_once_per_interval_for_the_whole_run(slurm, tmp_path, job, monkeypatch):
    import scailfin_exec.schedulers.slurm.scheduler as module

    calls = []
    real = module.run

    def counting(argv, *a, **kw):
        calls.append(os.path.basename(argv[0]))
        return real(argv, *a, **kw)

    monkeypatch.setattr(module, "run", counting)
    ws = tmp_path / "ws"
    ws.mkdir()
    with SlurmScheduler(str(tmp_path / "run"), Settings(), batch_name="polled") as sched:
        started = time.monotonic()
        handles = [sched.submit(job(f"step-{i}", ["sleep", "2"], ws)) for i in range(6)]
        assert all(sched.wait(h, timeout=180).ok for h in handles)
        elapsed = time.monotonic() - started
    assert calls.count("sbatch") == 1
    assert calls.count("squeue") <= elapsed / SlurmSettings().poll_interval + 2  # one per interval, not per job
    assert "scontrol" not in calls[2:]  # the records said how each ended


def test_an_unreachable_slurmctld_fails_before_anything_is_submitted(slurm, tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"
    client = os.path.join(slurm, "slurm", "client.conf")  # what the site's commands read (tests/site/start)
    text = open(client).read().replace("SlurmctldPort=6817", "SlurmctldPort=6899")
    conf.write_text(text)
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(SchedulerError, match="slurmctld.*does not answer"):
        SlurmScheduler(str(tmp_path / "run"), Settings())
    assert not (tmp_path / "run").exists()


def test_a_partition_that_does_not_exist_fails_before_anything_is_submitted(slurm, tmp_path):
    settings = Settings()
    settings.schedulers["slurm"] = SlurmSettings(partition="gpu-huge")
    with pytest.raises(SchedulerError, match="partition 'gpu-huge' does not exist on this cluster \\(it has: debug"):
        SlurmScheduler(str(tmp_path / "run"), settings)


def test_submitting_as_root_is_refused(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(SchedulerError, match="refusing to submit as root"):
        SlurmScheduler(None, Settings())


def test_jobs_cancelled_while_their_batch_waits_never_reach_slurm(slurm, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    with SlurmScheduler(str(tmp_path / "run"), Settings(), batch_name="withdrawn") as sched:
        handle = sched.submit(job("never", ["true"], ws))
        sched.cancel(handle)
        assert sched.wait(handle, timeout=10).error == "cancelled"
    assert arrays(sched.run_dir) == []
