# The slurm scheduler's submissions as pure functions of the settings and the jobs (testable
# without a cluster): jobs that share their resource requests go as one array; the sbatch command
# line (an argument list, never a shell string); the batch script every task of an array runs,
# which finds its job's directory by its task id; and how a wall time becomes --time.

from __future__ import annotations

import math
import shlex

from ...job import Job
from .. import SchedulerError

JOB_FILE = "job.json"
LIMIT_GRACE_S = 60  # Slurm's --time is the step's wall time plus this: the shim's keeper stops it first


def resources(job: Job) -> tuple[int, int, int, int | None]:
    """What an array's tasks must share: cpus, memory (MiB), GPUs, time limit (minutes)."""
    r = job.resources
    return max(1, math.ceil(r.cores)), r.memory_mb, r.gpus, time_limit(r.walltime_s)


def time_limit(walltime_s: int | None) -> int | None:
    """--time in minutes: the wall time with a grace for the keeper to stop the step and write its
    record (a step Slurm kills itself leaves no record)."""
    if walltime_s is None:
        return None
    return math.ceil((walltime_s + LIMIT_GRACE_S) / 60)


def one_line(what: str, value: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise SchedulerError(f"{what} {value!r} contains a line break or NUL byte, which sbatch cannot carry")
    return value


def sbatch_argv(options, name: str, comment: str, count: int, shared: tuple, script: str, log_pattern: str,
                sbatch: str = "sbatch") -> list[str]:
    """sbatch for an array of count tasks sharing the resources `shared` (resources())."""
    cpus, memory_mb, gpus, minutes = shared
    argv = [sbatch, "--parsable", f"--array=0-{count - 1}", f"--job-name={one_line('the job name', name)}",
            f"--comment={one_line('the comment', comment)}", f"--cpus-per-task={cpus}", f"--mem={memory_mb}M",
            "--output=/dev/null", f"--error={log_pattern}", "--requeue"]
    if minutes is not None:
        argv.append(f"--time={minutes}")
    if gpus:
        argv.append(f"--gres=gpu:{gpus}")
    for flag in ("partition", "account", "qos", "reservation", "constraint"):
        value = getattr(options, flag)
        if value:
            argv.append(f"--{flag}={value}")
    return argv + [script]


def script(options, directories_file: str, python: str, shim: str) -> str:
    """The batch script: task N runs the shim on the job in line N+1 of directories_file, with the
    step's stdout and stderr in that job's directory."""
    lines = ["#!/bin/sh"] + [f"#SBATCH {line}" for line in options.sbatch_lines] + [
        "# written by scailfin-exec's slurm scheduler",
        f"dir=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {shlex.quote(directories_file)})",
        'if ! cd "$dir" 2>/dev/null; then',
        '    echo "scailfin-exec: the job directory $dir is not on node $(hostname) (transfer shared: the run '
        'directory must be on a file system the nodes share)" >&2',
        "    exit 254",
        "fi",
        f"exec {shlex.quote(python)} -S {shlex.quote(shim)} {JOB_FILE} > stdout.log 2> stderr.log",
    ]
    return "\n".join(lines) + "\n"


def job_name(batch: list[Job], fallback: str) -> str:
    """The array's name: its step when all its jobs are of one step (a scatter), else the run's."""
    steps = {job.labels.get("step", job.id) for job in batch}
    name = steps.pop() if len(steps) == 1 else fallback
    return "".join(c if c.isprintable() else "_" for c in name)[:200] or "scailfin"
