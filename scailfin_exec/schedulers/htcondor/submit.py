# The htcondor scheduler's submit description, as pure functions of the settings and the jobs
# (testable without a pool): one description per batch, one row of values per job, and the values
# every row shares moved into the description (hoist). A job's description travels in its job ad
# (the batch's shared fields once, in the cluster ad; the job's own fields in its proc ad), except
# for a job with secrets, whose private job file travels. Nothing with a '$' or a newline from a
# job reaches the submit language (it would expand or cut it).

from __future__ import annotations

import os

from ...job import Job
from ...worker.images import SENT_CREDENTIALS
from ...worker.jobad import AD_BASE, AD_OWN, encoded
from ...transfers import mode as transfer_mode
from .. import SchedulerError
from . import lease

OUTBOX = "back"  # HTCondor brings this directory back: the result record and the outputs archive
JOB_FILE = "job.json"
INCOMING = ".incoming"  # the jobs' shared initial directory: JOBID.stdout.log, JOBID.stderr.log, JOBID.back/
# names of the job's directory a file sent by its own name must not take
RESERVED_NAMES = frozenset({JOB_FILE, OUTBOX, SENT_CREDENTIALS, "send", "stdout.log", "stderr.log", "tmp", "var"})


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


def description(options, batch_name: str, run_id: str, event_log: str, incoming: str, quote) -> dict[str, str]:
    """What every job of a batch shares; per-job values come from row(). options are the
    HTCondorSettings, incoming the jobs' shared initial directory, quote the ClassAd string
    quoting (classad2.quote). Each job's files arrive there under its id (job ids are letters,
    digits, '_', '.' and '-': safe in the submit language and in file names)."""
    described = {
        "universe": "vanilla",
        "executable": "/usr/bin/env",
        "transfer_executable": "false",
        "arguments": "$(scailfin_arguments)",
        "initialdir": incoming,
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_input_files": "$(scailfin_inputs)",
        "transfer_output_files": OUTBOX,
        "transfer_output_remaps": f'"{OUTBOX} = $(scailfin_id).{OUTBOX}"',
        "output": "$(scailfin_id).stdout.log",
        "error": "$(scailfin_id).stderr.log",
        "log": event_log,
        "request_cpus": "$(scailfin_cpus)",
        "request_memory": "$(scailfin_memory)",
        "request_disk": "$(scailfin_disk)",
        "request_gpus": "$(scailfin_gpus)",
        "batch_name": label(batch_name),
        "My.ScailfinImage": "$(scailfin_image)",
        "My.ScailfinWorkspace": "$(scailfin_workspace)",
        "My.ScailfinStep": "$(scailfin_step)",
        "My.ScailfinJobId": '"$(scailfin_id)"',
        "My.ScailfinRun": quote(run_id),
        "My." + AD_BASE: "$(scailfin_base)",
        "My." + AD_OWN: "$(scailfin_own)",
        "My.WantIOProxy": "$(scailfin_io_proxy)",  # transfer: chirp reaches the submit side through it
        "job_lease_duration": str(options.job_lease),
    }
    if options.accounting_group:
        described["accounting_group"] = options.accounting_group
    if options.requirements:
        described["requirements"] = options.requirements
    described.update(options.submit_commands)  # site policy, taken as written
    described.update(lease.submit_commands(options.run_lease, options.submit_commands.get("periodic_remove")))
    for name, value in options.job_attributes.items():
        described["My." + name.lstrip("+")] = value
    return described


_DEFAULTS = {name: dict(value._asdict()) if hasattr(value, "_asdict") else value
             for name, value in Job._field_defaults.items()}


def without_defaults(fields: dict) -> dict:
    """A job's fields (job_to_dict) less those at their default value: the shim's validation puts
    them back, and the job ad is shorter (the schedd expands every value for every job)."""
    return {k: v for k, v in fields.items() if k not in _DEFAULTS or v != _DEFAULTS[k]}


def shared_fields(jobs: list[dict]) -> dict:
    """The fields (of job_to_dict) every one of jobs has with the same value: the batch's part of
    each job's description, carried once."""
    if not jobs:
        return {}
    first, rest = jobs[0], jobs[1:]
    return {k: v for k, v in first.items() if k != "id" and all(j.get(k) == v for j in rest)}


def row(job: Job, fields: dict, base: str, directory: str, shim: str, outbox: str, worker_python: str | None,
        quote, job_file: str | None = None) -> dict[str, str]:
    """One job's values for the description's $(scailfin_...) macros. fields: the job's own part
    of its description (job_to_dict without the batch's shared fields), base: the shared part,
    encoded; directory: the job's own (where its transfer mode put what it sends). A job with
    secrets has job_file instead: its private job file travels, and nothing of the job is in its ad.
    outbox: an empty directory named OUTBOX, sent so that the outputs come back (and the job ends
    with its exit code, not held) even from a shim that never started."""
    python = worker_python or "python3"
    source = [JOB_FILE] if job_file else ["--job-ad"]
    argv = [python, "-S", os.path.basename(shim)] + source + ["--outbox", OUTBOX, "--image", job.image,
                                                             "--workspace", job.workspace]
    mode = transfer_mode(job.transfer)
    values = {
        "scailfin_id": job.id,
        "scailfin_arguments": condor_arguments(argv),
        # the registry credentials' directory (credentials.py) arrives as SENT_CREDENTIALS/
        "scailfin_inputs": ",".join([shim, outbox] + ([job_file] if job_file else []) +
                                    ([job.images.credentials] if job.images.credentials else []) + mode.inputs(job, directory)),
        "scailfin_cpus": str(max(1, int(job.resources.cores + 0.999))),
        "scailfin_memory": f"{job.resources.memory_mb}M",
        "scailfin_disk": f"{job.resources.disk_mb}M",
        "scailfin_gpus": str(job.resources.gpus),
        "scailfin_image": quote(job.image),
        "scailfin_workspace": quote(job.workspace),
        "scailfin_step": quote(label(job.labels.get("step", job.id))),
        "scailfin_base": '""' if job_file else base,
        "scailfin_own": '""' if job_file else encoded(fields),
        "scailfin_io_proxy": "true" if mode.IO_PROXY else "false",
    }
    for key, value in values.items():
        submit_value(f"job {job.id}: {key}", value)
    return values


def late_materialized(described: dict[str, str], count: int) -> dict[str, str]:
    """The description of a batch of count jobs the schedd makes itself (HTCondor's late
    materialization: the description and the rows travel once, and the schedd makes every job
    from them, all at once up to max_materialize): 1000 jobs reach the queue in about half the
    time they take when the submitting process makes each job ad and sends it attribute by
    attribute. A site's own max_materialize or max_idle (submit_commands) stands. A submit host
    configured with SCHEDD_ALLOW_LATE_MATERIALIZE = false submits the jobs one by one instead."""
    if any(k.lower() in ("max_materialize", "max_idle") for k in described):
        return described
    return dict(described, max_materialize=str(count))


def hoist(described: dict[str, str], rows: list[dict[str, str]]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The description with every macro all rows give the same value written in, and the rows
    without them: a scatter's thousand jobs then differ only where they must (values are checked
    free of '$' by row(), so writing one in expands nothing)."""
    if not rows:
        return described, rows
    first = rows[0]
    same = {k: v for k, v in first.items() if all(r[k] == v for r in rows)}
    out = {}
    for key, value in described.items():
        for name, fixed in same.items():
            value = value.replace(f"$({name})", fixed)
        out[key] = value
    return out, [{k: v for k, v in r.items() if k not in same} for r in rows]
