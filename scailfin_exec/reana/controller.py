# The job controller behind the HTTP face: accepts a request (mapping.py), records it (store.py)
# before handing it to a scheduler, and answers for it from then on. Jobs of one workflow share
# one scheduler (on HTCondor: one JobBatchName, one batching window, one event log); the local
# scheduler is one for all. Stopped and started again on the same state directory, it takes over
# every job that had not ended (adopt) and submits again only those that never started.

from __future__ import annotations

import copy
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field

from ..job import Job, JobError, Result
from ..run import Run
from ..schedulers import JobHandle, Scheduler, SchedulerError, private_directory
from . import mapping
from .store import TERMINAL, Row, Store

log = logging.getLogger("scailfin_exec.reana")
WATCH_S = 0.5  # how often jobs nobody asks about are looked at (their status is kept current)
IDLE_CLOSE_S = 600  # a workflow's scheduler with nothing left to follow is closed after this
LOG_TAIL = 4 * 1024 * 1024  # the end of each of a job's stdout and stderr a logs request returns


class Refused(RuntimeError):
    """The service does not take new jobs (it was shut down)."""


class NotFound(KeyError):
    pass


@dataclass
class Tracked:
    row: Row
    scheduler: Scheduler | None = None
    handle: JobHandle | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class Group:
    """One run (its scheduler, its run directory, its trace and progress) and the jobs it follows."""
    run: Run
    last_active: float = field(default_factory=time.monotonic)

    @property
    def scheduler(self) -> Scheduler:
        return self.run.scheduler


