# The htcondor scheduler against the real test pool (HTCondor 25 in the test site): real jobs,
# real worker shims, real containers on the worker.
import json
import os
import subprocess
import sys
import time

import pytest

from scailfin_exec.config import Settings
from scailfin_exec.job import ImageSources, Job
from scailfin_exec.schedulers import SchedulerError
from scailfin_exec.schedulers.htcondor import HTCondorScheduler, HTCondorSettings, condor_arguments

from ..conftest import jobs_in_queue


def wait_until_made(handles, timeout=30.0):
    """Until HTCondor has made these jobs of a late-materialized cluster (their SUBMIT events
    read), or timeout: the caller asserts what it needs."""
    deadline = time.monotonic() + timeout
    while not all(h.native.materialized for h in handles) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def job(tmp_path, image_roots):
    def make(name, argv, workspace, runtime="apptainer", **kw):
        return Job(id=name, image="docker.io/library/alpine", argv=argv, workspace=str(workspace), runtime=[runtime],
                   images=ImageSources(image_roots, None, False), labels={"step": name, "workflow": "t"}, **kw)
    return make


def test_arguments_are_quoted_for_the_submit_language():
    assert condor_arguments(["python3", "a b", "it's", 'say "x"']) == '"\'python3\' \'a b\' \'it\'\'s\' \'say ""x""\'"'
    with pytest.raises(SchedulerError, match="newline"):
        condor_arguments(["a\nb"])


def test_jobs_ready_together_go_in_one_transaction_and_carry_image_and_workspace(pool, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    with HTCondorScheduler(str(tmp_path / "run"), Settings(transfer="htcondor"), batch_name="one-transaction") as sched:
        handles = [sched.submit(job(f"s{i}", ["sh", "-c", f"echo {i} > out{i}.txt; sleep 2"], ws,
                                    transfer="htcondor", outputs=[f"out{i}.txt"])) for i in range(5)]
        time.sleep(1.5)  # all submitted, still running: look at them in the queue
        ads = pool.query(constraint='JobBatchName == "one-transaction"',
                         projection=["ClusterId", "ProcId", "ScailfinImage", "ScailfinWorkspace", "ScailfinStep", "Arguments",
                                     "RequestCpus", "RequestMemory"])
        results = [sched.wait(h, timeout=120) for h in handles]
    assert all(r.ok for r in results), [r.describe() for r in results]
    assert len({ad["ClusterId"] for ad in ads}) == 1 and len(ads) == 5  # one cluster: one transaction
    assert {ad["ScailfinStep"] for ad in ads} == {f"s{i}" for i in range(5)}
    assert {ad["ScailfinImage"] for ad in ads} == {"docker.io/library/alpine"}
    assert {ad["ScailfinWorkspace"] for ad in ads} == {str(ws)}
    assert all("--image docker.io/library/alpine" in ad["Arguments"] and f"--workspace {ws}" in ad["Arguments"] for ad in ads)
    assert [(ws / f"out{i}.txt").read_text() for i in range(5)] == [f"{i}\n" for i in range(5)]
    assert {r.record.runtime.name for r in results} == {"apptainer"}
    assert os.path.exists(tmp_path / "run" / "events.log")


def test_a_job_end_the_event_reader_missed_is_found_by_reading_the_log_again(pool, tmp_path, job, monkeypatch,
                                                                             capfd):
    import scailfin_exec.schedulers.htcondor.events as module

    monkeypatch.setattr(module, "RESCAN_AFTER_S", 2.0)
    ws = tmp_path / "ws"
    ws.mkdir()
    with HTCondorScheduler(str(tmp_path / "run"), Settings(transfer="htcondor"), batch_name="missed-end") as sched:
        deliver = sched._follower.on_event
        dropped = []

        def lossy(event):  # the fault: the incremental reader loses the job's end
            if event.type.name == "JOB_TERMINATED" and not dropped:
                dropped.append(event)
                return
            deliver(event)

        sched._follower.on_event = lossy
        result = sched.wait(sched.submit(job("s", ["sh", "-c", "echo hi > out.txt"], ws, transfer="htcondor",
                                             outputs=["out.txt"])), timeout=120)
    assert dropped and result.ok, result.describe()
    assert (ws / "out.txt").read_text() == "hi\n"
    assert "the event log reader missed JOB_TERMINATED" in capfd.readouterr().err


def test_a_job_held_by_a_missing_input_fails_with_the_hold_reason_and_leaves_the_queue(pool, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    missing = tmp_path / "not-there.txt"
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="held-input") as sched:
        result = sched.run(job("needs-input", ["cat", str(missing)], ws, transfer="htcondor", inputs=[str(missing)]))
    assert not result.ok and result.exit_code is None
    assert "held by HTCondor" in result.error and "not-there.txt" in result.error
    assert "HoldReasonCode 13" in result.error
    assert jobs_in_queue(pool, 'JobBatchName == "held-input"') == []


def test_transfer_shared_fails_where_the_worker_cannot_see_the_workspace_and_htcondor_transfer_works(pool, tmp_path, job):
    # the test site gives every job a private /tmp: a workspace under /tmp is not shared
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "in.txt").write_text("from the submit side\n")
    step = ["sh", "-c", f"cat {ws}/in.txt > {ws}/copy.txt"]  # reads the original absolute path
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="visibility") as sched:
        shared = sched.run(job("shared", step, ws, transfer="shared"))
        transferred = sched.run(job("transferred", step, ws, transfer="htcondor", outputs=["copy.txt"]))
    assert shared.exit_code == 254 and "workspace" in shared.shim_error.message
    assert "is not a directory on this worker" in shared.shim_error.message
    assert transferred.ok, transferred.describe()
    assert (ws / "copy.txt").read_text() == "from the submit side\n"


