# scailfin-cwl --scheduler htcondor on the test site: the examples with Apptainer and with
# Charliecloud preferred on the worker, each with HTCondor's file transfer and with a shared
# file system; the whole CWL conformance suite through HTCondor's file transfer; --cachedir through
# each transfer mode, and a run resumed after its jobs were removed; and the faults a pool brings
# (missing image, held job, eviction, Ctrl-C, no schedd), all against the real pool.
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import htcondor2
import pytest

from ..conftest import REPO, jobs_in_queue, result_records, wait_until_no_slot_is_claimed
from .test_cache import interrupt_then_resume, jobs_submitted
from .test_cache import states as cache_states
from .test_conformance import check_whole_suite, run_suite_in_process
from .test_examples import EXAMPLES, check_decay_scatter, check_inventory, check_wordcount, example

SHARED = "/scratch/scailfin-shared"  # the test site's shared file system; its /tmp is per job
RUNTIMES = {"apptainer": "apptainer", "charliecloud": "charliecloud,apptainer"}  # charliecloud preferred
DATA = os.path.join(REPO, "tests", "cwl", "data")


@pytest.fixture
def area(tmp_path, request):
    """Where a run keeps its files: /tmp (not seen by jobs) for transfer htcondor and chirp, the
    shared file system for transfer shared. The examples are copied there, as a user's data would be."""
    transfer = request.node.callspec.params["transfer"]
    root = tempfile.mkdtemp(dir=SHARED) if transfer == "shared" else tmp_path
    yield root, transfer
    if transfer == "shared":
        shutil.rmtree(root, ignore_errors=True)


def run_on_pool(scailfin_cwl, root, transfer, runtime, *args):
    import pathlib
    root = pathlib.Path(root)
    for name in ("wordcount", "decay-scatter", "inventory"):
        if not (root / name).exists():
            shutil.copytree(os.path.join(EXAMPLES, name), root / name)
    return scailfin_cwl("--scheduler", "htcondor", "--transfer", transfer, "--runtime", RUNTIMES[runtime],
                        "--tmpdir-prefix", f"{root}/tmp/", "--tmp-outdir-prefix", f"{root}/out/", *args)


def worker_ran(records, runtime):
    assert {r["runtime"]["name"] for r in records} == {runtime}
    assert all(r["host"] and r["stage_in"]["method"] in ("htcondor", "shared", "chirp (parrot)") for r in records)