class Controller:
    def __init__(self, settings, state_dir: str, workspace_roots: list[str], database: str | None = None):
        self.settings = settings
        self.state_dir = private_directory(state_dir)
        self._lockfile = _exclusive(os.path.join(self.state_dir, "serve.lock"))
        self.store = Store(database or os.path.join(self.state_dir, "jobs.sqlite"))
        self.roots = [os.path.realpath(root) for root in workspace_roots]
        self._groups: dict[str, Group] = {}
        self._tracked: dict[str, Tracked] = {}
        self._lock = threading.RLock()
        self._accepting = True
        self._stopping = threading.Event()
        self._resume()
        self._watcher = threading.Thread(target=self._watch, name="scailfin-reana-watch", daemon=True)
        self._watcher.start()

    # -- requests ------------------------------------------------------------------------------

    def submit(self, body) -> str:
        """Accept one job request: its id, or RequestError / Refused / SchedulerError."""
        job_id = str(uuid.uuid4())
        accepted = mapping.accept(body, job_id, self.settings, self.roots)
        placement = _group_key(accepted.placement, accepted.workflow_uuid)
        with self._lock:
            if not self._accepting:
                raise Refused("this job controller was shut down: it takes no new jobs")
            group = self._group(placement)
            row = Row(job_id, accepted.workflow_uuid, accepted.job_name, placement, group.scheduler.run_dir,
                      Row.job_json(accepted.job), accepted.docker_img, accepted.cmd, accepted.cvmfs_mounts)
            self.store.add(row)  # first: a job the scheduler has is never one the store forgot
            try:
                handle = group.run.submit(accepted.job)
            except (SchedulerError, JobError) as e:
                self.store.delete(job_id)
                raise mapping.RequestError(str(e)) from None
            group.last_active = time.monotonic()
            self._tracked[job_id] = Tracked(row, group.scheduler, handle)
        log.info("job %s (%s, workflow %s) accepted: image %s on the %s scheduler", job_id, accepted.job_name,
                 accepted.workflow_uuid, accepted.job.image, group.scheduler.name)
        return job_id

    def status(self, job_id: str) -> Row:
        tracked = self._tracked.get(job_id)
        if tracked is None:
            raise NotFound(job_id)
        return self._refresh(tracked)

    def rows(self) -> list[Row]:
        with self._lock:
            tracked = list(self._tracked.values())
        return [self._refresh(t) for t in tracked]

    def max_restarts(self, row: Row) -> int:
        scheduler = json.loads(row.placement)["scheduler"]
        options = self.settings.of(scheduler)
        return getattr(options, "max_retries", 0)

    def logs(self, job_id: str) -> str:
        """The step's stdout, then its stderr, then (once it ended) how it ended."""
        row = self.status(job_id)
        parts = [_tail(os.path.join(row.run_dir, job_id, name)) for name in ("stdout.log", "stderr.log")]
        if row.outcome:
            parts.append(f"scailfin-exec: job {job_id} {row.status}: {row.outcome}\n")
        return "".join(parts)

    def stop(self, job_id: str) -> None:
        tracked = self._tracked.get(job_id)
        if tracked is None:
            raise NotFound(job_id)
        if tracked.handle is not None and not tracked.row.terminal:
            log.info("job %s: stopping it (DELETE)", job_id)
            tracked.scheduler.cancel(tracked.handle)

    def shutdown(self) -> int:
        """Take no new jobs and stop every job that has not ended; how many were stopped."""
        with self._lock:
            self._accepting = False
            tracked = [t for t in self._tracked.values() if t.handle is not None and not t.row.terminal]
        for t in tracked:
            t.scheduler.cancel(t.handle)
        log.info("shutdown: stopped %d job(s); no new jobs are taken", len(tracked))
        return len(tracked)

    def close(self) -> None:
        """Stop following (jobs go on running: a service started again takes them over)."""
        self._stopping.set()
        self._watcher.join(timeout=5)
        with self._lock:
            self._accepting = False
            groups, self._groups = list(self._groups.values()), {}
        for t in list(self._tracked.values()):
            if t.handle is not None:
                self._refresh(t)
        busy = {t.scheduler for t in self._tracked.values() if t.handle is not None and not t.row.terminal}
        for group in groups:
            try:  # a run with nothing left to follow ends (and its registry credentials go with it)
                group.run.detach() if group.scheduler in busy else group.run.close()
            except SchedulerError as e:
                log.warning("%s", e)
        self.store.close()
        os.close(self._lockfile)

    # -- underneath ----------------------------------------------------------------------------

    def _group(self, placement: str) -> Group:
        """The scheduler for jobs placed so (made on first use), under self._lock."""
        group = self._groups.get(placement)
        if group is None:
            run = self._open(placement)
            run.scheduler  # made now: a schedd that cannot be reached refuses the job
            group = self._groups[placement] = Group(run)
        return group

    def _open(self, placement: str) -> Run:
        where = json.loads(placement)
        name = where["scheduler"]
        settings = copy.copy(self.settings)
        key = hashlib.sha256(placement.encode()).hexdigest()[:16]
        settings.run_dir = os.path.join(self.state_dir, "runs", f"{name}-{key}")
        settings.report = settings.trace = None  # each run's trace is RUN_DIR/trace.tsv; a report is asked for afterwards
        settings.schedulers = dict(self.settings.schedulers)
        options = settings.of(name)
        if name == "htcondor":
            settings.schedulers[name] = dataclasses.replace(options, accounting_group=where["accounting_group"],
                                                            requirements=where["requirements"])
        elif name == "slurm":
            settings.schedulers[name] = dataclasses.replace(options, partition=where["partition"])
        return Run(settings, name=f"reana-{where.get('workflow_uuid', 'jobs')}", log=log)

    def _refresh(self, tracked: Tracked) -> Row:
        """The job's row, brought up to date from its scheduler (and stored when it changed)."""
        with tracked.lock:
            row, handle, scheduler = tracked.row, tracked.handle, tracked.scheduler
            if row.terminal or handle is None:
                return row
            result = scheduler.poll(handle)
            changes = {"native": scheduler.native_id(handle), "restart_count": scheduler.restarts(handle)}
            if result is not None:
                changes.update(_ended(result, handle.cancelled), ended=time.time())
            elif scheduler.state(handle) != "queued":
                changes["status"] = "running"
            else:
                changes["status"] = "queued"
            if changes.get("status") in ("running", *TERMINAL) and row.started is None:
                changes["started"] = time.time()
            changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
            if changes:
                for name, value in changes.items():
                    setattr(row, name, value)
                self.store.update(row.job_id, **changes)
                if row.terminal:
                    log.info("job %s (%s) %s: %s", row.job_id, row.job_name, row.status, row.outcome)
            return row

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_S):
            with self._lock:
                tracked = [t for t in self._tracked.values() if t.handle is not None and not t.row.terminal]
            for t in tracked:
                try:
                    self._refresh(t)
                except Exception:  # noqa: BLE001  (the watcher must outlive one bad job)
                    log.exception("job %s: could not be followed", t.row.job_id)
            self._close_idle()

    def _close_idle(self) -> None:
        """Close the HTCondor schedulers of workflows with nothing left to follow (each holds an
        event-log reader): a workflow sending more jobs later gets a new one on the same run."""
        now = time.monotonic()
        with self._lock:
            busy = {t.scheduler for t in self._tracked.values() if t.handle is not None and not t.row.terminal}
            idle = [k for k, g in self._groups.items() if g.scheduler not in busy and g.scheduler.name != "local"
                    and now - g.last_active > IDLE_CLOSE_S]
            closing = [self._groups.pop(k) for k in idle]
            schedulers = [group.scheduler for group in closing]
            for t in self._tracked.values():
                if t.scheduler in schedulers:
                    t.scheduler = t.handle = None
        for group in closing:
            group.run.close()

    def _resume(self) -> None:
        """Take over the jobs an earlier service accepted and did not see end."""
        rows = self.store.all()
        for row in rows:
            self._tracked[row.job_id] = Tracked(row)
        pending: dict[str, list[Row]] = {}
        for row in rows:
            if not row.terminal:
                pending.setdefault(row.placement, []).append(row)
        for placement, group_rows in pending.items():
            try:
                group = self._group(placement)
                self._adopt(group.scheduler, group_rows)
            except (SchedulerError, JobError, OSError) as e:
                log.error("could not take over %d job(s) on %s: %s (they keep their last status)",
                          len(group_rows), placement, e)
        if rows:
            log.info("resumed: %d job(s) known, %d taken over", len(rows), sum(map(len, pending.values())))

    def _adopt(self, scheduler: Scheduler, rows: list[Row]) -> None:
        jobs: list[Job] = [row.the_job() for row in rows]
        handles = scheduler.adopt([(job, row.native) for job, row in zip(jobs, rows)])
        for row, job, handle in zip(rows, jobs, handles):
            if handle is None:  # it never started: now it does (its directory is from the attempt to submit it)
                shutil.rmtree(os.path.join(scheduler.run_dir, job.id), ignore_errors=True)
                handle = scheduler.submit(job)
                log.info("job %s (%s) had not reached the %s scheduler: submitted now", row.job_id, row.job_name,
                         scheduler.name)
            else:
                log.info("job %s (%s): following it again (%s %s)", row.job_id, row.job_name, scheduler.name,
                         scheduler.native_id(handle))
            self._tracked[row.job_id] = Tracked(row, scheduler, handle)


def _group_key(placement: mapping.Placement, workflow_uuid: str) -> str:
    """Which jobs share a scheduler: on a batch system those of one workflow (one batch name,
    one batching window); on this machine all of them (its capacity is the machine's)."""
    where = dataclasses.asdict(placement)
    if placement.scheduler != "local":
        where["workflow_uuid"] = workflow_uuid
    return json.dumps(where, sort_keys=True)


def _ended(result: Result, cancelled: bool) -> dict:
    if result.ok:
        return {"status": "finished", "outcome": f"exit code 0 ({result.runtime} on {result.host}, image {result.image})"}
    if cancelled or result.error == "cancelled":
        return {"status": "stopped", "outcome": "stopped on request"}
    return {"status": "failed", "outcome": result.reason()}


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - LOG_TAIL))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _exclusive(path: str) -> int:
    """One service per state directory: a second one would run every job it finds again."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SchedulerError(f"another scailfin-exec serve uses the state directory {os.path.dirname(path)}") from None
    return fd