def test_transfer_shared_on_a_shared_file_system(pool, tmp_path, job):
    shared_root = "/scratch/scailfin-shared"
    ws = tempfile_dir(shared_root)
    (ws / "in.txt").write_text("shared\n")
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="shared-fs") as sched:
        result = sched.run(job("shared", ["sh", "-c", "cat in.txt in.txt > twice.txt"], ws, transfer="shared",
                               runtime="charliecloud"))
    assert result.ok, result.describe()
    assert (ws / "twice.txt").read_text() == "shared\nshared\n"
    assert result.record.runtime.name == "charliecloud" and result.record.stage_in.method == "shared"
    # /scratch is not in the image (a CVMFS-style directory named "alpine:latest"): the keeper made
    # the mount point on a private layer over it
    assert "made mount points the image lacks (/scratch" in " ".join(result.record.notes)


def tempfile_dir(root):
    import pathlib
    import tempfile
    return pathlib.Path(tempfile.mkdtemp(dir=root))


def test_cancel_removes_the_job_from_the_queue(pool, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="cancelled") as sched:
        handle = sched.submit(job("long", ["sleep", "300"], ws, transfer="htcondor"))
        deadline = time.monotonic() + 60
        while handle.native.state != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert handle.native.state == "running"
        sched.cancel(handle)
        result = sched.wait(handle, timeout=60)
    assert result.error == "cancelled"
    assert jobs_in_queue(pool, 'JobBatchName == "cancelled"') == []


def test_close_removes_every_job_of_the_run(pool, tmp_path, job):
    ws = tmp_path / "ws"
    ws.mkdir()
    sched = HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="closed-run")
    handles = [sched.submit(job(f"l{i}", ["sleep", "300"], ws, transfer="htcondor")) for i in range(4)]
    wait_until_made(handles)
    assert len(jobs_in_queue(pool, 'JobBatchName == "closed-run"')) == 4
    sched.close()
    assert all(sched.poll(h).error == "cancelled" for h in handles)
    assert jobs_in_queue(pool, 'JobBatchName == "closed-run"') == []


def test_an_unreachable_collector_fails_before_anything_is_submitted(tmp_path):
    with pytest.raises(SchedulerError, match="cannot reach the HTCondor collector at 127.0.0.1:9"):
        HTCondorScheduler(str(tmp_path / "run"), Settings(), options=HTCondorSettings(pool="127.0.0.1:9"))
    assert not (tmp_path / "run").exists()


def test_submitting_as_root_is_refused_before_contacting_the_pool(tmp_path):
    # uid 0 for real, in a user namespace of our own (no privileges on the host)
    code = ("from scailfin_exec.schedulers.htcondor import HTCondorScheduler, HTCondorSettings\n"
            f"HTCondorScheduler({str(tmp_path / 'run')!r}, options=HTCondorSettings(pool='127.0.0.1:9'))")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", code],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "refusing to submit as root" in proc.stderr and "cannot reach" not in proc.stderr


