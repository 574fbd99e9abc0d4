# Following a run's HTCondor jobs through its one job event log, on a thread: the log is read
# incrementally (every FOLLOW_INTERVAL_S when nothing new was there), never the schedd per job.
# After RESCAN_AFTER_S without an event while jobs are out, the log is read again from its start
# and an end or hold the incremental reader missed is delivered (and said on stderr).

from __future__ import annotations

import sys
import threading
import time
from typing import Callable

FOLLOW_INTERVAL_S = 0.05
RESCAN_AFTER_S = 30.0


class EventFollower:
    """outstanding() gives {(cluster, proc): (state, name)} of the jobs submitted and not ended;
    done() says when to stop (the run is closing and nothing is outstanding). cond is the
    scheduler's condition: notifying it wakes the follower at once."""

    def __init__(self, htcondor2, path: str, on_event: Callable, outstanding: Callable, done: Callable,
                 cond: threading.Condition):
        self.htcondor2, self.path, self.on_event = htcondor2, path, on_event
        self.outstanding, self.done, self.cond = outstanding, done, cond
        self.events = htcondor2.JobEventLog(path)
        self.thread = threading.Thread(target=self._follow, name="htcondor-events", daemon=True)
        self._starting = threading.Lock()

    def start(self) -> None:
        """Begin reading (once): from the log's start, so that jobs adopted before are caught up.
        Steps submit from many threads at once: two starting one thread race in Python's
        threading (a second OS thread, "KeyError: <Thread(htcondor-events ...)>")."""
        with self._starting:
            if self.thread.ident is None:
                self.thread.start()

    def _follow(self) -> None:
        quiet_since = time.monotonic()
        while True:
            got = False
            # events(stop_after) sets an absolute deadline, once: 0 reads what is there and stops
            for event in self.events.events(stop_after=0):
                got = True
                quiet_since = time.monotonic()
                self.on_event(event)
            with self.cond:
                if self.done():
                    return
                if not got:
                    self.cond.wait(FOLLOW_INTERVAL_S)
            if time.monotonic() - quiet_since > RESCAN_AFTER_S:
                out = self.outstanding()
                if out:
                    self._rescan(out)
                quiet_since = time.monotonic()

    def _rescan(self, out: dict) -> None:
        """A safety net, not the way jobs are followed: read the whole log again and deliver an
        end or hold the incremental reader did not."""
        types = self.htcondor2.JobEventType
        ends = {types.JOB_TERMINATED, types.JOB_ABORTED, types.JOB_HELD, types.JOB_RELEASED, types.EXECUTE}
        last = {}
        for event in self.htcondor2.JobEventLog(self.path).events(stop_after=0):
            if event.type in ends:
                last[(event.cluster, event.proc)] = event
        for key, (state, name) in out.items():
            event = last.get(key)
            if event is None:
                continue
            if event.type in (types.JOB_TERMINATED, types.JOB_ABORTED) or (event.type == types.JOB_HELD and state != "held"):
                print(f"scailfin-exec: htcondor: the event log reader missed {event.type.name} of job "
                      f"{key[0]}.{key[1]} ({name}); acting on it now", file=sys.stderr)
                self.on_event(event)

    def join(self, timeout: float) -> None:
        if self.thread.ident is not None:
            self.thread.join(timeout)
