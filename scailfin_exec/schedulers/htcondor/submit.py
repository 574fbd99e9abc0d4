# The htcondor scheduler's submit description, as pure functions of the settings and the jobs
# (testable without a pool): one description per batch, one row of values per job. Nothing with
# a '$' or a newline from a job reaches it (the submit language would expand or cut it).

from __future__ import annotations

import os

from ...job import Job
from ...transfers import mode as transfer_mode
from .. import SchedulerError

OUTBOX = "back"  # HTCondor brings this directory back: the result record and the outputs archive
JOB_FILE = "job.json"
# names of the job's directory a file sent by its own name must not take
RESERVED_NAMES = frozenset({JOB_FILE, OUTBOX, "send", "stdout.log", "stderr.log", "tmp", "var"})


def submit_value(what: str, value: str) -> str:
    """A value for the submit description, which expands every $ (macros such as $(X), $ENV(X),
    $RANDOM_CHOICE(...), and $$(X) when the job is matched) and ends a value at a newline: one
    that has either is refused, so that nothing in it is ever expanded (a secret from this
    process's environment would land in the job's ClassAd for anyone to read)."""
    bad = [c for c in ("$", "\n", "\r") if c in value]
    if bad:
        shown = " or ".join({"$": "'$'", "\n": "a newline", "\r": "a carriage return"}[c] for c in bad)
        raise SchedulerError(f"{what} {value!r} contains {shown}, which HTCondor's submit language would expand or cut: "
                             "refused")
    return value


def label(value: str) -> str:
    """A name shown in the queue (batch name, step): characters the submit language would
    expand or that end a line become '_'."""
    return "".join("_" if c in "$\n\r" or ord(c) < 32 else c for c in value)[:200] or "_"


def condor_arguments(argv: list[str]) -> str:
    """The submit language's new-style arguments: double-quoted, each argument single-quoted."""
    parts = []
    for arg in argv:
        parts.append("'" + submit_value("an argument", arg).replace("'", "''").replace('"', '""') + "'")
    return '"' + " ".join(parts) + '"'


def description(options, batch_name: str, run_id: str, event_log: str, quote) -> dict[str, str]:
    """What every job of a batch shares; per-job values come from row(). options are the
    HTCondorSettings, quote the ClassAd string quoting (classad2.quote)."""
    described = {
        "universe": "vanilla",
        "executable": "/usr/bin/env",
        "transfer_executable": "false",
        "arguments": "$(scailfin_arguments)",
        "initialdir": "$(scailfin_dir)",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_input_files": "$(scailfin_inputs)",
        "transfer_output_files": OUTBOX,
        "output": "stdout.log",
        "error": "stderr.log",
        "log": event_log,
        "request_cpus": "$(scailfin_cpus)",
        "request_memory": "$(scailfin_memory)",
        "request_disk": "$(scailfin_disk)",
        "request_gpus": "$(scailfin_gpus)",
        "batch_name": label(batch_name),
        "My.ScailfinImage": "$(scailfin_image)",
        "My.ScailfinWorkspace": "$(scailfin_workspace)",
        "My.ScailfinStep": "$(scailfin_step)",
        "My.ScailfinJobId": "$(scailfin_job)",
        "My.ScailfinRun": quote(run_id),
        "My.WantIOProxy": "$(scailfin_io_proxy)",  # transfer: chirp reaches the submit side through it
    }
    if options.accounting_group:
        described["accounting_group"] = options.accounting_group
    if options.requirements:
        described["requirements"] = options.requirements
    described.update(options.submit_commands)  # site policy, taken as written
    for name, value in options.job_attributes.items():
        described["My." + name.lstrip("+")] = value
    return described


def row(job: Job, directory: str, shim: str, worker_python: str | None, quote) -> dict[str, str]:
    """One job's values for the description's $(scailfin_...) macros."""
    python = worker_python or "python3"
    argv = [python, "-S", os.path.basename(shim), JOB_FILE, "--outbox", OUTBOX, "--image", job.image,
            "--workspace", job.workspace]
    mode = transfer_mode(job.transfer)
    values = {
        "scailfin_arguments": condor_arguments(argv),
        "scailfin_dir": directory,
        "scailfin_inputs": ",".join([shim, JOB_FILE, OUTBOX] + mode.inputs(job)),
        "scailfin_cpus": str(max(1, int(job.resources.cores + 0.999))),
        "scailfin_memory": f"{job.resources.memory_mb}M",
        "scailfin_disk": f"{job.resources.disk_mb}M",
        "scailfin_gpus": str(job.resources.gpus),
        "scailfin_image": quote(job.image),
        "scailfin_workspace": quote(job.workspace),
        "scailfin_step": quote(label(job.labels.get("step", job.id))),
        "scailfin_job": quote(job.id),
        "scailfin_io_proxy": "true" if mode.IO_PROXY else "false",
    }
    for key, value in values.items():
        submit_value(f"job {job.id}: {key}", value)
    return values
