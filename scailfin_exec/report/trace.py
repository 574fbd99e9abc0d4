# The trace file (--trace FILE, and RUN_DIR/trace.tsv always): one tab-separated row per step,
# written and flushed as each step ends, so a run that crashes still leaves the rows of what
# finished (Nextflow's trace file, for our steps). Times are UTC, ISO 8601 with milliseconds;
# durations in seconds. A step taken from the cache of an earlier run (--cachedir) is a row in
# state `cached`, with the run it came from.

from __future__ import annotations

import csv
import datetime
import os
import threading

from .steps import PHASES, Step

COLUMNS = ("name", "job_id", "scheduler_id", "state", "exit_code", "submitted", "started", "ended",
           *(f"{phase}_s" for phase in PHASES), "cpu_s", "peak_memory_mb", "bytes_in", "bytes_out", "runtime",
           "image", "host", "slot", "restarts", "error", "cached_from")


def iso(t: float | None) -> str:
    if not t:
        return ""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(text: str) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return " ".join(str(value).split())  # no tab or line break inside a cell


def row(step: Step) -> list[str]:
    values = [step.name, step.job_id, step.scheduler_id, step.state, step.exit_code, iso(step.submitted),
              iso(step.started), iso(step.ended), *(step.phases.get(p) for p in PHASES), step.cpu_seconds,
              step.peak_memory_mb, step.bytes_in, step.bytes_out, step.runtime, step.image, step.host,
              step.slot, step.restarts, step.reason, step.cached_from]
    return [_cell(v) for v in values]


class TraceWriter:
    """Appends rows to one or more trace files (header first), each row flushed at once."""

    def __init__(self, paths: list[str]):
        self._lock = threading.Lock()
        self._files = []
        for path in paths:
            fresh = not os.path.exists(path) or os.path.getsize(path) == 0
            # 0600: a trace names commands, images and errors (a run directory's files are the user's alone)
            f = open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", newline="", encoding="utf-8")
            if fresh:
                csv.writer(f, delimiter="\t", lineterminator="\n").writerow(COLUMNS)
                f.flush()
            self._files.append(f)

    def write(self, step: Step) -> None:
        cells = row(step)
        with self._lock:
            for f in self._files:
                csv.writer(f, delimiter="\t", lineterminator="\n").writerow(cells)
                f.flush()

    def close(self) -> None:
        with self._lock:
            for f in self._files:
                f.close()
            self._files = []


def read_trace(path: str) -> list[dict]:
    """The rows of a trace file as dicts (none if there is no such file)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except FileNotFoundError:
        return []
