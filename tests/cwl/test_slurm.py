# scailfin-cwl --scheduler slurm on the test site's Slurm cluster: the examples with Apptainer and
# with Charliecloud preferred on the node (transfer shared: the node sees the host's /tmp, where
# pytest keeps every test's files), the conformance tests tagged docker, and the faults a cluster
# brings (a failing step, a missing image, Slurm's time limit, a requeued job, Ctrl-C during a
# scatter, slurmctld stopped), --cachedir, and a run resumed after scancel, all against the real cluster.
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import result_records, slurm_jobs
from .test_cache import interrupt_then_resume, jobs_submitted
from .test_cache import states as cache_states
from .test_conformance import known_failures, run_suite
from .test_examples import EXAMPLES, check_decay_scatter, check_inventory, check_wordcount, example
from .test_htcondor import DATA, RUNTIMES, _run_dir


def on_slurm(scailfin_cwl, tmp_path, runtime, *args, **kw):
    """The examples copied next to the test's files (a user's data on the shared file system), then run."""
    for name in ("wordcount", "decay-scatter", "inventory"):
        if not (tmp_path / name).exists():
            shutil.copytree(os.path.join(EXAMPLES, name), tmp_path / name)
    return scailfin_cwl("--scheduler", "slurm", "--runtime", RUNTIMES[runtime], *args, **kw)


def ran_on_the_node(records, runtime):
    assert {r["runtime"]["name"] for r in records} == {runtime}
    assert {r["host"] for r in records} == {os.uname().nodename}  # the site's one Slurm node
    assert {r["stage_in"]["method"] for r in records} == {"shared"}


def sbatch_calls(run_dir):
    """One batch script and one list of job directories per sbatch call: the array sizes."""
    return sorted(len(open(os.path.join(run_dir, name)).read().splitlines())
                  for name in os.listdir(run_dir) if name.startswith("array-") and name.endswith(".dirs"))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wordcount_on_slurm(scailfin_cwl, slurm, tmp_path, runtime):
    run = on_slurm(scailfin_cwl, tmp_path, runtime, "--outdir", tmp_path / "result",
                   *example("wordcount", "wordcount.cwl", "wordcount-job.yml", root=tmp_path))
    assert run.returncode == 0, run.stderr
    records = result_records(run.stderr)
    check_wordcount(tmp_path / "result", records, runtime)
    ran_on_the_node(records, runtime)
    assert f"{runtime} " in run.stderr and f" on {os.uname().nodename} ran docker.io/library/alpine" in run.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_decay_scatter_goes_to_slurm_as_one_array_of_24(scailfin_cwl, slurm, tmp_path, runtime):
    run = on_slurm(scailfin_cwl, tmp_path, runtime, "--parallel", "--outdir", tmp_path / "result",
                   *example("decay-scatter", "decay-scatter.cwl", "decay-scatter-job.json", root=tmp_path))
    assert run.returncode == 0, run.stderr
    records = result_records(run.stderr)
    check_decay_scatter(tmp_path / "result", run.output, records, runtime)
    ran_on_the_node(records, runtime)
    assert sbatch_calls(_run_dir(run.stderr)) == [1, 24]  # the scatter in one sbatch, then the fit


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inventory_on_slurm(scailfin_cwl, slurm, tmp_path, runtime):
    run = on_slurm(scailfin_cwl, tmp_path, runtime, "--outdir", tmp_path / "result",
                   *example("inventory", "inventory.cwl", "inventory-job.yml", root=tmp_path))
    assert run.returncode == 0, run.stderr
    records = result_records(run.stderr)
    check_inventory(tmp_path / "result", records, runtime)
    ran_on_the_node(records, runtime)


