# A run's lease on its queued jobs: every job carries ScailfinLeaseUntil (seconds since the epoch),
# which the submitting process moves forward every quarter of the lease while it runs; the schedd
# removes a job that is not running once its lease ran out (periodic_remove, evaluated every
# PERIODIC_EXPR_INTERVAL). So a front end killed with SIGKILL, or whose host went down, leaves no
# job of its run waiting in the queue for longer than the lease (plus that interval); one that is
# restarted within it (serve) takes its jobs over and renews. A running job is not removed: its
# periodic expressions are evaluated by its shadow, on the shadow's copy of its job ad, which
# condor_qedit does not update (HTCondor's condor_qedit manual: an edit affects a running job only
# once it restarts); it runs to its end. A job made late by its cluster's factory carries the lease
# it was submitted with: it is not removed before it has been in its state for a whole lease.

from __future__ import annotations

import sys
import time

from .periodic import Periodic

ATTRIBUTE = "ScailfinLeaseUntil"


def submit_commands(seconds: int, site_periodic_remove: str | None) -> dict[str, str]:
    """The lease's part of the submit description (with the site's own periodic_remove kept)."""
    expired = f"(JobStatus != 2 && time() > {ATTRIBUTE} && time() > EnteredCurrentStatus + {seconds})"
    remove = f"({site_periodic_remove}) || {expired}" if site_periodic_remove else expired
    return {"My." + ATTRIBUTE: str(int(time.time()) + seconds), "periodic_remove": remove}


class Renewal(Periodic):
    """While started, moves the lease of the run's jobs forward every quarter of it (one schedd
    edit for all of them); stop() ends it (close, or detach: a process that takes the run over
    renews it from then on)."""

    def __init__(self, schedd, run_id: str, seconds: int):
        super().__init__("htcondor-lease", max(1.0, seconds / 4), self._renew)
        self.schedd, self.run_id, self.seconds = schedd, run_id, seconds

    def _renew(self) -> None:
        try:
            self.schedd.edit(f'ScailfinRun == "{self.run_id}"', ATTRIBUTE, str(int(time.time()) + self.seconds))
        except Exception as e:  # noqa: BLE001  (a schedd restarting: the next renewal may reach it)
            if "matched no jobs" not in str(e).lower() and "no jobs" not in str(e).lower():
                print(f"scailfin-exec: htcondor: renewing the run's lease failed ({e}); trying again in "
                      f"{self.every:.0f} s", file=sys.stderr)
