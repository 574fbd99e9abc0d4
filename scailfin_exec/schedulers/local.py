# The embedded default scheduler: runs the worker shim for each job as a subprocess on this
# machine, at most `max_parallel` at once, with per-step stdout/stderr logs. No batch system.

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout

from .. import transfers as transfer_modes
from ..job import Job, Result, read_result, result_path_for
from ..shipping import build_shim, shim_command
from . import JobHandle, Scheduler

KILL_GRACE_S = 15  # the shim itself gives the runtime 10 s to stop its container
ADOPTED_POLL_S = 0.2
SHIM_PID = "shim.pid"  # how often an adopted job (not our child) is looked at


class LocalScheduler(Scheduler):
    name = "local"
    help = "this machine, no batch system: the embedded default"
    transfers = ("shared",)

    @classmethod
    def from_settings(cls, settings, batch_name: str = "scailfin") -> "LocalScheduler":
        return cls(settings.run_dir, max_parallel=settings.max_parallel, worker_python=settings.worker_python)

    def __init__(self, run_dir: str | None = None, max_parallel: int | None = None,
                 worker_python: str | None = None, capture: bool = True):
        super().__init__(run_dir)
        self._capacity = max_parallel or os.cpu_count() or 1
        self.python = worker_python or sys.executable
        self.capture = capture  # False: the shim's output goes to our stdout/stderr (run-job)
        self.shim = build_shim(self.run_dir)
        # daemon threads (not a ThreadPoolExecutor, whose threads the interpreter waits for
        # before atexit handlers run): an engine exiting on Ctrl-C can still cancel its jobs
        self._queue: queue.Queue = queue.Queue()
        self._detached = False
        self._workers = [threading.Thread(target=self._work, name=f"scailfin-local-{n}", daemon=True)
                         for n in range(self._capacity)]
        for worker in self._workers:
            worker.start()

    @property
    def capacity(self) -> int:
        return self._capacity

    def submit(self, job: Job) -> JobHandle:
        handle = self._prepare(job)
        handle.native = {"future": Future(), "proc": None, "pid": None}
        self._queue.put(handle)
        return handle

    def state(self, handle: JobHandle) -> str:
        native = handle.native
        if native["future"].done():
            return "ended"
        return "running" if native["proc"] is not None or native["pid"] is not None else "queued"

    def native_id(self, handle: JobHandle) -> str | None:
        """The shim's process id, once it runs."""
        proc, pid = handle.native["proc"], handle.native["pid"]
        return str(proc.pid) if proc is not None else (str(pid) if pid is not None else None)

    def adopt(self, jobs: list[tuple[Job, str | None]]) -> list[JobHandle | None]:
        """Shims an earlier process started (in sessions of their own, they outlive it), found by
        the pid it noted, the shim.pid file, or their command line; each is followed until its
        result record is there. A job with neither a shim nor a record never started: None."""
        handles = []
        for job, native in jobs:
            directory = os.path.join(self.run_dir, job.id)
            job_file = os.path.join(directory, "job.json")
            pid = _find_shim(native, directory, job_file)
            if pid is None and not os.path.exists(result_path_for(job_file)):
                handles.append(None)
                continue
            handle = self._handle(job)
            handle.submitted = _written(job_file, handle.submitted)
            handle.native = {"future": Future(), "proc": None, "pid": pid}
            handle.native["future"].set_running_or_notify_cancel()
            threading.Thread(target=self._follow_adopted, args=(handle,), name=f"scailfin-adopted-{job.id}",
                             daemon=True).start()
            handles.append(handle)
        return handles

    def _follow_adopted(self, handle: JobHandle) -> None:
        while _is_shim_of(handle.native["pid"], handle.job_file) and not os.path.exists(handle.result_file):
            time.sleep(ADOPTED_POLL_S)
        while _is_shim_of(handle.native["pid"], handle.job_file):  # the record is written before the shim exits
            time.sleep(ADOPTED_POLL_S)
        result = self._cancelled(handle) if handle.cancelled else read_result(
            handle.job.id, handle.result_file, None, stdout_log=handle.stdout_log, stderr_log=handle.stderr_log)
        transfer_modes.mode(handle.job.transfer).bring_back(handle.job, handle.directory, handle.directory)
        handle.native["future"].set_result(result)

    def detach(self) -> None:
        """Stop taking jobs; shims that run go on (in sessions of their own), queued jobs never start."""
        self._detached = True
        for _ in self._workers:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            handle = self._queue.get()
            if handle is None or self._detached:
                return
            future = handle.native["future"]
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._execute(handle))
            except BaseException as e:  # noqa: BLE001  (the caller sees it through the future)
                future.set_exception(e)

    def _execute(self, handle: JobHandle) -> Result:
        try:
            return self._run_shim(handle)
        finally:  # clears what an attempt that was killed left in the workspace
            transfer_modes.mode(handle.job.transfer).bring_back(handle.job, handle.directory, handle.directory)

    def _run_shim(self, handle: JobHandle) -> Result:
        argv = shim_command(self.python, self.shim, handle.job_file)
        out = err = None
        try:
            if self.capture:
                out, err = (os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
                            for path in (handle.stdout_log, handle.stderr_log))
            with handle.lock:
                if handle.cancelled:
                    return self._cancelled(handle)
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        cwd=handle.directory, start_new_session=True)
                handle.native["proc"] = proc
            with open(os.path.join(handle.directory, SHIM_PID), "w") as f:  # for a process taking over (adopt)
                f.write(f"{proc.pid}\n")
            code = proc.wait()
        finally:
            for f in (out, err):
                if f:
                    f.close()
        if handle.cancelled:
            return self._cancelled(handle)
        logs = {"stdout_log": handle.stdout_log, "stderr_log": handle.stderr_log} if self.capture else {}
        return read_result(handle.job.id, handle.result_file, code if code >= 0 else 128 - code, **logs)

    def _cancelled(self, handle: JobHandle) -> Result:
        return Result(handle.job.id, None, error="cancelled", stdout_log=handle.stdout_log, stderr_log=handle.stderr_log)

    def poll(self, handle: JobHandle) -> Result | None:
        future = handle.native["future"]
        if not future.done():
            return None
        return self._outcome(handle)

    def wait(self, handle: JobHandle, timeout: float | None = None) -> Result:
        try:
            handle.native["future"].result(timeout)
        except FutureTimeout:
            raise TimeoutError(f"job {handle.job.id} still running after {timeout} s") from None
        except CancelledError:
            pass
        return self._outcome(handle)

    def _outcome(self, handle: JobHandle) -> Result:
        future = handle.native["future"]
        if future.cancelled():
            return self._cancelled(handle)
        error = future.exception()
        if error is not None:
            return Result(handle.job.id, None, error=f"local scheduler could not run the shim: {error}")
        return future.result()

    def cancel(self, handle: JobHandle) -> None:
        with handle.lock:
            handle.cancelled = True
            proc = handle.native["proc"]
        handle.native["future"].cancel()
        if handle.native["pid"] is not None:  # adopted: not our child
            _stop_group(handle.native["pid"], handle.job_file)
            return
        if proc is None or proc.poll() is not None:
            return
        try:  # the whole process group: shim, runtime and what they started
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        except ProcessLookupError:
            pass

    def close(self) -> None:
        super().close()
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=KILL_GRACE_S + 5)


