# The htcondor scheduler: every job description becomes a vanilla-universe HTCondor job whose
# executable launches the worker shim (description and rows: submit.py). Jobs that become ready
# together go to the schedd in one transaction (batching.py), as one cluster the schedd makes the
# jobs of itself (late materialization); one job event log per run tells us what happens to them
# (events.py); holds become failures carrying HoldReason, or are released when transient;
# evictions rerun up to max_retries; a batch the schedd cannot make fails with its reason; cancel
# and close remove the run's jobs, and a lease this process renews (lease.py) has the schedd remove
# its queued ones if it dies; a census (census.py) fails jobs a schedd lost or that stays silent.
# Submitting writes no file per job: the description travels in the job ad, the run's record of
# what was submitted is one line per job in RUN_DIR/jobs.jsonl (and one per batch in
# clusters.py's record, for adopt()), and every job starts in one shared directory (.incoming);
# a job's own directory is made when it ends (arrival.py), or before, when its transfer mode
# sends files or it has secrets.

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from dataclasses import dataclass, field

from ...config import Settings
from ...job import Job, Result, append_job_records, job_records, job_to_dict, validated, write_job
from ...shipping import build_shim
from ...transfers import mode as transfer_mode
from .. import JobHandle, Scheduler, SchedulerError, ended_result, run_identity, wait_ended
from ..batching import Batcher
from . import arrival, census, clusters, lease, pool, submit
from .events import EventFollower
from .settings import HTCondorSettings

TRANSIENT_HOLD_CODES = {6, 12, 13}  # the starter failed to start; output or input transfer failed
PERMANENT_SUBCODES = {errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.EISDIR}  # a missing input stays missing


@dataclass
class CondorJob:
    """What we know of one job, from the event log."""
    cluster: int | None = None
    proc: int | None = None
    state: str = "pending"  # pending, idle, running, held, done, failed
    materialized: bool = False  # in the queue (its SUBMIT event seen), not only in its cluster's factory
    evictions: int = 0
    releases: int = 0
    failure: str | None = None  # why we removed it
    result: Result | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def id(self) -> str:
        return f"{self.cluster}.{self.proc}"