def test_conformance_tests_tagged_docker_through_slurm(tmp_path, image_roots, slurm):
    proc, ran = run_suite(tmp_path, image_roots, "apptainer", ["--tags", "docker"], scailfin_options=[
        "--scheduler", "slurm", "--default-container", "docker.io/library/debian:stable-slim"])
    assert len(ran) == 11, proc.stdout[-3000:]
    known = known_failures("slurm")
    failed = {t for t, r in ran.items() if r == "failed"}
    print(f"CWL v1.2 conformance, tag docker, through Slurm: {len(ran) - len(failed)}/{len(ran)} passed")
    assert failed <= set(known), f"failed and not documented: {sorted(failed - set(known))}\n{proc.stdout[-3000:]}"
    passed_anyway = (set(known) & set(ran)) - failed
    assert not passed_anyway, f"documented as failing but passed: {sorted(passed_anyway)}"


def test_a_failing_step_fails_the_workflow_naming_the_step_the_node_and_its_stderr(scailfin_cwl, slurm, tmp_path):
    run = scailfin_cwl("--scheduler", "slurm", "--runtime", "apptainer", os.path.join(DATA, "failing-step.cwl"))
    assert run.returncode == 1
    assert f"[job failing-step.cwl] apptainer 1.4.5 on {os.uname().nodename} ran docker.io/library/alpine:latest: " \
           "exit 1" in run.stderr.replace("\x1b[0m", "")
    tail = run.stderr.split("[job failing-step.cwl] last lines of the shim's stderr:", 1)[1]
    assert "about to fail" in tail.splitlines()[2]
    assert "Final process status is permanentFail" in run.stderr


def test_a_missing_image_fails_the_step_with_the_reason_and_leaves_no_job(scailfin_cwl, slurm, tmp_path):
    run = scailfin_cwl("--scheduler", "slurm", "--runtime", "apptainer", os.path.join(DATA, "missing-image.cwl"))
    assert run.returncode == 1
    line = next(line for line in run.stderr.splitlines() if "no-such-image" in line and "not found" in line)
    assert "[job missing-image.cwl]" in line and "(slurm scheduler, apptainer" in line
    assert f"on {os.uname().nodename})" in line
    run_id = open(os.path.join(_run_dir(run.stderr), "run-id")).read().strip()
    assert slurm_jobs(run_id) == {}


def test_a_step_over_the_sites_time_limit_fails_with_slurms_timeout(scailfin_cwl, slurm, tmp_path):
    # the site's limit (an #SBATCH line from the config file), shorter than the step: Slurm ends it
    config = tmp_path / "site.yaml"
    config.write_text("scheduler: slurm\nsbatch_lines: ['--time=1']\n")
    tool = tmp_path / "too-long.cwl"
    tool.write_text(open(os.path.join(DATA, "failing-step.cwl")).read().replace(
        '"echo about to fail >&2; exit 1"', '"sleep 600"'))
    run = scailfin_cwl("--config", config, "--runtime", "apptainer", tool, timeout=300)
    assert run.returncode == 1
    line = next(line for line in run.stderr.splitlines() if "TIMEOUT" in line)
    assert "[job too-long.cwl]" in line and "time limit 00:01:00" in line, run.stderr


