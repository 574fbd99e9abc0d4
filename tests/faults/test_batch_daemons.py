# Faults of the batch systems' own daemons, injected on the test site in the middle of a 24-way
# scatter run by scailfin-cwl: HTCondor's schedd restarted (gracefully, and killed with SIGKILL and
# restarted by its master), HTCondor's startd killed with SIGKILL under running steps, Slurm's
# slurmctld restarted. The run must complete with every output whole, and say how many steps
# the batch system ran again (the trace's restarts). And the front end itself killed with SIGKILL:
# its jobs go when their lease runs out, and a rerun with --cachedir runs only what had not finished.
# What cannot be survived fails clearly, never hangs: a schedd that lost its queue, one silent for
# longer than --schedd-timeout.
import errno
import json
import os
import signal
import subprocess
import sys
import time

import htcondor2
import pytest

from scailfin_exec.report.trace import read_trace

from ..conftest import REPO, forget_a_killed_startds_slots, jobs_in_queue, wait_for, wait_until_no_slot_is_claimed
from ..cwl.test_cache import interrupt_then_resume

DATA = os.path.join(REPO, "tests", "faults", "data")
STEPS = 24


def site_order(order):
    """Have the site's keeper (tests/site/start) inject a fault: a line on its FIFO."""
    cache = os.environ.get("SCAILFIN_CACHE", "/var/cache/scailfin-exec")
    path = os.path.join(cache, "site", "slurm", "control", "slurmctld")
    deadline = time.monotonic() + 15
    while True:  # the keeper reopens its FIFO after each order: it may be between two opens
        try:
            fifo = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline:
                raise AssertionError(f"the site's keeper does not read its FIFO {path}: {e}") from None
            time.sleep(0.2)
    try:
        os.write(fifo, order.encode() + b"\n")
    finally:
        os.close(fifo)