@pytest.mark.parametrize("transfer", ["htcondor", "shared", "chirp"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wordcount_on_the_pool(scailfin_cwl, area, tmp_path, runtime, transfer):
    root, transfer = area
    run = run_on_pool(scailfin_cwl, root, transfer, runtime, "--outdir", tmp_path / "result",
                      *example("wordcount", "wordcount.cwl", "wordcount-job.yml", root=root))
    assert run.returncode == 0, run.stderr
    records = result_records(run.stderr)
    check_wordcount(tmp_path / "result", records, runtime)
    worker_ran(records, runtime)
    assert {r["stage_in"]["method"] for r in records} == {"chirp (parrot)" if transfer == "chirp" else transfer}


@pytest.mark.parametrize("transfer", ["htcondor", "shared", "chirp"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_decay_scatter_on_the_pool(scailfin_cwl, area, tmp_path, runtime, transfer):
    root, transfer = area
    run = run_on_pool(scailfin_cwl, root, transfer, runtime, "--parallel", "--outdir", tmp_path / "result",
                      *example("decay-scatter", "decay-scatter.cwl", "decay-scatter-job.json", root=root))
    assert run.returncode == 0, run.stderr
    records = result_records(run.stderr)
    check_decay_scatter(tmp_path / "result", run.output, records, runtime)
    worker_ran(records, runtime)


@pytest.mark.parametrize("transfer", ["htcondor", "shared", "chirp"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inventory_on_the_pool(scailfin_cwl, area, tmp_path, runtime, transfer):
    root, transfer = area
    run = run_on_pool(scailfin_cwl, root, transfer, runtime, "--outdir", tmp_path / "result",
                      *example("inventory", "inventory.cwl", "inventory-job.yml", root=root))
    assert run.returncode == 0, run.stderr
    records = result_records(run.stderr)
    check_inventory(tmp_path / "result", records, runtime)
    worker_ran(records, runtime)


def test_cwl_v12_conformance_suite_through_htcondor_file_transfer(tmp_path, image_roots, pool):
    """The whole suite, every step (with a default container for those that name none) an HTCondor
    job whose files travel through HTCondor's file transfer: the hardest path for CWL's file handling
    (InitialWorkDir, secondaryFiles, Directory outputs, in-place updates, streams)."""
    out, results = run_suite_in_process(tmp_path, image_roots, "apptainer", workers=4, scailfin_options=[
        "--scheduler", "htcondor", "--transfer", "htcondor", "--default-container",
        "docker.io/library/debian:stable-slim"])
    check_whole_suite(out, results, ["apptainer", "htcondor"], "htcondor, file transfer, apptainer")


def test_missing_image_fails_the_step_with_the_reason_and_leaves_no_job(scailfin_cwl, tmp_path, pool):
    run = scailfin_cwl("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer",
                       os.path.join(DATA, "missing-image.cwl"))
    assert run.returncode == 1
    line = next(line for line in run.stderr.splitlines() if "no-such-image" in line and "not found" in line)
    assert "[job missing-image.cwl]" in line and "apptainer" in line and "htcondor scheduler" in line
    assert jobs_in_queue(pool, 'JobBatchName == "missing-image"') == []


def test_a_vacated_job_reruns_and_the_workflow_completes_with_whole_outputs(scailfin_cwl, tmp_path, pool):
    done = {}

    def vacate_once_running():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = pool.query(constraint='JobBatchName == "slow-writer" && JobStatus == 2 && '
                                            'JobCurrentStartExecutingDate =!= undefined', projection=["ClusterId"])
            if running:
                time.sleep(3)  # mid-run: the step is writing its output
                pool.act(htcondor2.JobAction.Vacate, 'JobBatchName == "slow-writer"', "test: vacate mid-run")
                done["vacated"] = True
                return
            time.sleep(0.2)

    import threading
    thread = threading.Thread(target=vacate_once_running)
    thread.start()
    run = scailfin_cwl("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer",
                       "--outdir", tmp_path / "out", os.path.join(DATA, "slow-writer.cwl"))
    thread.join()
    assert done.get("vacated"), "the job was never seen running"
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "out" / "numbers.txt").read_text().splitlines()
    assert lines == [str(i) for i in range(1, 201)]  # whole: every line, once
    events = open(os.path.join(_run_dir(run.stderr), "events.log")).read()
    assert "Job was evicted" in events and events.count("Job executing on host") >= 2


def _run_dir(stderr):
    line = next(line for line in stderr.splitlines() if "result records and step logs are in" in line)
    return line.rsplit(" ", 1)[-1]


def test_ctrl_c_during_a_scatter_leaves_no_job_of_the_run(tmp_path, image_roots, pool):
    name = f"long-scatter-{os.getpid()}-{int(time.time())}"  # the batch name: this run's jobs only
    workflow = tmp_path / f"{name}.cwl"
    shutil.copy(os.path.join(DATA, "long-scatter.cwl"), workflow)
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    proc = subprocess.Popen([exe, "--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer",
                             "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--parallel",
                             workflow, os.path.join(DATA, "long-scatter-job.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    mine = f'JobBatchName == "{name}"'
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(jobs_in_queue(pool, mine)) < 6:
            time.sleep(0.2)
        assert len(jobs_in_queue(pool, mine)) == 6
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: leave no scailfin-cwl behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted: cancelling this run's jobs" in err
    assert jobs_in_queue(pool, mine) == []


def test_a_stopped_schedd_fails_the_run_before_anything_is_submitted(scailfin_cwl, tmp_path, pool):
    collector = htcondor2.Collector()
    [master] = collector.query(htcondor2.AdType.Master)
    wait_until_no_slot_is_claimed(collector)  # or the startd keeps the stopped schedd's claims for minutes
    htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOff, "SCHEDD")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and collector.query(htcondor2.AdType.Schedd, projection=["Name"]):
            time.sleep(0.5)
        run = scailfin_cwl("--scheduler", "htcondor", "--runtime", "apptainer",
                           *example("wordcount", "wordcount.cwl", "wordcount-job.yml"))
        assert run.returncode == 1
        assert "scailfin-cwl: error: the pool at" in run.stderr and "advertises no schedd" in run.stderr
        assert "submitted to the htcondor scheduler" not in run.stderr
    finally:
        htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOn, "SCHEDD")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, "localhost")).query(
                    constraint="false", projection=["ClusterId"])
                break
            except Exception:  # noqa: BLE001  (coming back up)
                time.sleep(0.5)


@pytest.mark.parametrize("transfer", ["htcondor", "shared", "chirp"])
def test_a_second_run_through_the_pool_takes_every_step_from_the_cache_whichever_scheduler_ran_it(
        scailfin_cwl, area, tmp_path, transfer):
    root, transfer = area
    cache = f"{root}/cache"  # for transfer shared, on the shared file system: the step's outdir is its entry
    shutil.copytree(os.path.join(EXAMPLES, "wordcount"), f"{root}/wordcount")
    args = ("--cachedir", cache, *example("wordcount", "wordcount.cwl", "wordcount-job.yml", root=root))
    on_pool = ("--scheduler", "htcondor", "--transfer", transfer, "--runtime", "apptainer", "--tmpdir-prefix",
               f"{root}/tmp/")  # the steps' outdirs are their cache entries (cwltool: no --tmp-outdir-prefix)
    first = scailfin_cwl(*on_pool, "--outdir", tmp_path / "first", *args)
    assert first.returncode == 0, first.stderr
    assert cache_states(first) == {"done": ["count_words", "split_words"]}
    again = scailfin_cwl(*on_pool, "--outdir", tmp_path / "again", *args)
    assert again.returncode == 0, again.stderr
    assert jobs_submitted(again) == [] and cache_states(again) == {"cached": ["count_words", "split_words"]}
    local = scailfin_cwl("--runtime", "podman", "--outdir", tmp_path / "local", *args)
    assert local.returncode == 0, local.stderr
    assert jobs_submitted(local) == [] and cache_states(local) == {"cached": ["count_words", "split_words"]}
    for name in ("words.txt", "count.txt"):
        assert (tmp_path / "first" / name).read_text() == (tmp_path / "again" / name).read_text() \
            == (tmp_path / "local" / name).read_text()


def test_a_run_whose_jobs_were_removed_from_the_queue_resumes_with_only_the_steps_that_had_not_finished(
        tmp_path, image_roots, pool):
    name = f"resume-scatter-{os.getpid()}-{int(time.time())}"  # the batch name: this run's jobs only
    workflow = tmp_path / f"{name}.cwl"
    shutil.copy(os.path.join(DATA, "resume-scatter.cwl"), workflow)

    def condor_rm(proc, run_dir):
        pool.act(htcondor2.JobAction.Remove, f'JobBatchName == "{name}"', "test: condor_rm of the run's jobs")

    interrupt_then_resume(tmp_path, image_roots, ["--scheduler", "htcondor", "--transfer", "htcondor", "--runtime",
                                                  "apptainer"], condor_rm, wait_s=60, workflow=workflow)
