# A daemon thread that does one thing every so many seconds while a run goes on: the lease's
# renewal (lease.py) and the census of the run's jobs (census.py).

from __future__ import annotations

import threading
from typing import Callable


class Periodic:
    """Calls tick() every `every` seconds from start() until stop() (both idempotent; a stopped
    one never starts again)."""

    def __init__(self, name: str, every: float, tick: Callable[[], None]):
        self.name, self.every, self.tick = name, every, tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()
