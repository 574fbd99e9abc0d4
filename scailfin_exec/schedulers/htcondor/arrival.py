# Where an ended HTCondor job's files go: every job starts in the run's shared initial directory
# (RUN_DIR/.incoming), where HTCondor brings back JOBID.stdout.log, JOBID.stderr.log and
# JOBID.back/; when the job ends they move to its own directory, RUN_DIR/JOBID/, with its job
# file and result record, as every scheduler leaves a job.

from __future__ import annotations

import os
import shutil

from ...job import Result, read_result, write_job
from ...transfers import mode as transfer_mode
from .. import JobHandle
from .submit import OUTBOX


def arrive(incoming: str, handle: JobHandle) -> None:
    """Give an ended job its directory: its job file, its logs and what HTCondor brought back,
    moved there from the shared initial directory."""
    os.makedirs(handle.directory, 0o700, exist_ok=True)
    if not os.path.exists(handle.job_file):
        write_job(handle.job, handle.job_file)
    for name in ("stdout.log", "stderr.log", OUTBOX):
        arrived = os.path.join(incoming, f"{handle.job.id}.{name}")
        if os.path.lexists(arrived):
            target = os.path.join(handle.directory, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            os.replace(arrived, target)


def collect(incoming: str, handle: JobHandle, status: int) -> Result:
    """The result of a job that ran to its end with exit status, its outputs brought back by
    its transfer mode."""
    arrive(incoming, handle)
    returned = os.path.join(handle.directory, OUTBOX)
    brought = os.path.join(returned, "job.result.json")
    if os.path.exists(brought):  # where every scheduler keeps it
        os.replace(brought, handle.result_file)
    result = read_result(handle.job.id, handle.result_file, status,
                         stdout_log=handle.stdout_log, stderr_log=handle.stderr_log)
    error = transfer_mode(handle.job.transfer).bring_back(handle.job, handle.directory, returned)
    if error:
        result.error = error
    return result


def abort(incoming: str, handle: JobHandle, reason: str) -> Result:
    """The result of a job that left the queue without running to its end (or never entered
    it): what it left, and its transfer mode's leftovers cleaned."""
    arrive(incoming, handle)
    transfer_mode(handle.job.transfer).bring_back(handle.job, handle.directory, "/nonexistent")
    return Result(handle.job.id, None, error=reason, stdout_log=handle.stdout_log, stderr_log=handle.stderr_log)