def test_jobs_carry_their_description_in_the_job_ad_and_their_directory_is_made_when_they_end(pool, tmp_path, job):
    """Nothing is written per job at submission: each job's description is in its ad (the shared
    part once per cluster), the run notes the jobs in one file (jobs.jsonl), and a job whose transfer
    mode sends no file of its own (chirp here) gets no directory before it ends; a job with secrets
    instead sends its private job file, and nothing of it is in its ad. When a job ends, its
    directory holds its job file, logs and result as with every scheduler, and run-job replays it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    run = tmp_path / "run"
    with HTCondorScheduler(str(run), Settings(), batch_name="in-the-ad") as sched:
        handles = [sched.submit(job(f"a{i}", ["sh", "-c", f"echo {i} > out{i}.txt; sleep 3"], ws, transfer="chirp",
                                    outputs=[f"out{i}.txt"])) for i in range(3)]
        handles.append(sched.submit(job("secret", ["sh", "-c", "echo $TOKEN > secret.txt; sleep 3"], ws,
                                        env={"TOKEN": "hunter2-token"}, secrets=["hunter2-token"], transfer="htcondor",
                                        outputs=["secret.txt"])))
        with pytest.raises(SchedulerError, match="used twice"):
            sched.submit(job("a1", ["true"], ws, transfer="chirp"))
        time.sleep(1.5)
        assert not any((run / f"a{i}").exists() for i in range(3))  # not before they end
        assert (run / "secret" / "job.json").exists()
        ads = pool.query(constraint='JobBatchName == "in-the-ad"', projection=[])
        results = [sched.wait(h, timeout=120) for h in handles]
    assert all(r.ok for r in results), [r.describe() for r in results]
    assert len(ads) == 4 and all("hunter2" not in str(ad) for ad in ads)
    carried = [ad for ad in ads if ad["ScailfinJob"]]
    assert sorted(ad["ScailfinJobId"] for ad in carried) == ["a0", "a1", "a2"]
    assert [(ws / f"out{i}.txt").read_text() for i in range(3)] == [f"{i}\n" for i in range(3)]
    assert (ws / "secret.txt").read_text() == "hunter2-token\n"
    records = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    assert sorted(r["job"]["id"] for r in records) == ["a0", "a1", "a2"]  # the secret one has its own file
    for name in ("a0", "secret"):
        assert {p.name for p in (run / name).iterdir()} >= {"job.json", "job.result.json", "stdout.log", "stderr.log"}
    assert not [p for p in (run / ".incoming").iterdir()]  # every arrival moved to its job's directory
    (ws / "out1.txt").unlink()
    replay = subprocess.run([sys.executable, "-m", "scailfin_exec.cli", "run-job", str(run), "a1", "--runtime",
                             "charliecloud", "--run-dir", str(tmp_path / "replay")], capture_output=True, text=True,
                            timeout=300)  # (the site's workers have Apptainer; this machine, Charliecloud)
    assert replay.returncode == 0, replay.stderr
    assert (ws / "out1.txt").read_text() == "1\n"


def test_a_batch_is_one_cluster_the_schedd_makes_and_every_job_s_first_event_is_seen(pool, tmp_path, job):
    """Each batch travels as one late-materialized cluster (the schedd makes its jobs, and writes
    their SUBMIT events, before submit() returns): none of those first events may be lost to the
    follower (300 jobs that never match a slot: they stay until the run is closed)."""
    import htcondor2

    ws = tmp_path / "ws"
    ws.mkdir()
    options = HTCondorSettings(submit_commands={"requirements": "false"})
    sched = HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="factory", options=options)
    try:
        handles = [sched.submit(job(f"f{i}", ["true"], ws, transfer="htcondor")) for i in range(300)]
        wait_until_made(handles)
        assert sum(h.native.materialized for h in handles) == 300
        assert len(jobs_in_queue(pool, 'JobBatchName == "factory"')) == 300
    finally:
        sched.close()
    events = list(htcondor2.JobEventLog(str(tmp_path / "run" / "events.log")).events(stop_after=0))
    factories = [e.cluster for e in events if e.type == htcondor2.JobEventType.CLUSTER_SUBMIT]
    assert sorted(factories) == sorted({h.native.cluster for h in handles})  # each batch one cluster
    assert jobs_in_queue(pool, 'JobBatchName == "factory"') == []


def test_a_batch_htcondor_cannot_make_into_jobs_fails_with_its_reason_and_leaves_nothing_queued(pool, tmp_path, job):
    """A job ad the schedd cannot make (here a site's submit command that becomes a parse error
    for one job's id) pauses the batch's factory: every job of the batch fails with HTCondor's
    reason, none waits forever, and the cluster leaves the queue."""
    ws = tmp_path / "ws"
    ws.mkdir()
    options = HTCondorSettings(submit_commands={"My.ScailfinProbe": "$(scailfin_id)"})
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="paused", options=options) as sched:
        handles = [sched.submit(job(name, ["true"], ws, transfer="htcondor")) for name in ("fine", "bad-")]
        results = [sched.wait(h, timeout=120) for h in handles]
    for result in results:
        assert not result.ok
        assert f"HTCondor stopped making the jobs of cluster {handles[0].native.cluster}" in result.error, result.error
        assert "Parse error" in result.error and "ScailfinProbe = bad-" in result.error, result.error
    assert jobs_in_queue(pool, 'JobBatchName == "paused"') == []
    assert (tmp_path / "run" / "bad-" / "job.json").exists()


def test_jobs_a_site_limit_keeps_unmade_are_cancelled_once_made_and_end_when_their_cluster_goes(pool, tmp_path, job):
    """A site's max_materialize holds a batch's later jobs back (here 1 at a time, and the first
    never runs): cancelling one not yet made removes it as soon as HTCondor makes it, and closing
    the run ends the ones never made when their cluster leaves the queue, without waiting."""
    ws = tmp_path / "ws"
    ws.mkdir()
    options = HTCondorSettings(submit_commands={"requirements": "false", "max_materialize": "1"})
    sched = HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="throttled", options=options)
    try:
        handles = [sched.submit(job(f"t{i}", ["true"], ws, transfer="htcondor")) for i in range(4)]
        wait_until_made(handles[:1])
        assert [h.native.materialized for h in handles] == [True, False, False, False]
        sched.cancel(handles[1])
        sched.cancel(handles[0])  # made: removed now; then HTCondor makes t1, which is removed once made
        assert sched.wait(handles[0], timeout=60).error == "cancelled"
        assert sched.wait(handles[1], timeout=60).error == "cancelled"
        assert handles[1].native.materialized
        time.sleep(1)  # HTCondor makes t2, which stays (it matches no slot), and holds t3 back
        assert not handles[3].native.materialized
        started = time.monotonic()
    finally:
        sched.close()
    assert time.monotonic() - started < 20  # not the 30 s close() gives jobs that never end
    assert [sched.poll(h).error for h in handles[2:]] == ["cancelled", "cancelled"]
    assert jobs_in_queue(pool, 'JobBatchName == "throttled"') == []


def test_jobs_a_stopped_process_left_unmade_are_adopted_from_their_factory_not_submitted_again(pool, tmp_path, job):
    """A process that stops while a site's max_materialize holds its batch's later jobs back (1
    at a time here, and the first never runs) leaves jobs found neither in the queue nor in the
    history: the next process adopts them from the cluster still making them, at the procs they
    will have, and follows them once HTCondor makes them; nothing is submitted twice."""
    ws = tmp_path / "ws"
    ws.mkdir()
    run = str(tmp_path / "run")
    options = HTCondorSettings(submit_commands={"requirements": "false", "max_materialize": "1"})
    jobs = [job(f"a{i}", ["true"], ws, transfer="htcondor") for i in range(3)]
    earlier = HTCondorScheduler(run, Settings(), batch_name="adopted", options=options)
    handles = [earlier.submit(j) for j in jobs]
    wait_until_made(handles[:1])
    earlier.detach()
    cluster = handles[0].native.cluster
    later = HTCondorScheduler(run, Settings(), batch_name="adopted", options=options)
    try:
        adopted = later.adopt([(j, None) for j in jobs])
        assert [(h.native.cluster, h.native.proc) for h in adopted] == [(cluster, 0), (cluster, 1), (cluster, 2)]
        assert [h.native.materialized for h in adopted] == [True, False, False]
        later.cancel(adopted[0])  # HTCondor then makes a1
        assert later.wait(adopted[0], timeout=60).error == "cancelled"
        wait_until_made(adopted[1:2])
        assert [ad["ProcId"] for ad in jobs_in_queue(pool, 'JobBatchName == "adopted"')] == [1]
    finally:
        later.close()
    assert jobs_in_queue(pool, 'JobBatchName == "adopted"') == []
