# Gathering jobs that become ready together into one submission (one HTCondor transaction, one
# Slurm array): a scatter's jobs arrive milliseconds apart. A batch leaves once no job has joined
# it for QUIET_S and none is being prepared (arriving()), so a lone step is not held back and a
# submitter slowed down while preparing a job does not split its scatter; and at most WINDOW_S
# after its first job, so a long stream of jobs goes in parts.

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable

from . import SchedulerError

QUIET_S = 0.05
WINDOW_S = 1.0


class Batcher:
    """send(batch) runs on the batcher's own thread; if it raises, fail(handle, error) is called
    for each job of the batch. Cancelled handles (handle.cancelled) never leave."""

    def __init__(self, send: Callable[[list], None], fail: Callable[[object, Exception], None], name: str):
        self.send, self.fail = send, fail
        self._cond = threading.Condition()
        self._queue: list = []
        self._last = 0.0  # when the last job joined the queue
        self._arriving = 0  # jobs being prepared by submitters (arriving())
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @contextmanager
    def arriving(self):
        """Around the preparation of a job that add() will take: the waiting batch does not leave
        meanwhile (within its window). Refuses once closed, before anything is prepared."""
        with self._cond:
            if self._closing:
                raise SchedulerError("the scheduler is closed")
            self._arriving += 1
        try:
            yield
        finally:
            with self._cond:
                self._arriving -= 1
                self._last = time.monotonic()
                self._cond.notify_all()

    def add(self, handle) -> None:
        with self._cond:
            if self._closing:
                raise SchedulerError("the scheduler is closed")
            self._queue.append(handle)
            self._last = time.monotonic()
            self._cond.notify_all()

    def withdraw(self, handle) -> bool:
        """Take a job out before it is sent; whether it was still waiting."""
        with self._cond:
            if handle in self._queue:
                self._queue.remove(handle)
                return True
            return False

    def close(self) -> list:
        """Stop sending; the jobs that were still waiting."""
        with self._cond:
            self._closing = True
            pending, self._queue = self._queue, []
            self._cond.notify_all()
        self._thread.join(timeout=5)
        return pending

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                deadline = time.monotonic() + WINDOW_S
                while not self._closing:
                    quiet = deadline if self._arriving else self._last + QUIET_S
                    wait = min(deadline, quiet) - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                batch, self._queue = [h for h in self._queue if not h.cancelled], []
            if batch:
                try:
                    self.send(batch)
                except Exception as e:  # noqa: BLE001  (each job fails with the reason)
                    for handle in batch:
                        self.fail(handle, e)
