# The shared transfer mode, submit half: nothing travels (the worker sees the workspace at the same
# path); once the job has ended, what a killed attempt left in the workspace is cleared (its
# private copy; under chirp, its temporaries: the worker half says which).

from __future__ import annotations

from ..job import Job
from ..worker.transfers import remove_leftovers

IO_PROXY = False


def ship(job: Job, directory: str, taken: frozenset = frozenset()) -> Job:
    return job


def inputs(job: Job, directory: str) -> list[str]:
    return []


def bring_back(job: Job, directory: str, returned: str) -> str | None:
    remove_leftovers(job)
    return None
