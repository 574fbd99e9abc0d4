# The htcondor scheduler: every job description becomes a vanilla-universe HTCondor job whose
# executable launches the worker shim, with the image and workspace in its arguments and in its
# ClassAd (ScailfinImage, ScailfinWorkspace, ScailfinStep). Jobs that become ready within a short
# window go to the schedd in one transaction; one job event log per run tells us what happens
# to them (no polling of the schedd); holds become failures carrying HoldReason, or are released
# when transient; evictions rerun up to max_retries; cancel and close remove the run's jobs.

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

from ..config import Settings
from ..job import Job, Result, read_result
from ..shipping import build_shim
from ..worker.jobspec import escaping_link
from ..worker.staging import needed_paths, remove_leftovers
from . import JobHandle, Scheduler, SchedulerError

BATCH_QUIET_S = 0.05  # a batch goes to the schedd once no job has become ready for this long,
BATCH_WINDOW_S = 0.25  # or this long after its first job became ready: one transaction each
OUTBOX = "back"  # HTCondor brings this directory back: the result record and the outputs archive
TRANSIENT_HOLD_CODES = {6, 12, 13}  # the starter failed to start; output or input transfer failed
PERMANENT_SUBCODES = {errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.EISDIR}  # a missing input stays missing
FOLLOW_INTERVAL_S = 0.05  # how often the event log is read when nothing new was there
RESCAN_AFTER_S = 30.0  # this long without a new event while jobs are out: read the whole log again


def condor_arguments(argv: list[str]) -> str:
    """The submit language's new-style arguments: double-quoted, each argument single-quoted."""
    parts = []
    for arg in argv:
        parts.append("'" + submit_value("an argument", arg).replace("'", "''").replace('"', '""') + "'")
    return '"' + " ".join(parts) + '"'


def submit_value(what: str, value: str) -> str:
    """A value for the submit description, which expands every $ (macros such as $(X), $ENV(X),
    $RANDOM_CHOICE(...), and $$(X) when the job is matched) and ends a value at a newline: one
    that has either is refused, so that nothing in it is ever expanded (a secret from this
    process's environment would land in the job's ClassAd for anyone to read)."""
    bad = [c for c in ("$", "\n", "\r") if c in value]
    if bad:
        shown = " or ".join({"$": "'$'", "\n": "a newline", "\r": "a carriage return"}[c] for c in bad)
        raise SchedulerError(f"{what} {value!r} contains {shown}, which HTCondor's submit language would expand or cut: "
                             "refused")
    return value


def label(value: str) -> str:
    """A name shown in the queue (batch name, step): characters the submit language would
    expand or that end a line become '_'."""
    return "".join("_" if c in "$\n\r" or ord(c) < 32 else c for c in value)[:200] or "_"


def plain_path(path: str) -> bool:
    """Whether transfer_input_files can carry path as it is (a comma-separated list whose
    values are expanded)."""
    return all(c.isalnum() or c in "/_.+-@%=" for c in path)


