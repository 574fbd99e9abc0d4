# The embedded default scheduler: runs the worker shim for each job as a subprocess on this
# machine, at most `max_parallel` at once, with per-step stdout/stderr logs. No batch system.

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout

from .. import transfers as transfer_modes
from ..job import Job, Result, read_result
from ..shipping import build_shim, shim_command
from . import JobHandle, Scheduler

KILL_GRACE_S = 15  # the shim itself gives the runtime 10 s to stop its container


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
        self._workers = [threading.Thread(target=self._work, name=f"scailfin-local-{n}", daemon=True)
                         for n in range(self._capacity)]
        for worker in self._workers:
            worker.start()

    @property
    def capacity(self) -> int:
        return self._capacity

    def submit(self, job: Job) -> JobHandle:
        handle = self._prepare(job)
        handle.native = {"future": Future(), "proc": None}
        self._queue.put(handle)
        return handle

    def _work(self) -> None:
        while True:
            handle = self._queue.get()
            if handle is None:
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


SCHEDULER = LocalScheduler