def _written(path: str, otherwise: float) -> float:
    """When a job file was written (an adopted job was submitted then)."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return otherwise


def _is_shim_of(pid: int | None, job_file: str) -> bool:
    """Whether pid is (still) the shim running this job file, not a process that took its number."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return job_file.encode() in f.read().split(b"\0")
    except OSError:
        return False


def _find_shim(native: str | None, directory: str, job_file: str) -> int | None:
    """The live shim of a job: by the pid noted, the one in its directory, or a look through /proc
    (a process that stopped between starting the shim and noting its pid) for the process running
    the job file whose parent does not (the keeper, forked from the shim, runs it too)."""
    candidates = [native]
    try:
        with open(os.path.join(directory, SHIM_PID)) as f:
            candidates.append(f.read().strip())
    except OSError:
        pass
    for candidate in candidates:
        if candidate and candidate.isdigit() and _is_shim_of(int(candidate), job_file):
            return int(candidate)
    running = [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _is_shim_of(int(entry), job_file)]
    return next((pid for pid in running if _parent(pid) not in running), None)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _stop_group(pid: int, job_file: str) -> None:
    """SIGTERM to an adopted shim's process group (its keeper stops the step), SIGKILL later."""
    for signum, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5)):
        if not _is_shim_of(pid, job_file):
            return
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while _is_shim_of(pid, job_file) and time.monotonic() < deadline:
            time.sleep(ADOPTED_POLL_S)


SCHEDULER = LocalScheduler