@dataclass
class CondorJob:
    """What we know of one job, from the event log."""
    cluster: int | None = None
    proc: int | None = None
    state: str = "pending"  # pending, idle, running, held, done, failed
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

    def __init__(self, run_dir: str | None = None, settings: Settings | None = None, batch_name: str = "scailfin",
                 progress: bool = True):
        self.settings = settings or Settings()
        if os.geteuid() == 0:
            raise SchedulerError("refusing to submit as root: HTCondor runs root's jobs as nobody (or refuses them); "
                                 "submit as the user whose files the workflow uses")
        try:
            import htcondor2
        except ImportError as e:
            raise SchedulerError(f"the htcondor scheduler needs the HTCondor Python bindings (pip install "
                                 f"'htcondor>=25'): {e}") from None
        self.htcondor = htcondor2
        self.schedd, self.schedd_name = self._connect()
        super().__init__(run_dir)
        if "," in submit_value("the run directory", self.run_dir):
            raise SchedulerError(f"the run directory {self.run_dir} contains ',', which HTCondor's submit language "
                                 "cannot carry in a file list")
        self.batch_name = label(batch_name)
        self.run_id = uuid.uuid4().hex[:16]
        self.shim = build_shim(self.run_dir)
        self.event_log = os.path.join(self.run_dir, "events.log")
        open(self.event_log, "a").close()
        self._events = htcondor2.JobEventLog(self.event_log)
        self._cond = threading.Condition()
        self._queue: list[JobHandle] = []
        self._last_ready = 0.0  # when the last job joined the queue
        self._ids: dict[tuple[int, int], JobHandle] = {}
        self._closing = False
        self._progress = progress
        self._last_progress = ("", 0.0)
        self._threads = [threading.Thread(target=self._submitter, name="htcondor-submit", daemon=True),
                         threading.Thread(target=self._follower, name="htcondor-events", daemon=True)]
        for thread in self._threads:
            thread.start()

    # -- connecting ----------------------------------------------------------------------------

    def _connect(self):
        htcondor2 = self.htcondor
        where = self.settings.pool or htcondor2.param.get("COLLECTOR_HOST", "the configured collector")
        try:
            collector = htcondor2.Collector(self.settings.pool) if self.settings.pool else htcondor2.Collector()
            name = self.settings.schedd
            if name is None:
                ads = collector.query(htcondor2.AdType.Schedd, projection=["Name"])
                if not ads:
                    raise SchedulerError(f"the pool at {where} advertises no schedd")
                name = ads[0]["Name"]
            ad = collector.locate(htcondor2.DaemonType.Schedd, name)
        except SchedulerError:
            raise
        except Exception as e:  # noqa: BLE001  (the bindings raise several kinds)
            raise SchedulerError(f"cannot reach the HTCondor collector at {where}: {e}") from None
        try:
            schedd = htcondor2.Schedd(ad)
            schedd.query(constraint="false", projection=["ClusterId"])
        except Exception as e:  # noqa: BLE001
            raise SchedulerError(f"cannot reach the schedd {name} (pool {where}): {e}") from None
        return schedd, name

    @property
    def capacity(self) -> int:
        return self.settings.max_parallel or 1000

    # -- submitting ----------------------------------------------------------------------------

    def submit(self, job: Job) -> JobHandle:
        handle = self._prepare(job)
        handle.native = CondorJob()
        with self._cond:
            if self._closing:
                raise SchedulerError("the scheduler is closed")
            self._queue.append(handle)
            self._last_ready = time.monotonic()
            self._cond.notify_all()
        return handle

    def _ready(self, job: Job, directory: str) -> Job:
        """Lay out the job's directory for HTCondor: the outbox, and what file transfer sends."""
        os.makedirs(os.path.join(directory, OUTBOX))
        submit_value("the workspace", job.workspace)
        submit_value("the image", job.image)
        if job.transfer != "htcondor":
            return job
        return job._replace(staged=_pack_for_transfer(job, os.path.join(directory, "send")))

    def _submitter(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing and not self._queue:
                    return
                # let the jobs that become ready together go together (a scatter's come milliseconds
                # apart), without holding a lone step back for the whole window
                deadline = time.monotonic() + BATCH_WINDOW_S
                while not self._closing:
                    wait = min(deadline, self._last_ready + BATCH_QUIET_S) - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                batch, self._queue = [h for h in self._queue if not h.cancelled], []
            if batch:
                try:
                    self._submit_batch(batch)
                except Exception as e:  # noqa: BLE001  (each step fails with the reason)
                    for handle in batch:
                        self._complete(handle, Result(handle.job.id, None, error=f"submission to {self.schedd_name} "
                                                      f"failed: {e}"))

    def _submit_batch(self, batch: list[JobHandle]) -> None:
        htcondor2 = self.htcondor
        rows = [self._row(h) for h in batch]
        result = self.schedd.submit(htcondor2.Submit(self._description()), itemdata=iter(rows))
        cluster, first = result.cluster(), result.first_proc()
        with self._cond:
            for offset, handle in enumerate(batch):
                native = handle.native
                native.cluster, native.proc, native.state = cluster, first + offset, "idle"
                self._ids[(cluster, first + offset)] = handle
        self._show_progress()

    def _description(self) -> dict[str, str]:
        s = self.settings
        quote = self.htcondor.classad.quote
        description = {
            "universe": "vanilla",
            "executable": "/usr/bin/env",
            "transfer_executable": "false",
            "arguments": "$(scailfin_arguments)",
            "initialdir": "$(scailfin_dir)",
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_input_files": "$(scailfin_inputs)",
            "transfer_output_files": OUTBOX,
            "output": "stdout.log",
            "error": "stderr.log",
            "log": self.event_log,
            "request_cpus": "$(scailfin_cpus)",
            "request_memory": "$(scailfin_memory)",
            "request_disk": "$(scailfin_disk)",
            "request_gpus": "$(scailfin_gpus)",
            "batch_name": self.batch_name,
            "My.ScailfinImage": "$(scailfin_image)",
            "My.ScailfinWorkspace": "$(scailfin_workspace)",
            "My.ScailfinStep": "$(scailfin_step)",
            "My.ScailfinJobId": "$(scailfin_job)",
            "My.ScailfinRun": quote(self.run_id),
            "My.WantIOProxy": "$(scailfin_io_proxy)",  # transfer: chirp reaches the submit side through it
        }
        if s.accounting_group:
            description["accounting_group"] = s.accounting_group
        if s.requirements:
            description["requirements"] = s.requirements
        description.update(s.submit_commands)
        for name, value in s.job_attributes.items():
            description["My." + name.lstrip("+")] = value
        return description

    def _row(self, handle: JobHandle) -> dict[str, str]:
        job, quote = handle.job, self.htcondor.classad.quote
        python = self.settings.worker_python or "python3"
        argv = [python, "-S", os.path.basename(self.shim), "job.json", "--outbox", OUTBOX,
                "--image", job.image, "--workspace", job.workspace]
        inputs = _transfer_inputs(self.shim, job)
        row = {
            "scailfin_arguments": condor_arguments(argv),
            "scailfin_dir": handle.directory,
            "scailfin_inputs": ",".join(inputs),
            "scailfin_cpus": str(max(1, int(job.resources.cores + 0.999))),
            "scailfin_memory": f"{job.resources.memory_mb}M",
            "scailfin_disk": f"{job.resources.disk_mb}M",
            "scailfin_gpus": str(job.resources.gpus),
            "scailfin_image": quote(job.image),
            "scailfin_workspace": quote(job.workspace),
            "scailfin_step": quote(label(job.labels.get("step", job.id))),
            "scailfin_job": quote(job.id),
            "scailfin_io_proxy": "true" if job.transfer == "chirp" else "false",
        }
        for key, value in row.items():
            submit_value(f"job {job.id}: {key}", value)
        return row

    # -- following -----------------------------------------------------------------------------

    def _follower(self) -> None:
        quiet_since = time.monotonic()
        while True:
            # events(stop_after) sets an absolute deadline, once: 0 reads what is there and stops
            got = False
            for event in self._events.events(stop_after=0):
                got = True
                quiet_since = time.monotonic()
                self._on_event(event)
            with self._cond:
                if self._closing and not self._out():
                    return
                if not got:
                    self._cond.wait(FOLLOW_INTERVAL_S)  # close() wakes it at once
            if time.monotonic() - quiet_since > RESCAN_AFTER_S:
                with self._cond:
                    out = self._out()
                if out:
                    self._rescan(out)
                quiet_since = time.monotonic()

    def _out(self) -> list[JobHandle]:
        """The jobs submitted and not yet ended (call with self._cond held)."""
        return [h for h in self._handles if h.native and h.native.cluster is not None and not h.native.done.is_set()]

    def _rescan(self, out: list[JobHandle]) -> None:
        """A safety net, not the way jobs are followed: read the run's event log again from its
        start, and act on an end or hold the incremental reader did not deliver."""
        types = self.htcondor.JobEventType
        ends = {types.JOB_TERMINATED, types.JOB_ABORTED, types.JOB_HELD, types.JOB_RELEASED, types.EXECUTE}
        last = {}
        for event in self.htcondor.JobEventLog(self.event_log).events(stop_after=0):
            if event.type in ends:
                last[(event.cluster, event.proc)] = event
        for handle in out:
            event = last.get((handle.native.cluster, handle.native.proc))
            if event is None:
                continue
            missed = event.type in (types.JOB_TERMINATED, types.JOB_ABORTED) or \
                (event.type == types.JOB_HELD and handle.native.state != "held")
            if missed:
                print(f"scailfin-exec: htcondor: the event log reader missed {event.type.name} of job "
                      f"{handle.native.id} ({handle.job.id}); acting on it now", file=sys.stderr)
                self._on_event(event)

    def _on_event(self, event) -> None:
        types = self.htcondor.JobEventType
        with self._cond:
            handle = self._ids.get((event.cluster, event.proc))
        if handle is None:
            return
        native = handle.native
        if event.type == types.EXECUTE:
            native.state = "running"
        elif event.type == types.JOB_EVICTED:
            native.state = "idle"
            native.evictions += 1
            if native.evictions > self.settings.max_retries:
                self._remove(handle, f"evicted {native.evictions} times (max_retries {self.settings.max_retries})")
        elif event.type == types.JOB_HELD:
            self._on_hold(handle, event)
        elif event.type == types.JOB_RELEASED:
            native.state = "idle"
        elif event.type == types.JOB_TERMINATED:
            self._complete(handle, self._collect(handle, event))
        elif event.type == types.JOB_ABORTED:
            remove_leftovers(handle.job)
            reason = native.failure or ("cancelled" if handle.cancelled else
                                        f"removed from the queue ({event.get('Reason', 'no reason given')})")
            self._complete(handle, Result(handle.job.id, None, error=reason, stdout_log=handle.stdout_log,
                                          stderr_log=handle.stderr_log))
        self._show_progress()

    def _on_hold(self, handle: JobHandle, event) -> None:
        native = handle.native
        native.state = "held"
        reason = event.get("HoldReason", "no reason given")
        code, subcode = int(event.get("HoldReasonCode", 0)), int(event.get("HoldReasonSubCode", 0))
        transient = code in TRANSIENT_HOLD_CODES and subcode not in PERMANENT_SUBCODES
        if transient and native.releases < self.settings.max_retries:
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

    def _collect(self, handle: JobHandle, event) -> Result:
        directory = handle.directory
        status = int(event.get("ReturnValue", -1)) if event.get("TerminatedNormally", True) else \
            128 + int(event.get("TerminatedBySignal", 0))
        brought = os.path.join(directory, OUTBOX, "job.result.json")
        if os.path.exists(brought):  # where every scheduler keeps it
            os.replace(brought, handle.result_file)
        result = read_result(handle.job.id, handle.result_file, status,
                             stdout_log=handle.stdout_log, stderr_log=handle.stderr_log)
        remove_leftovers(handle.job)
        archive = os.path.join(directory, OUTBOX, "outputs.tar")
        if handle.job.transfer == "htcondor" and os.path.exists(archive):
            try:
                _merge_outputs(archive, handle.job.workspace)
            except (OSError, subprocess.SubprocessError, SchedulerError) as e:
                result.error = f"outputs could not be brought back into {handle.job.workspace}: {e}"
        shutil.rmtree(os.path.join(directory, "send"), ignore_errors=True)
        return result

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
        return handle.native.result if handle.native.done.is_set() else None

    def wait(self, handle: JobHandle, timeout: float | None = None) -> Result:
        if not handle.native.done.wait(timeout):
            raise TimeoutError(f"job {handle.job.id} still running after {timeout} s")
        return handle.native.result

    def cancel(self, handle: JobHandle) -> None:
        with self._cond:
            handle.cancelled = True
            queued = handle in self._queue or handle.native.cluster is None
            if handle in self._queue:
                self._queue.remove(handle)
        if queued:
            self._complete(handle, Result(handle.job.id, None, error="cancelled"))
        elif not handle.native.done.is_set():
            self._act(self.htcondor.JobAction.Remove, handle, "scailfin-exec: cancelled")

    def close(self) -> None:
        """Remove every job of this run still in the queue, and stop following the event log."""
        with self._cond:
            self._closing = True
            for handle in self._queue:
                handle.cancelled = True
            pending, self._queue = self._queue, []
            self._cond.notify_all()
        for handle in pending:
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
        for thread in self._threads:
            thread.join(timeout=5)
        self._show_progress(final=True)

    def _show_progress(self, final: bool = False) -> None:
        if not self._progress or not self._handles:
            return
        counts = {"idle": 0, "running": 0, "held": 0, "done": 0, "failed": 0}
        for handle in list(self._handles):
            state = handle.native.state if handle.native else "pending"
            counts["idle" if state == "pending" else state] += 1
        line = "htcondor: " + ", ".join(f"{n} {state}" for state, n in counts.items()) + f" ({self.batch_name})"
        previous, when = self._last_progress
        now = time.monotonic()
        if line != previous and (final or now - when >= 1.0 or counts["idle"] + counts["running"] + counts["held"] == 0):
            self._last_progress = (line, now)
            print(line, file=sys.stderr, flush=True)


RESERVED_NAMES = {"job.json", OUTBOX, "send", "stdout.log", "stderr.log", "tmp", "var"}


def _pack_for_transfer(job: Job, send: str) -> dict[str, str]:
    """What the step needs, ready for HTCondor's file transfer. Returns job.staged: where each
    submit-side path lands, relative to the job's scratch directory.

    Files are listed as they are (HTCondor reads them itself, and holds the job saying why
    when it cannot), or, when two share a name or a path has characters the file list cannot
    carry, through a link of a plain name in send/N/ (the transfer follows links to files). Directories travel as send/N.tar: HTCondor cannot follow links to
    directories, and one archive moves many small files faster than the files themselves."""
    staged, taken = {}, set(RESERVED_NAMES)
    for number, path in enumerate(needed_paths(job)):
        name = os.path.basename(path)
        if os.path.isdir(path):
            os.makedirs(send, exist_ok=True)
            subprocess.run(["tar", "-cf", os.path.join(send, f"{number}.tar"), "-C", os.path.dirname(path) or "/",
                            name], check=True, capture_output=True)
            staged[path] = f"send/{number}.tar"
        elif name not in taken and plain_path(path) and not name.startswith("scailfin-shim-"):
            taken.add(name)
            staged[path] = name  # listed in transfer_input_files as it is
        else:  # through a link of a plain name (the transfer follows links to files)
            os.makedirs(os.path.join(send, str(number)))
            os.symlink(path, os.path.join(send, str(number), "file"))
            staged[path] = f"send/{number}/file"
    return staged


def _transfer_inputs(shim: str, job: Job) -> list[str]:
    direct = [path for path, relative in sorted(job.staged.items()) if "/" not in relative]
    return [shim, "job.json", OUTBOX] + (["send"] if any(r.startswith("send/") for r in job.staged.values()) else []) \
        + direct


def _merge_outputs(archive: str, workspace: str) -> None:
    """Unpack the step's outputs beside the workspace, then move each file into place: a file
    is either the old one or the whole new one, never a partial copy."""
    unpacked = tempfile.mkdtemp(prefix=".scailfin-outputs-", dir=workspace)
    try:
        subprocess.run(["tar", "-xf", archive, "-C", unpacked, "--no-same-owner"], check=True, capture_output=True)
        for directory, dirs, names in os.walk(unpacked):  # the worker refuses these already: so do we
            for name in dirs + names:
                target = escaping_link(os.path.join(directory, name), unpacked, workspace)
                if target is not None:
                    raise SchedulerError(f"output {os.path.relpath(os.path.join(directory, name), unpacked)} is a "
                                         f"symbolic link leaving the workspace (to {target}): refused")
        _move_into(unpacked, workspace, skip=os.path.basename(unpacked))
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _move_into(source: str, target: str, skip: str | None = None) -> None:
    for name in os.listdir(source):
        if name == skip:
            continue
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if os.path.isdir(src) and not os.path.islink(src) and os.path.isdir(dst) and not os.path.islink(dst):
            _move_into(src, dst)
            continue
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        os.replace(src, dst)
