# The chirp transfer mode, submit half: nothing travels but the job itself, which reaches the
# submit side through HTCondor's I/O proxy (the shim writes outputs back, each renamed into place);
# once the job has ended, the temporaries of a killed or evicted attempt are cleared.

from __future__ import annotations

from ..job import Job
from ..worker.transfers import remove_leftovers

IO_PROXY = True


def ship(job: Job, directory: str, taken: frozenset = frozenset()) -> Job:
    return job


def inputs(job: Job) -> list[str]:
    return []


def bring_back(job: Job, directory: str, returned: str) -> str | None:
    remove_leftovers(job)
    return None
