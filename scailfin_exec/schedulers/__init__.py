# Schedulers take job descriptions and run them somewhere through the worker shim, one module (or
# package) each, found through one registry (SCHEDULERS) that --help, settings validation and
# make_scheduler all read: `local` on this machine, `htcondor` on a pool. Engines only use this
# interface. A scheduler declares its name, the transfer modes it takes, its own settings class
# (fields with help text, as config.py declares the global ones) and how it is made from settings.

from __future__ import annotations

import abc
import importlib
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..job import Job, Result, result_path_for, write_job

# name -> the module whose SCHEDULER is that scheduler's class (imported when first asked for)
SCHEDULERS = {
    "local": "scailfin_exec.schedulers.local",
    "htcondor": "scailfin_exec.schedulers.htcondor",
    "slurm": "scailfin_exec.schedulers.slurm",
}


def scheduler_class(name: str) -> type["Scheduler"]:
    if name not in SCHEDULERS:
        raise SchedulerError(f"unknown scheduler {name!r} (known: {', '.join(SCHEDULERS)})")
    return importlib.import_module(SCHEDULERS[name]).SCHEDULER


class SchedulerError(RuntimeError):
    """The scheduler itself cannot work (unreachable schedd, bad run directory, ...)."""


@dataclass
class JobHandle:
    job: Job
    directory: str
    job_file: str
    result_file: str
    stdout_log: str
    stderr_log: str
    native: Any = None  # the scheduler's own record of the job
    cancelled: bool = False
    submitted: float = field(default_factory=time.time)  # when handed to the scheduler (seconds since the epoch)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Scheduler(abc.ABC):
    name: ClassVar[str] = ""
    help: ClassVar[str] = ""  # one line for --help
    transfers: ClassVar[tuple[str, ...]] = ("shared",)  # the transfer modes it takes
    options_class: ClassVar[type | None] = None  # its own settings (a dataclass of config.setting fields)

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings, batch_name: str) -> "Scheduler":
        """Made from the global settings (config.Settings; settings.of(name) gives its own options)."""

    @classmethod
    def doctor(cls) -> list[str]:
        """What `scailfin-exec doctor` says of this batch system as seen from here (nothing for the
        schedulers that need no batch system)."""
        return []

    def __init__(self, run_dir: str | None = None):
        self.run_dir = private_directory(run_dir) if run_dir else tempfile.mkdtemp(prefix="scailfin-run-")
        self._handles: list[JobHandle] = []

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many jobs may usefully run at once (engines size their parallelism on it)."""

    @abc.abstractmethod
    def submit(self, job: Job) -> JobHandle:
        """Start the job without waiting for it."""

    @abc.abstractmethod
    def poll(self, handle: JobHandle) -> Result | None:
        """The result if the job has finished, else None. Cheap: engines call it often."""

    @abc.abstractmethod
    def wait(self, handle: JobHandle, timeout: float | None = None) -> Result:
        """Block until the job has finished."""

    @abc.abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Stop the job (queued or running); its result says it was cancelled."""

    @abc.abstractmethod
    def state(self, handle: JobHandle) -> str:
        """Where the job is: "queued" (waiting, or held), "running", or "ended" (poll() has its result)."""

    def native_id(self, handle: JobHandle) -> str | None:
        """The batch system's own name for the job, once it has one (what adopt() needs)."""
        return None

    def restarts(self, handle: JobHandle) -> int:
        """How often the job was run again (evictions, transient holds)."""
        return 0

    def adopt(self, jobs: list[tuple[Job, str | None]]) -> list[JobHandle | None]:
        """Follow again jobs an earlier process of this scheduler started in this run directory
        (each with its native_id as that process knew it, or None): a handle for each job found
        still running or ended, None for one that never started (submit it again)."""
        raise SchedulerError(f"the {self.name} scheduler cannot take over jobs")

    def detach(self) -> None:
        """Stop following the jobs without stopping them (adopt() finds them again)."""
        raise SchedulerError(f"the {self.name} scheduler cannot leave jobs running")

    @property
    def handles(self) -> list[JobHandle]:
        """The jobs submitted so far."""
        return list(self._handles)

    def run(self, job: Job) -> Result:
        return self.wait(self.submit(job))

    def close(self) -> None:
        """Cancel whatever is still running and release resources."""
        for handle in list(self._handles):
            if self.poll(handle) is None:
                self.cancel(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _ready(self, job: Job, directory: str) -> Job:
        """The job as this scheduler ships it (e.g. with its file transfer laid out)."""
        return job

    def _check_transfer(self, job: Job) -> None:
        if job.transfer not in self.transfers:
            raise SchedulerError(f"the {self.name} scheduler cannot use transfer mode {job.transfer!r} (it takes "
                                 f"{', '.join(self.transfers)})")

    def _prepare(self, job: Job) -> JobHandle:
        """Give the job its own directory holding the job file; its logs and result go there."""
        self._check_transfer(job)
        directory = os.path.join(self.run_dir, job.id)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            raise SchedulerError(f"job id {job.id!r} used twice in run directory {self.run_dir}") from None
        job_file = os.path.join(directory, "job.json")
        return self._handle(write_job(self._ready(job, directory), job_file))

    def _handle(self, job: Job) -> JobHandle:
        """The handle of a job whose directory and job file are there (new, or adopted: adopt()
        sets when it was submitted)."""
        directory = os.path.join(self.run_dir, job.id)
        job_file = os.path.join(directory, "job.json")
        handle = JobHandle(job, directory, job_file, result_path_for(job_file),
                           os.path.join(directory, "stdout.log"), os.path.join(directory, "stderr.log"))
        self._handles.append(handle)
        return handle


def private_directory(path: str) -> str:
    """A run directory holds command lines, environments and secrets: it is the user's alone
    (0700), like the temporary one mkdtemp makes. One that exists is made private if it is ours."""
    path = os.path.abspath(path)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
        if info.st_uid != os.getuid():
            raise SchedulerError(f"the run directory {path} belongs to another user (uid {info.st_uid})")
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as e:
        raise SchedulerError(f"cannot use {path} as the run directory: {e.strerror or e}") from None
    return path


def ended_result(handle: JobHandle) -> Result | None:
    """poll() for schedulers whose native record has a `done` event and a `result` (htcondor, slurm)."""
    return handle.native.result if handle.native.done.is_set() else None


def wait_ended(handle: JobHandle, timeout: float | None) -> Result:
    """wait() for the same schedulers."""
    if not handle.native.done.wait(timeout):
        raise TimeoutError(f"job {handle.job.id} still running after {timeout} s")
    return handle.native.result


def run_identity(run_dir: str) -> str:
    """The run's identity on a batch system (HTCondor's ScailfinRun, Slurm's comment), kept in its
    directory: a scheduler opened again on the directory is the same run, and finds its jobs."""
    path = os.path.join(run_dir, "run-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        run_id = uuid.uuid4().hex[:16]
        with open(path, "w") as f:
            f.write(run_id + "\n")
        return run_id


def make_scheduler(settings, batch_name: str = "scailfin") -> Scheduler:
    """The scheduler the settings name, made from them (config.Settings)."""
    return scheduler_class(settings.scheduler).from_settings(settings, batch_name)
