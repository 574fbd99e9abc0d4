# The job description and the result record as the submit side sees them: the shared definitions
# from the worker package (jobspec.py, results.py), plus writing job files and reading back records.

import json
import os
from dataclasses import dataclass

from .worker.disk import full_note, write_whole
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
from .worker.results import EXIT_CODES, RecordError, ResultRecord, load_record, result_path_for  # noqa: F401


def validated(job: Job) -> Job:
    """The job as the shim will read it (normalised paths), or JobError."""
    return job_from_dict(job_to_dict(job))


def write_job(job: Job, path: str) -> Job:
    """Validate and write a job file atomically; returns the validated job."""
    job = validated(job)
    write_whole(path, dumps(job))  # 0600: argv, environment and secrets are the user's alone
    return job


JOB_RECORDS = "jobs.jsonl"  # in a run directory: the jobs submitted without a job file, one line each


def append_job_records(run_dir: str, jobs: list[tuple[float, Job]]) -> None:
    """Note in the run directory, in one write, jobs submitted without a job file of their own
    (the htcondor scheduler's), each with when it was handed to the scheduler: {"submitted": time,
    "job": description} a line. Reports read them (job_records); `scailfin-exec run-job RUN_DIR
    JOB_ID` runs one again."""
    if not jobs:
        return
    text = "".join(json.dumps({"submitted": round(submitted, 3), "job": job_to_dict(job)}, sort_keys=True) + "\n"
                   for submitted, job in jobs)
    fd = os.open(os.path.join(run_dir, JOB_RECORDS), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def job_records(run_dir: str) -> dict[str, tuple[float, Job]]:
    """The jobs a run directory's JOB_RECORDS notes: job id -> (when submitted, job). A line that
    cannot be read (a run cut off while writing) is skipped."""
    found = {}
    try:
        with open(os.path.join(run_dir, JOB_RECORDS), encoding="utf-8") as f:
            for line in f:
                try:
                    record = loads(line)
                    job = job_from_dict(record["job"])
                    found[job.id] = (float(record["submitted"]), job)
                except (ValueError, KeyError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return found


@dataclass
class Result:
    """What happened to one job: the shim's result record, or why there is none."""

    job_id: str
    exit_code: int | None  # None: the job never finished (cancelled, lost)
    record: ResultRecord | None = None
    stdout_log: str | None = None
    stderr_log: str | None = None
    error: str | None = None  # a scheduler-side failure (cancelled, hold reason, no record)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    @property
    def shim_error(self):
        return self.record.shim_error if self.record else None

    @property
    def runtime(self) -> str:
        used = self.record.runtime if self.record else None
        return f"{used.name} {used.version}" if used else "no runtime"

    @property
    def host(self) -> str:
        return self.record.host if self.record and self.record.host else "unknown host"

    @property
    def image(self) -> str:
        return self.record.image.reference if self.record and self.record.image else "unknown image"

    def describe(self) -> str:
        """One line for a log: what ran where, and how it ended."""
        where = f"{self.runtime} on {self.host}, image {self.image}"
        if self.error:
            return f"job {self.job_id}: {self.error}"
        if self.shim_error:
            return f"job {self.job_id}: {self.shim_error.message} (exit {self.exit_code})"
        return f"job {self.job_id}: exit {self.exit_code} ({where})"

    def reason(self) -> str:
        """Why it did not succeed, in one line, with what ran it where (a held job's reason, a
        missing image, an exit code)."""
        why = self.error or (self.shim_error.message if self.shim_error else f"exit code {self.exit_code}")
        image = f", image {self.image}" if self.record and self.record.image else ""
        return f"{why} ({self.runtime} on {self.host}{image})"

    def stderr_tail(self, lines: int = 10) -> str:
        if not self.stderr_log or not os.path.exists(self.stderr_log):
            return ""
        with open(self.stderr_log, "rb") as f:
            f.seek(max(0, os.path.getsize(self.stderr_log) - 8192))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])


def read_result(job_id: str, result_file: str, exit_status: int | None, **logs) -> Result:
    """Build a Result from the shim's record; a missing or broken record is itself the error."""
    try:
        record = load_record(result_file)
    except RecordError as e:
        return Result(job_id, exit_status, None, error=f"no result record from the shim ({e}); exit status "
                      f"{exit_status}{full_note(result_file)}", **logs)
    return Result(job_id, record.exit_code, record, **logs)
