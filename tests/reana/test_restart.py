# Nothing lost across a restart: `scailfin-exec serve` stopped (SIGTERM) while its jobs run and
# started again on the same state directory answers for every job, follows those still running
# (on the pool, from the run's event log; locally, the shims it left running), reports their real
# end, and never submits one twice: on HTCondor, on Slurm, and locally.
import glob
import os
import time
from collections import Counter

from .conftest import workspace
from .test_api import request


def scatter(service, ws, steps):
    """Steps of one workflow, each sleeping a little longer, each writing its own file."""
    return [service.post("/jobs", json=request(ws, f"sleep {2 + 3 * i}; echo step {i}; echo {i} > out{i}.txt",
                                               job_name=f"scatter-{i}")).json()["job_id"] for i in range(steps)]


def stop_while_running(service, job_ids):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = [service.get(f"/jobs/{j}").json()["status"] for j in job_ids]
        if "running" in statuses:
            break
        time.sleep(0.3)
    assert "running" in statuses, statuses
    service.stop(shutdown=False)  # as a site administrator's restart would: the jobs go on
    return statuses


def restart(serve, args, service, job_ids, pause):
    """Stop the service while a job runs, leave it stopped for pause seconds (some steps end while
    no service is there), start it again with args: every job ends finished."""
    stop_while_running(service, job_ids)
    time.sleep(pause)
    again = serve(*args)
    final = {j: again.wait(j, timeout=300) for j in job_ids}
    assert {job["status"] for job in final.values()} == {"finished"}, final
    return again


def test_a_restart_on_the_pool_loses_no_job_and_runs_none_twice(serve, pool, tmp_path):
    args = ("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer")
    service = serve(*args)
    ws = workspace(service.root)
    job_ids = scatter(service, ws, 6)
    again = restart(serve, args, service, job_ids, pause=8)
    assert sorted(os.listdir(ws)) == sorted(f"out{i}.txt" for i in range(6))
    for i, job_id in enumerate(job_ids):
        assert f"step {i}\n" in again.get(f"/jobs/{job_id}/logs").text
    history = pool.history(f'JobBatchName == "reana-{os.path.basename(ws)}"', ["ScailfinJobId", "ClusterId", "ProcId"],
                           match=-1)
    history = list(history)
    submitted = Counter(ad["ScailfinJobId"] for ad in history)
    assert submitted == Counter({j: 1 for j in job_ids}), submitted  # each once, none twice
    assert len({ad["ClusterId"] for ad in history}) <= 2  # the burst went to the schedd in one or two transactions
    assert "following it again" in again.log()


def test_a_restart_of_the_local_scheduler_takes_over_the_running_shims(serve):
    service = serve("--runtime", "charliecloud", "--max-parallel", "2")
    ws = workspace(service.root)
    job_ids = scatter(service, ws, 4)
    again = restart(serve, ("--runtime", "charliecloud", "--max-parallel", "2"), service, job_ids, pause=0)
    assert sorted(os.listdir(ws)) == sorted(f"out{i}.txt" for i in range(4))
    log = again.log()
    assert "following it again" in log and "submitted now" in log  # two ran on, two had not started
    for i, job_id in enumerate(job_ids):
        assert f"step {i}\n" in again.get(f"/jobs/{job_id}/logs").text


def test_a_restart_on_slurm_loses_no_job_and_runs_none_twice(serve, slurm):
    args = ("--scheduler", "slurm", "--runtime", "apptainer")
    service = serve(*args)
    ws = workspace(service.root)
    job_ids = [service.post("/jobs", json=request(ws, f"sleep {2 + 3 * i}; echo step {i}; echo {i} >> ran{i}.txt",
                                                  job_name=f"scatter-{i}")).json()["job_id"] for i in range(4)]
    again = restart(serve, args, service, job_ids, pause=5)
    assert sorted(os.listdir(ws)) == sorted(f"ran{i}.txt" for i in range(4))
    assert [open(os.path.join(ws, f"ran{i}.txt")).read() for i in range(4)] == [f"{i}\n" for i in range(4)]  # once each
    for i, job_id in enumerate(job_ids):
        assert f"step {i}\n" in again.get(f"/jobs/{job_id}/logs").text
    run_dirs = glob.glob(os.path.join(again.state_dir, "runs", "slurm-*"))
    sent = Counter(os.path.basename(line.strip()) for run_dir in run_dirs
                   for path in glob.glob(os.path.join(run_dir, "array-*.dirs")) for line in open(path))
    assert sent == Counter({j: 1 for j in job_ids}), sent  # each in one array task, none sent again
    assert "following it again" in again.log() and "could not take over" not in again.log()
    assert all(os.path.exists(os.path.join(run_dir, "trace.tsv")) for run_dir in run_dirs)  # the run's watch
