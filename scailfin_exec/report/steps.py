# One row per step of a run, for the trace file, the report and the progress line: what the
# scheduler interface says (submitted, its own id, restarts) joined with the shim's result record
# (phases, runtime, host, bytes staged), or a step taken from the cache of an earlier run (its
# trace row). Built from a live run (a handle and its Result) or, after
# the fact, from a run directory alone (job.json or jobs.jsonl, job.result.json, trace.tsv).

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..job import Result, job_records, load_job, read_result

# the phases of a step, in the order they happen (the shim: runtime and image, stage-in, run, stage-out)
PHASES = ("queued", "image", "stage_in", "run", "stage_out")


@dataclass
class Step:
    name: str
    job_id: str
    scheduler_id: str = ""
    state: str = "queued"  # queued, running, done, failed, cancelled, cached (taken from an earlier run)
    exit_code: int | None = None
    submitted: float = 0.0  # seconds since the epoch
    started: float | None = None
    ended: float | None = None
    phases: dict = field(default_factory=dict)  # phase -> seconds, in PHASES order
    cpu_seconds: float | None = None
    peak_memory_mb: float | None = None  # not measured yet: the record has no peak memory
    bytes_in: int = 0
    bytes_out: int = 0
    method_in: str = ""
    method_out: str = ""
    runtime: str = ""
    image: str = ""
    host: str = ""
    slot: str = ""  # the batch slot (HTCondor), where the record has it
    restarts: int = 0
    reason: str = ""  # for a failure: one line
    stderr_tail: str = ""
    command: str = ""
    cached_from: str = ""  # for a cached step: the run it came from


def submitted_at(job_file: str) -> float:
    """When the job was handed to the scheduler: its job file is written then (Scheduler._prepare)."""
    try:
        return os.stat(job_file).st_mtime
    except OSError:
        return 0.0


def step_of(job, result: Result | None, submitted: float, scheduler_id: str | None = None, restarts: int = 0,
            state: str | None = None) -> Step:
    """The row of one step: ended (result given) or still queued/running (state given)."""
    step = Step(name=job.labels.get("step", job.id), job_id=job.id, scheduler_id=scheduler_id or "",
                submitted=submitted, restarts=restarts, image=job.image)
    if result is None:
        step.state = state or "queued"
        return step
    step.state = "done" if result.ok else ("cancelled" if result.error == "cancelled" else "failed")
    step.exit_code = result.exit_code
    record = result.record
    if record is not None:
        _from_record(step, record)
    if not result.ok:
        step.reason = result.reason() if result.error != "cancelled" else "cancelled"
        step.stderr_tail = result.stderr_tail()
    return step


def _from_record(step: Step, record) -> None:
    step.started, step.ended = record.started or None, record.finished or None
    step.cpu_seconds = record.cpu_seconds
    step.host, step.slot = record.host, record.slot
    step.runtime = f"{record.runtime.name} {record.runtime.version}".strip() if record.runtime else ""
    step.image = record.image.reference if record.image else step.image
    step.command = " ".join(record.command or [])
    if record.stage_in:
        step.bytes_in, step.method_in = record.stage_in.bytes, record.stage_in.method
    if record.stage_out:
        step.bytes_out, step.method_out = record.stage_out.bytes, record.stage_out.method
    t = record.timings
    step.phases = {
        "queued": max(0.0, (step.started or step.submitted) - step.submitted) if step.submitted else 0.0,
        "image": t.get("detect_runtime", 0.0) + t.get("resolve_image", 0.0),
        "stage_in": t.get("stage_in", 0.0),
        "run": t.get("run", 0.0),
        "stage_out": t.get("stage_out", 0.0),
    }


def phase_spans(step: Step) -> list[tuple[str, float, float]]:
    """(phase, start, end) in seconds since the epoch, in order: queued from submission to the
    shim's start, then the shim's phases one after the other from its start."""
    if step.started is None:
        return []
    spans = [("queued", step.submitted, step.started)] if step.submitted else []
    t = step.started
    for phase in PHASES[1:]:
        seconds = step.phases.get(phase, 0.0)
        if seconds > 0:
            spans.append((phase, t, t + seconds))
            t += seconds
    return spans


def steps_of_run(run_dir: str, states: dict | None = None) -> list[Step]:
    """Every step of a run directory, from its job files (or, for a job submitted without one, its
    line in jobs.jsonl) and result records; what the trace file (RUN_DIR/trace.tsv) knows of a
    step (its scheduler id, restarts) is added."""
    from .trace import read_trace

    rows = read_trace(os.path.join(run_dir, "trace.tsv"))
    known = {row["job_id"]: row for row in rows if row["job_id"]}
    jobs = job_records(run_dir)  # job id -> (submitted, job)
    for name in sorted(os.listdir(run_dir)):
        job_file = os.path.join(run_dir, name, "job.json")
        if name not in jobs and os.path.isfile(job_file):
            try:
                jobs[name] = (submitted_at(job_file), load_job(job_file))
            except Exception:  # noqa: BLE001  (a broken job file is not a step to show)
                continue
    steps = []
    for name, (submitted, job) in sorted(jobs.items()):
        result_file = os.path.join(run_dir, name, "job.result.json")
        result = None
        if os.path.exists(result_file):
            result = read_result(job.id, result_file, None, stdout_log=os.path.join(run_dir, name, "stdout.log"),
                                 stderr_log=os.path.join(run_dir, name, "stderr.log"))
        row = known.get(job.id, {})
        step = step_of(job, result, submitted, row.get("scheduler_id"), int(row.get("restarts") or 0),
                       (states or {}).get(job.id))
        if row.get("state") in ("failed", "cancelled") and step.state == "done":
            step.state = row["state"]  # the scheduler's verdict (a hold, a lost output) stands
            step.reason = row.get("reason", "")
        steps.append(step)
    return steps + [_cached(row) for row in rows if row.get("state") == "cached"]


def _cached(row: dict) -> Step:
    """A step taken from the cache, as its trace row says."""
    from .trace import parse_iso

    when = parse_iso(row.get("ended", "")) or 0.0
    return Step(name=row["name"], job_id="", state="cached", exit_code=0, submitted=when, ended=when,
                cached_from=row.get("cached_from", ""))


def to_json(steps: list[Step]) -> str:
    return json.dumps([s.__dict__ for s in steps])
