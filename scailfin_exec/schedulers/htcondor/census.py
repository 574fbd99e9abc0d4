# The run's jobs counted in the schedd itself, now and then. The event log says how each job goes,
# but not that a job is gone from a queue that lost it (a schedd whose spool was wiped, a pool
# rebuilt under a run) nor that the schedd stopped answering: without this, a run would wait for
# such jobs forever. While the run has jobs in the queue, one query for them (ScailfinRun) every
# `every` seconds: a job in neither the queue nor the event log on two checks in a row is looked
# up in the schedd's history (it ended there: its outcome is taken from it) and otherwise fails as
# lost; a schedd that has not answered for `timeout` seconds fails every job the run has there,
# saying so (a schedd that is only slow, or a network down for a minute, is ridden out).

from __future__ import annotations

import time
from typing import Callable

from .periodic import Periodic

Key = tuple  # (ClusterId, ProcId)


def interval(timeout: int) -> float:
    """How often to count: a quarter of the timeout, between 5 s and a minute."""
    return min(60.0, max(5.0, timeout / 4))


class Census(Periodic):
    """outstanding(): the run's jobs the schedd has made and not seen end (key -> handle);
    collect(handle, status): one ended with that exit status; abort(handle, why): one failed."""

    def __init__(self, schedd, schedd_name: str, run_id: str, timeout: int, outstanding: Callable[[], dict],
                 collect: Callable[[object, int], None], abort: Callable[[object, str], None]):
        super().__init__("htcondor-census", interval(timeout), self._count)
        self.schedd, self.schedd_name, self.run_id, self.timeout = schedd, schedd_name, run_id, timeout
        self.outstanding, self.collect, self.abort = outstanding, collect, abort
        self._missing: set = set()  # jobs missing at the last count
        self._answered = time.monotonic()

    def _count(self) -> None:
        out = self.outstanding()
        if not out:
            self._answered, self._missing = time.monotonic(), set()
            return
        try:
            ads = self.schedd.query(f'ScailfinRun == "{self.run_id}"', projection=["ClusterId", "ProcId"])
        except Exception as e:  # noqa: BLE001  (the bindings raise several kinds for a schedd not answering)
            silence = time.monotonic() - self._answered
            if silence >= self.timeout:
                for handle in out.values():
                    self.abort(handle, f"the schedd {self.schedd_name} has not answered for {silence:.0f} s "
                                       f"(schedd_timeout {self.timeout} s; last: {str(e)[:200]}): the job may "
                                       "still be in its queue")
                self._answered = time.monotonic()
            return
        self._answered = time.monotonic()
        missing = set(out) - {(int(ad["ClusterId"]), int(ad["ProcId"])) for ad in ads}
        for key in sorted(missing & self._missing):  # (a job that just ended: its events are read by now)
            status, why = outcome(self._history(key), f"job {key[0]}.{key[1]} is gone from the queue of "
                                                      f"{self.schedd_name} without a word in the run's event log")
            self.collect(out[key], status) if status is not None else self.abort(out[key], why)
        self._missing = missing - self._missing

    def _history(self, key: Key) -> dict | None:
        try:
            ads = list(self.schedd.history(constraint=f"ClusterId == {key[0]} && ProcId == {key[1]}", match=1,
                                           projection=["JobStatus", "ExitCode", "ExitBySignal", "ExitSignal",
                                                       "RemoveReason"]))
        except Exception:  # noqa: BLE001  (no history kept, or not answering: the job is lost all the same)
            return None
        return dict(ads[0]) if ads else None


def outcome(ad: dict | None, why: str) -> tuple[int | None, str]:
    """A job gone from the queue without a word in the event log: its exit status if its history
    says it completed, else None, and why it failed."""
    if ad is None:
        return None, (f"{why}, nor in its history: the schedd lost it (its queue wiped, or another schedd answers "
                      "at its address)")
    if int(ad.get("JobStatus", 0)) == 4:  # completed
        return (128 + int(ad.get("ExitSignal", 0)) if ad.get("ExitBySignal") else int(ad.get("ExitCode", -1))), why
    if int(ad.get("JobStatus", 0)) == 3:
        return None, f"{why}: its history says it was removed ({ad.get('RemoveReason', 'no reason given')})"
    return None, f"{why}: its history has it in status {ad.get('JobStatus')}"