class Scatter:
    """scailfin-cwl running the 24-way scatter (each step `seconds` long) in the background."""

    def __init__(self, tmp_path, image_roots, scheduler_args, seconds=4):
        self.run_dir = tmp_path / "run"
        job = tmp_path / "job.json"
        job.write_text(json.dumps({"ids": list(range(1, STEPS + 1)), "seconds": seconds}))
        exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
        self.proc = subprocess.Popen(
            [exe, "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--parallel", "--run-dir",
             self.run_dir, "--outdir", tmp_path / "out", *scheduler_args, os.path.join(DATA, "scatter24.cwl"), job],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)

    def ended(self):
        return read_trace(os.path.join(self.run_dir, "trace.tsv"))

    def wait_until_ended(self, n, seconds=300):
        assert wait_for(lambda: len(self.ended()) >= n or self.proc.poll() is not None, seconds), \
            f"fewer than {n} steps ended in {seconds} s"
        assert self.proc.poll() is None, "the run ended before the fault could be injected"

    def finish(self, seconds=600):
        try:
            return self.proc.communicate(timeout=seconds)
        finally:
            self.stop()

    def stop(self):
        """A run still going (the test failed) is interrupted, then killed: none is left behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()

    def check_whole(self, out, err):
        """Every step ended once in the trace, done, with its own output."""
        assert self.proc.returncode == 0, err[-4000:]
        said = json.loads(out)["said"]
        assert [open(f["path"]).read() for f in said] == [f"step {i}\n" for i in range(1, STEPS + 1)]
        rows = self.ended()
        assert len(rows) == STEPS and {r["state"] for r in rows} == {"done"}, rows
        return sum(int(r["restarts"] or 0) for r in rows)


@pytest.fixture
def scatter(tmp_path, image_roots):
    """scatter(scheduler_args, seconds=4): a Scatter, stopped after the test whatever happened in it."""
    started = []

    def start(scheduler_args, seconds=4):
        started.append(Scatter(tmp_path, image_roots, scheduler_args, seconds))
        return started[-1]
    yield start
    for run in started:
        run.stop()


def master_ad():
    collector = htcondor2.Collector()
    [master] = collector.query(htcondor2.AdType.Master)
    return collector, master


def schedd_answers(collector):
    try:
        htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, "localhost")).query(
            constraint="false", projection=["ClusterId"])
        return True
    except Exception:  # noqa: BLE001  (down, or coming back up)
        return False


def wait_for_schedd(collector, seconds=120):
    assert wait_for(lambda: schedd_answers(collector), seconds), f"the schedd did not come back in {seconds} s"


ON_POOL = ["--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer"]


@pytest.mark.cell("schedd restarted mid-scatter", "htcondor (file transfer)", "survives: every step once")
def test_a_schedd_restarted_mid_scatter_the_run_completes_and_no_step_runs_twice(scatter, pool):
    run = scatter(ON_POOL)
    run.wait_until_ended(4)
    collector, master = master_ad()
    htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOff, "SCHEDD")
    time.sleep(3)
    htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOn, "SCHEDD")
    wait_for_schedd(collector)
    out, err = run.finish()
    assert run.check_whole(out, err) == 0  # the schedd reconnected to its running jobs


@pytest.mark.cell("schedd killed (SIGKILL) mid-scatter, restarted by its master", "htcondor (file transfer)",
                  "survives: every step once")
def test_a_schedd_killed_mid_scatter_the_run_completes_and_no_step_runs_twice(scatter, pool):
    run = scatter(ON_POOL)
    run.wait_until_ended(4)
    collector, _ = master_ad()
    site_order("kill-schedd")
    time.sleep(2)
    wait_for_schedd(collector)
    out, err = run.finish()
    assert run.check_whole(out, err) == 0


@pytest.mark.cell("startd killed (SIGKILL) under running steps", "htcondor (file transfer)",
                  "survives: the steps rerun, outputs whole, restarts counted")
def test_a_startd_killed_under_running_steps_they_rerun_and_the_trace_counts_it(scatter, pool):
    # the steps whose starters went with the startd are waited for as long as their job lease
    run = scatter(ON_POOL + ["--job-lease", "30"], seconds=8)
    run.wait_until_ended(4)
    killed = time.time()
    site_order("kill-startd")
    out, err = run.finish()
    assert run.check_whole(out, err) >= 1
    forget_a_killed_startds_slots(master_ad()[0], killed)


def _slurmctld(order, wanted):
    site_order(order)
    assert wait_for(lambda: wanted in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout,
                    60), f"slurmctld is not {wanted} after {order}"


@pytest.mark.cell("slurmctld restarted mid-scatter", "slurm", "survives: every step once")
def test_a_slurmctld_restarted_mid_scatter_the_run_completes_and_no_step_runs_twice(scatter, slurm):
    run = scatter(["--scheduler", "slurm", "--runtime", "apptainer"])
    run.wait_until_ended(4)
    _slurmctld("stop", "DOWN")
    time.sleep(5)  # the run polls a controller that does not answer
    _slurmctld("start", "UP")
    out, err = run.finish()
    assert run.check_whole(out, err) == 0


@pytest.mark.cell("front end killed (SIGKILL) mid-scatter", "htcondor (file transfer)",
                  "queued jobs removed once the run's lease ran out, running ones run to their end; a rerun with "
                  "--cachedir runs only what had not finished")
def test_a_front_end_killed_mid_scatter_leaves_no_queued_job_after_its_lease_and_a_rerun_finishes_the_rest(
        tmp_path, image_roots, pool):
    lease = 20

    def sigkill(proc, run_dir):
        run_id = open(os.path.join(run_dir, "run-id")).read().strip()
        mine = f'ScailfinRun == "{run_id}"'
        queued = f"{mine} && JobStatus == 1"
        assert jobs_in_queue(pool, queued), "no queued job of the run to leave behind"
        proc.kill()
        killed = time.monotonic()
        # the schedd looks at periodic_remove every 5 s here (tests/site/condor_config.local)
        assert wait_for(lambda: not jobs_in_queue(pool, queued), lease * 2 + 30), \
            f"queued jobs of the killed run still there: {jobs_in_queue(pool, queued)}"
        assert time.monotonic() - killed >= lease / 2  # removed by the lease, not by anything else
        removed = [ad for ad in pool.history(mine, ["RemoveReason"], match=-1) if "RemoveReason" in ad]
        assert removed and all("ScailfinLeaseUntil" in ad["RemoveReason"] for ad in removed)

    interrupt_then_resume(tmp_path, image_roots, ON_POOL + ["--run-lease", str(lease)], sigkill, wait_s=80)


@pytest.mark.cell("the network between the submit side and the pool down for 60 s mid-scatter",
                  "htcondor (file transfer)", "survives: every step once, outputs whole")
def test_a_network_down_for_a_minute_mid_scatter_the_run_rides_it_out(scatter, pool):
    run = scatter(ON_POOL, seconds=6)
    run.wait_until_ended(4)
    collector, _ = master_ad()
    site_order("net-down-60")
    assert wait_for(lambda: not schedd_answers(collector), 15), "the schedd still answers: the network is not down"
    down = time.monotonic()
    out, err = run.finish()
    assert time.monotonic() - down > 40  # the run went on through the outage, not around it
    assert run.check_whole(out, err) == 0  # the schedd reconnected to the steps running through it


def _failed_steps_say(run, words, seconds):
    """The run ended by itself within seconds, failed, and its failed steps say words."""
    started = time.monotonic()
    out, err = run.finish(seconds)
    assert time.monotonic() - started < seconds
    assert run.proc.returncode != 0 and words in err, err[-4000:]
    rows = run.ended()
    assert len(rows) == STEPS and "failed" in {r["state"] for r in rows}, rows  # every step accounted for


@pytest.mark.cell("the schedd's queue lost mid-scatter (killed, its spool wiped, restarted)",
                  "htcondor (file transfer)", "fails clearly: the lost steps fail once the schedd answers again (two "
                  "counts of its queue), nothing hangs")
def test_jobs_a_schedd_lost_fail_the_run_clearly_instead_of_hanging(scatter, pool):
    # (a timeout longer than the schedd's restart, which its master delays more after each crash)
    run = scatter(ON_POOL + ["--schedd-timeout", "120", "--run-lease", "20"], seconds=6)
    run.wait_until_ended(4)
    collector, _ = master_ad()
    site_order("wipe-queue")
    try:
        time.sleep(2)
        wait_for_schedd(collector)
        _failed_steps_say(run, "nor in its history: the schedd lost it", 240)
    finally:
        # the startd keeps the lost schedd's claims (nothing of the new schedd's renews them) for
        # half an hour: a new startd frees the slots for the next tests
        killed = time.time()
        site_order("kill-startd")
        forget_a_killed_startds_slots(collector, killed)
        wait_until_no_slot_is_claimed(collector)


@pytest.mark.cell("the schedd down for longer than the run's --schedd-timeout", "htcondor (file transfer)",
                  "fails clearly after the timeout, nothing hangs")
def test_a_schedd_silent_for_longer_than_the_timeout_fails_the_run_clearly(scatter, pool):
    run = scatter(ON_POOL + ["--schedd-timeout", "20", "--run-lease", "20"], seconds=6)
    run.wait_until_ended(4)
    collector, master = master_ad()
    htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOff, "SCHEDD")
    try:
        _failed_steps_say(run, "has not answered for", 240)
    finally:
        htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOn, "SCHEDD")
        wait_for_schedd(collector)
        # what the run left queued goes with its lease: the next tests find a quiet pool
        assert wait_for(lambda: not jobs_in_queue(pool, "JobStatus == 1"), 120)
