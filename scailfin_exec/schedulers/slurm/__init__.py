# The slurm scheduler, in its parts: its settings (settings.py), the sbatch command line and batch
# script as pure functions of settings and jobs (submit.py), and the scheduler that batches jobs
# into arrays, follows the queue and cancels (scheduler.py).

from .scheduler import SlurmScheduler
from .settings import SlurmSettings

SCHEDULER = SlurmScheduler
__all__ = ["SCHEDULER", "SlurmScheduler", "SlurmSettings"]