class HTCondorScheduler(Scheduler):
    name = "htcondor"
    help = "an HTCondor pool, through the htcondor2 bindings"
    transfers = ("shared", "htcondor", "chirp")
    options_class = HTCondorSettings

    @classmethod
    def from_settings(cls, settings, batch_name: str = "scailfin") -> "HTCondorScheduler":
        return cls(settings.run_dir, settings, batch_name=batch_name)

    def __init__(self, run_dir: str | None = None, settings=None, batch_name: str = "scailfin",
                 options: HTCondorSettings | None = None):
        self.settings = settings or Settings()
        self.options = options or self.settings.of("htcondor")
        if os.geteuid() == 0:
            raise SchedulerError("refusing to submit as root: HTCondor runs root's jobs as nobody (or refuses them); "
                                 "submit as the user whose files the workflow uses")
        try:
            import htcondor2
        except ImportError as e:
            raise SchedulerError(f"the htcondor scheduler needs the HTCondor Python bindings (pip install "
                                 f"'htcondor>=25'): {e}") from None
        self.htcondor = htcondor2
        self.schedd, self.schedd_name = pool.connect(htcondor2, self.options.pool, self.options.schedd)
        super().__init__(run_dir)
        if "," in submit.submit_value("the run directory", self.run_dir):
            raise SchedulerError(f"the run directory {self.run_dir} contains ',', which HTCondor's submit language "
                                 "cannot carry in a file list")
        self.batch_name = submit.label(batch_name)
        self.run_id = run_identity(self.run_dir)
        self.shim = build_shim(self.run_dir)
        self.event_log = os.path.join(self.run_dir, "events.log")
        open(self.event_log, "a").close()
        self.incoming = os.path.join(self.run_dir, submit.INCOMING)
        self.outbox = os.path.join(self.run_dir, ".outbox", submit.OUTBOX)  # empty: sent to every job
        for directory in (self.incoming, os.path.dirname(self.outbox), self.outbox):
            os.makedirs(directory, 0o700, exist_ok=True)
        # names a job id may not take: the run directory's (an earlier process's jobs, its files)
        self._taken = {n for n in os.listdir(self.run_dir) if not n.startswith(".")} | set(job_records(self.run_dir))
        self._cond = threading.Condition()
        self._ids: dict[tuple[int, int], JobHandle] = {}
        self._clusters: dict[int, list[JobHandle]] = {}  # each cluster's jobs, for its factory's events
        self._closing = self._detached = False
        self._lease = lease.Renewal(self.schedd, self.run_id, self.options.run_lease)
        self._census = census.Census(self.schedd, self.schedd_name, self.run_id, self.options.schedd_timeout, self._made,
                                     lambda h, status: self._complete(h, arrival.collect(self.incoming, h, status)),
                                     self._abort)
        self._batcher = Batcher(self._submit_batch, self._submission_failed, "htcondor-submit")
        self._follower = EventFollower(htcondor2, self.event_log, self._on_event, self._outstanding,
                                       lambda: self._detached or (self._closing and not self._outstanding()),
                                       self._cond)

    @property
    def capacity(self) -> int:
        return self.settings.max_parallel or 1000

    # -- submitting ----------------------------------------------------------------------------

    def submit(self, job: Job) -> JobHandle:
        with self._batcher.arriving():
            handle = self._prepare(job)
            handle.native = CondorJob()
            self._follower.start()
            self._census.start()
            self._batcher.add(handle)
        return handle

    def state(self, handle: JobHandle) -> str:
        state = handle.native.state
        return "ended" if handle.native.done.is_set() else "running" if state == "running" else "queued"

    def native_id(self, handle: JobHandle) -> str | None:
        return handle.native.id if handle.native.cluster is not None else None

    def restarts(self, handle: JobHandle) -> int:
        return handle.native.evictions + handle.native.releases

    def adopt(self, jobs: list[tuple[Job, str | None]]) -> list[JobHandle | None]:
        """Jobs of this run (ScailfinRun) an earlier process submitted, found by their job id in the
        schedd's queue and history (whatever that process had noted), or, not made yet, in a
        cluster of the run whose factory is still making jobs (RUN_DIR/clusters.jsonl says which
        cluster and proc each batch's jobs have); the run's event log, read again from its start,
        tells what became of each. Call before submitting anything."""
        constraint = f'ScailfinRun == "{self.run_id}"'
        found, making = {}, {}
        queued = self.schedd.query(constraint=constraint, opts=self.htcondor.QueryOpt.IncludeClusterAd,
                                   projection=["ClusterId", "ProcId", "ScailfinJobId", "JobMaterializeNextProcId"])
        for ad in list(queued) + list(self.schedd.history(constraint, ["ClusterId", "ProcId", "ScailfinJobId"],
                                                           match=-1)):
            if "ProcId" in ad:
                found[ad.get("ScailfinJobId")] = (int(ad["ClusterId"]), int(ad["ProcId"]))
            elif "JobMaterializeNextProcId" in ad:  # a cluster ad: its factory may have jobs to make
                making[int(ad["ClusterId"])] = int(ad["JobMaterializeNextProcId"])
        unmade = clusters.unmade(self.run_dir, making)
        handles = []
        submitted = job_records(self.run_dir)
        with self._cond:
            for job, _ in jobs:
                where = found.get(job.id) or unmade.get(job.id)
                if where is None:
                    handles.append(None)  # never reached the schedd: the caller may submit it again
                    self._taken.discard(job.id)
                    continue
                self._taken.add(job.id)
                handle = self._handle(job)
                if job.id in submitted:
                    handle.submitted = submitted[job.id][0]
                handle.native = CondorJob(state="idle", materialized=job.id in found)
                self._register(handle, *where)
                handles.append(handle)
        self._lease.start()
        self._follower.start()
        self._census.start()
        return handles

    def detach(self) -> None:
        """Stop submitting and following; the run's jobs stay in the queue (adopt() finds them)."""
        with self._cond:
            self._closing = self._detached = True
            self._cond.notify_all()
        self._lease.stop()
        self._census.stop()
        self._batcher.close()
        self._follower.join(timeout=5)

    def _prepare(self, job: Job) -> JobHandle:
        """Check the job and lay out what it sends: nothing is written for it unless its transfer
        mode sends files (into its directory) or it has secrets (its private job file)."""
        self._check_transfer(job)
        directory = os.path.join(self.run_dir, job.id)
        with self._cond:  # (a job id never starts with '.', as the run directory's own .incoming, .outbox)
            if job.id in self._taken:
                raise SchedulerError(f"job id {job.id!r} used twice in run directory {self.run_dir}")
            self._taken.add(job.id)
        submit.submit_value("the workspace", job.workspace)
        submit.submit_value("the image", job.image)
        if job.secrets:
            os.mkdir(directory, 0o700)
        job = validated(transfer_mode(job.transfer).ship(job, directory, submit.RESERVED_NAMES))
        if job.secrets:
            write_job(job, os.path.join(directory, submit.JOB_FILE))
        return self._handle(job)

    def description(self) -> dict[str, str]:
        return submit.description(self.options, self.batch_name, self.run_id, self.event_log, self.incoming,
                                  self.htcondor.classad.quote)

    def rows(self, batch: list[JobHandle]) -> list[dict[str, str]]:
        """The batch's rows: each job's description split into what the batch shares and its own."""
        fields = [submit.without_defaults(job_to_dict(h.job)) for h in batch]
        shared = submit.shared_fields([f for f, h in zip(fields, batch) if not h.job.secrets])
        base = submit.encoded(shared)
        return [submit.row(h.job, {k: v for k, v in f.items() if k not in shared}, base, h.directory, self.shim,
                           self.outbox, self.settings.worker_python, self.htcondor.classad.quote,
                           h.job_file if h.job.secrets else None)
                for f, h in zip(fields, batch)]

    def _submit_batch(self, batch: list[JobHandle]) -> None:
        described, rows = submit.hoist(self.description(), self.rows(batch))
        described = submit.late_materialized(described, len(rows))
        append_job_records(self.run_dir, [(h.submitted, h.job) for h in batch if not h.job.secrets])
        # The schedd writes a job's first events (SUBMIT at once, as it makes the jobs) before
        # submit() returns: the follower looks jobs up under this lock, and must find them.
        with self._cond:  # (the bindings hold Python's GIL through submit(): nothing else runs)
            if any(rows):
                result = self.schedd.submit(self.htcondor.Submit(described), itemdata=iter(rows))
            else:  # one job, or jobs alike in all but their ids: there are none
                result = self.schedd.submit(self.htcondor.Submit(described), count=len(rows))
            cluster, first = result.cluster(), result.first_proc()
            self._lease.start()
            for offset, handle in enumerate(batch):
                handle.native.state = "idle"
                self._register(handle, cluster, first + offset)
        try:  # (the jobs are submitted: a failure here must not fail them)
            clusters.note(self.run_dir, cluster, first, [h.job.id for h in batch])
        except OSError as e:
            print(f"scailfin-exec: htcondor: cannot note cluster {cluster} in {clusters.CLUSTERS} ({e}): a process "
                  "taking this run over will not find the jobs HTCondor has not made yet", file=sys.stderr)

    def _register(self, handle: JobHandle, cluster: int, proc: int) -> None:
        """Under self._cond: the job is (cluster, proc) from now on, for the event follower."""
        handle.native.cluster, handle.native.proc = cluster, proc
        self._ids[(cluster, proc)] = handle
        self._clusters.setdefault(cluster, []).append(handle)

    def _open_jobs_of(self, cluster: int) -> list[JobHandle]:
        with self._cond:
            return [h for h in self._clusters.get(cluster, []) if not h.native.done.is_set()]

    def _submission_failed(self, handle: JobHandle, error: Exception) -> None:
        self._complete(handle, Result(handle.job.id, None, error=f"submission to {self.schedd_name} failed: {error}"))

    # -- following -----------------------------------------------------------------------------

    def _outstanding(self) -> dict:
        with self._cond:
            return {(h.native.cluster, h.native.proc): (h.native.state, h.job.id) for h in self._handles
                    if h.native and h.native.cluster is not None and not h.native.done.is_set()}

    def _made(self) -> dict:
        with self._cond:  # (a job its cluster has not made yet is in no queue)
            return {k: h for k, h in self._ids.items() if h.native.materialized and not h.native.done.is_set()}

    def _on_event(self, event) -> None:
        types = self.htcondor.JobEventType
        with self._cond:
            handle = self._ids.get((event.cluster, event.proc))
        if handle is None:
            if event.type == types.FACTORY_PAUSED:
                self._on_factory_paused(event)
            elif event.type == types.CLUSTER_REMOVE:
                self._on_cluster_removed(event)
            return
        native = handle.native
        if event.type == types.SUBMIT:
            native.materialized = True
            if handle.cancelled:  # cancelled while its cluster had not made it yet
                self._act(self.htcondor.JobAction.Remove, handle, "scailfin-exec: cancelled")
        elif event.type == types.EXECUTE:
            native.state = "running"
        elif event.type == types.JOB_EVICTED:
            native.state = "idle"
            native.evictions += 1
            if native.evictions > self.options.max_retries:
                self._remove(handle, f"evicted {native.evictions} times (max_retries {self.options.max_retries})")
        elif event.type == types.JOB_HELD:
            self._on_hold(handle, event)
        elif event.type == types.JOB_RELEASED:
            native.state = "idle"
        elif event.type == types.JOB_TERMINATED:
            status = int(event.get("ReturnValue", -1)) if event.get("TerminatedNormally", True) else \
                128 + int(event.get("TerminatedBySignal", 0))
            self._complete(handle, arrival.collect(self.incoming, handle, status))
        elif event.type == types.JOB_ABORTED:
            self._abort(handle, f"removed from the queue ({event.get('Reason', 'no reason given')})")

    def _abort(self, handle: JobHandle, reason: str) -> None:
        """A job that left the queue without running to its end (or never entered it)."""
        if not handle.native.done.is_set():
            reason = handle.native.failure or ("cancelled" if handle.cancelled else reason)
            self._complete(handle, arrival.abort(self.incoming, handle, reason))

    def _on_factory_paused(self, event) -> None:
        """The schedd stopped making a batch's jobs (one of them could not become a job ad): the
        batch fails with HTCondor's reason, its jobs already made are removed (their removal ends
        them), and those never made end here."""
        batch = self._open_jobs_of(event.cluster)
        if not batch:
            return
        why = f"HTCondor stopped making the jobs of cluster {event.cluster}: {event.get('Reason', 'no reason given')}"
        for handle in batch:
            handle.native.failure = handle.native.failure or why
        try:
            self.schedd.act(self.htcondor.JobAction.Remove, f"ClusterId == {event.cluster}",
                            "scailfin-exec: " + why[:200])
        except Exception as e:  # noqa: BLE001
            print(f"scailfin-exec: htcondor: removing cluster {event.cluster} failed: {e}", file=sys.stderr)
        for handle in batch:
            if not handle.native.materialized:
                self._abort(handle, why)

    def _on_cluster_removed(self, event) -> None:
        """A batch's cluster left the queue (removed, or every job ended): a job it had not made
        yet (a site's max_materialize or max_idle holds them back) ends here, as removed."""
        for handle in [h for h in self._open_jobs_of(event.cluster) if not h.native.materialized]:
            self._abort(handle, "removed from the queue before HTCondor made it")

    def _on_hold(self, handle: JobHandle, event) -> None:
        native = handle.native
        native.state = "held"
        reason = event.get("HoldReason", "no reason given")
        code, subcode = int(event.get("HoldReasonCode", 0)), int(event.get("HoldReasonSubCode", 0))
        transient = code in TRANSIENT_HOLD_CODES and subcode not in PERMANENT_SUBCODES
        if transient and native.releases < self.options.max_retries:
            native.releases += 1
            self._act(self.htcondor.JobAction.Release, handle, f"scailfin-exec: transient hold, retry {native.releases}")
            return
        self._remove(handle, f"held by HTCondor: {reason} (HoldReasonCode {code}, HoldReasonSubCode {subcode})")

    def _remove(self, handle: JobHandle, why: str) -> None:
        handle.native.failure = handle.native.failure or why
        self._act(self.htcondor.JobAction.Remove, handle, "scailfin-exec: " + why[:200])

    def _act(self, action, handle: JobHandle, reason: str) -> None:
        try:
            self.schedd.act(action, handle.native.id, reason)
        except Exception as e:  # noqa: BLE001
            print(f"scailfin-exec: htcondor: {action.name} of job {handle.native.id} failed: {e}", file=sys.stderr)

    def _complete(self, handle: JobHandle, result: Result) -> None:
        native = handle.native
        with self._cond:
            if native.done.is_set():
                return
            native.result = result
            native.state = "done" if result.ok else "failed"
            native.done.set()
            self._cond.notify_all()

    # -- the Scheduler interface ---------------------------------------------------------------

    def poll(self, handle: JobHandle) -> Result | None:
        return ended_result(handle)

    def wait(self, handle: JobHandle, timeout: float | None = None) -> Result:
        return wait_ended(handle, timeout)

    def cancel(self, handle: JobHandle) -> None:
        with self._cond:
            handle.cancelled = True
        if self._batcher.withdraw(handle) or handle.native.cluster is None:
            self._complete(handle, Result(handle.job.id, None, error="cancelled"))
        elif handle.native.materialized and not handle.native.done.is_set():  # else: removed once made
            self._act(self.htcondor.JobAction.Remove, handle, "scailfin-exec: cancelled")

    def close(self) -> None:
        """Remove every job of this run still in the queue, and stop following the event log."""
        self._follower.start()  # (a run that submitted nothing has nothing to follow: it ends at once)
        with self._cond:
            self._closing = True
        self._lease.stop()
        self._census.stop()
        for handle in self._batcher.close():
            handle.cancelled = True
            self._complete(handle, Result(handle.job.id, None, error="cancelled"))
        outstanding = [h for h in self._handles if h.native and not h.native.done.is_set()]
        if outstanding:
            for handle in outstanding:
                handle.cancelled = True
            try:
                self.schedd.act(self.htcondor.JobAction.Remove, f'ScailfinRun == "{self.run_id}"',
                                "scailfin-exec: the workflow run ended")
            except Exception as e:  # noqa: BLE001
                print(f"scailfin-exec: htcondor: removing the run's jobs failed: {e}", file=sys.stderr)
            deadline = time.monotonic() + 30
            for handle in outstanding:
                handle.native.done.wait(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._cond.notify_all()
        self._follower.join(timeout=5)


