# The htcondor scheduler, in its parts: its settings (settings.py), the submit description as a
# pure function of settings and jobs (submit.py), the event-log follower (events.py), and the
# scheduler that batches, follows, retries and cancels (scheduler.py).

from .scheduler import HTCondorScheduler
from .settings import HTCondorSettings
from .submit import condor_arguments

SCHEDULER = HTCondorScheduler
__all__ = ["HTCondorScheduler", "HTCondorSettings", "SCHEDULER", "condor_arguments"]
