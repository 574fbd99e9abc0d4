# The job description as the submit side sees it: the shared definition from the worker package,
# plus writing job files and reading back the shim's result records.

import os
from dataclasses import dataclass, field
from typing import Any

from .worker.jobspec import (  # noqa: F401  (re-exported: this is the job description's home)
    FORMAT_VERSION,
    Bind,
    ImageSources,
    Job,
    JobError,
    Resources,
    dumps,
    job_from_dict,
    job_to_dict,
    load_job,
    loads,
)
from .worker.shim import EXIT_CODES, result_path_for  # noqa: F401


def validated(job: Job) -> Job:
    """The job as the shim will read it (normalised paths), or JobError."""
    return job_from_dict(job_to_dict(job))


def write_job(job: Job, path: str) -> Job:
    """Validate and write a job file atomically; returns the validated job."""
    job = validated(job)
    tmp = f"{path}.tmp-{os.getpid()}"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
        f.write(dumps(job))  # argv, environment and secrets: the user's alone
    os.replace(tmp, path)
    return job


@dataclass
class Result:
    """What happened to one job: the shim's result record, or why there is none."""

    job_id: str
    exit_code: int | None  # None: the job never finished (cancelled, lost)
    record: dict[str, Any] = field(default_factory=dict)
    stdout_log: str | None = None
    stderr_log: str | None = None
    error: str | None = None  # a scheduler-side failure (cancelled, hold reason, no record)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    @property
    def shim_error(self) -> dict | None:
        return self.record.get("shim_error")

    @property
    def runtime(self) -> str:
        rt = self.record.get("runtime") or {}
        return f"{rt.get('name')} {rt.get('version')}" if rt else "no runtime"

    @property
    def host(self) -> str:
        return self.record.get("host", "unknown host")

    @property
    def image(self) -> str:
        img = self.record.get("image") or {}
        return img.get("reference", "unknown image")

    def describe(self) -> str:
        """One line for a log: what ran where, and how it ended."""
        where = f"{self.runtime} on {self.host}, image {self.image}"
        if self.error:
            return f"job {self.job_id}: {self.error}"
        if self.shim_error:
            return f"job {self.job_id}: {self.shim_error['message']} (exit {self.exit_code})"
        return f"job {self.job_id}: exit {self.exit_code} ({where})"

    def stderr_tail(self, lines: int = 10) -> str:
        if not self.stderr_log or not os.path.exists(self.stderr_log):
            return ""
        with open(self.stderr_log, "rb") as f:
            f.seek(max(0, os.path.getsize(self.stderr_log) - 8192))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])


def read_result(job_id: str, result_file: str, exit_status: int | None, **logs) -> Result:
    """Build a Result from the shim's record; a missing or broken record is itself the error."""
    try:
        with open(result_file, encoding="utf-8") as f:
            record = loads(f.read())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return Result(job_id, exit_status, {}, error=f"no result record from the shim ({result_file}: {e}); "
                      f"exit status {exit_status}", **logs)
    return Result(job_id, record.get("exit_code", exit_status), record, **logs)