def _started(scailfin, run_dir, wanted, seconds=120):
    """This run's Slurm tasks once `wanted` of them are in the queue (the run id is in its directory)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and scailfin.poll() is None:
        if os.path.exists(os.path.join(run_dir, "run-id")):
            run_id = open(os.path.join(run_dir, "run-id")).read().strip()
            jobs = slurm_jobs(run_id)
            if wanted(jobs):
                return run_id, jobs
        time.sleep(0.2)
    raise AssertionError(f"the run's jobs never reached the wanted state (scailfin-cwl exit {scailfin.poll()})")


def _scailfin_cwl(tmp_path, image_roots, *args):
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    run_dir = tmp_path / "run"
    return run_dir, subprocess.Popen(
        [exe, "--scheduler", "slurm", "--runtime", "apptainer", "--image-roots", os.pathsep.join(image_roots),
         "--pull", "no", "--run-dir", run_dir, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def test_scontrol_requeue_of_a_running_step_reruns_it_and_the_workflow_completes(tmp_path, image_roots, slurm):
    run_dir, proc = _scailfin_cwl(tmp_path, image_roots, "--outdir", tmp_path / "out",
                                  os.path.join(DATA, "slow-writer.cwl"))
    try:
        _, jobs = _started(proc, str(run_dir), lambda jobs: list(jobs.values()) == ["RUNNING"])
        time.sleep(3)  # mid-run: the step is writing its output
        subprocess.run(["scontrol", "requeue", *jobs], check=True)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = (tmp_path / "out" / "numbers.txt").read_text().splitlines()
    assert lines == [str(i) for i in range(1, 201)]  # whole: every line, once
    [record] = result_records(err)
    assert record["exit_code"] == 0


def test_ctrl_c_during_a_scatter_leaves_nothing_in_squeue(tmp_path, image_roots, slurm):
    run_dir, proc = _scailfin_cwl(tmp_path, image_roots, "--parallel", os.path.join(DATA, "long-scatter.cwl"),
                                  os.path.join(DATA, "long-scatter-job.json"))
    try:
        run_id, jobs = _started(proc, str(run_dir), lambda jobs: len(jobs) == 6)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted: cancelling this run's jobs" in err
    assert slurm_jobs(run_id) == {}


def _slurmctld(slurm, order, wanted):
    """Have the site's keeper stop or start slurmctld (tests/site/start: a FIFO the test user may
    write), then wait until `scontrol ping` says `wanted`."""
    fifo = os.open(os.path.join(slurm, "slurm", "control", "slurmctld"), os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fifo, order.encode() + b"\n")
    finally:
        os.close(fifo)
    deadline = time.monotonic() + 60
    while wanted not in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"slurmctld is not {wanted} after {order}"
        time.sleep(0.2)


def test_a_stopped_slurmctld_fails_the_run_before_anything_is_submitted(scailfin_cwl, slurm, tmp_path):
    _slurmctld(slurm, "stop", "DOWN")
    try:
        run = scailfin_cwl("--scheduler", "slurm", "--runtime", "apptainer",
                           *example("wordcount", "wordcount.cwl", "wordcount-job.yml"))
        assert run.returncode == 1
        assert "scailfin-cwl: error: Slurm's controller (slurmctld) does not answer: " in run.stderr, run.stderr
        assert "submitted to the slurm scheduler" not in run.stderr
    finally:
        _slurmctld(slurm, "start", "UP")


def test_a_second_run_on_slurm_takes_every_step_from_the_cache(scailfin_cwl, slurm, tmp_path):
    args = ("--cachedir", tmp_path / "cache", *example("wordcount", "wordcount.cwl", "wordcount-job.yml", root=tmp_path))
    first = on_slurm(scailfin_cwl, tmp_path, "apptainer", "--outdir", tmp_path / "first", *args)
    assert first.returncode == 0, first.stderr
    assert cache_states(first) == {"done": ["count_words", "split_words"]}
    again = on_slurm(scailfin_cwl, tmp_path, "apptainer", "--outdir", tmp_path / "again", *args)
    assert again.returncode == 0, again.stderr
    assert jobs_submitted(again) == [] and cache_states(again) == {"cached": ["count_words", "split_words"]}
    assert not [name for name in os.listdir(again.run_dir) if name.startswith("array-")]  # no sbatch either
    for name in ("words.txt", "count.txt"):
        assert (tmp_path / "first" / name).read_text() == (tmp_path / "again" / name).read_text()


def test_a_run_whose_jobs_were_scancelled_resumes_with_only_the_steps_that_had_not_finished(tmp_path, image_roots,
                                                                                          slurm):
    def scancel(proc, run_dir):
        run_id = open(os.path.join(run_dir, "run-id")).read().strip()
        jobs = slurm_jobs(run_id)
        assert jobs, "the run has no job in the queue to cancel"
        subprocess.run(["scancel", *{job.split("_")[0] for job in jobs}], check=True, timeout=60)

    interrupt_then_resume(tmp_path, image_roots, ["--scheduler", "slurm", "--runtime", "apptainer"], scancel, wait_s=60)
