# Watching a run through the scheduler interface alone (handles, poll, state, native_id,
# restarts), whatever the scheduler: a trace row as each step ends (RUN_DIR/trace.tsv, and the
# user's --trace file), progress on stderr (a live bar on a terminal, else a one-line summary at
# most every LINE_EVERY_S seconds, never both), and the HTML report when the run is over.

from __future__ import annotations

import os
import sys
import threading
import time

from .steps import Step, step_of
from .trace import TraceWriter

TICK_S = 0.5
LINE_EVERY_S = 10.0


class RunWatch:
    def __init__(self, scheduler, settings, stream=None):
        self.scheduler = scheduler
        self.settings = settings
        self.stream = stream or sys.stderr
        self.report = os.path.abspath(settings.report) if settings.report else None
        self.trace = TraceWriter([os.path.join(scheduler.run_dir, "trace.tsv")] +
                                 ([os.path.abspath(settings.trace)] if settings.trace else []))
        self._known = 0  # how many of the scheduler's handles (a list it only appends to) are seen
        self._open: list = []  # the handles seen that have not ended
        self._ended: dict[str, Step] = {}
        self._counts = {"done": 0, "cached": 0, "failed": 0, "running": 0, "queued": 0}
        self._started = time.monotonic()
        self._last_line = ("", 0.0)
        self._bar = None
        if settings.progress and self.stream.isatty():
            from tqdm import tqdm

            try:  # a terminal that reports no size (a bare pty) gets 100x24: tqdm hides a bar below a 0-line screen
                sized = os.get_terminal_size(self.stream.fileno()).lines > 0
            except (OSError, ValueError):
                sized = False
            size = {"dynamic_ncols": True} if sized else {"ncols": 100, "nrows": 24}
            self._bar = tqdm(total=0, unit="step", file=self.stream, leave=True, **size,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} done [{elapsed}, {rate_fmt}{postfix}]")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scailfin-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            self._sweep()
            self._show()

    def _sweep(self) -> None:
        """Note the steps that ended since the last sweep, and count the rest: only the handles not
        yet ended are looked at, so a sweep of a long run costs what is still out, not all of it."""
        handles = self.scheduler.handles
        self._open.extend(handles[self._known:])
        self._known = len(handles)
        still, running = [], 0
        for handle in self._open:
            result = self.scheduler.poll(handle)
            if result is None:
                still.append(handle)
                running += self.scheduler.state(handle) == "running"
                continue
            step = step_of(handle.job, result, handle.submitted, self.scheduler.native_id(handle),
                           self.scheduler.restarts(handle))
            self._ended[handle.job.id] = step
            self.trace.write(step)
            self._counts["done" if step.state == "done" else "failed"] += 1
        self._open = still
        self._counts["running"], self._counts["queued"] = running, len(still) - running

    def cached(self, name: str, origin: str) -> None:
        """A step taken from the cache of finished steps: a trace row, and counted apart."""
        now = time.time()
        step = Step(name=name, job_id="", state="cached", exit_code=0, submitted=now, ended=now, cached_from=origin)
        self.trace.write(step)
        self._counts["cached"] += 1

    def summary(self) -> str:
        c = self._counts
        total = sum(c.values())
        cached = f"{c['cached']} cached, " if c["cached"] else ""
        return (f"{c['done']} done, {cached}{c['failed']} failed, {c['running']} running, {c['queued']} queued "
                f"({total} step{'' if total == 1 else 's'}, {time.monotonic() - self._started:.0f} s)")

    def _show(self, final: bool = False) -> None:
        if not self.settings.progress:
            return
        c = self._counts
        if self._bar is not None:
            self._bar.total = sum(c.values())
            self._bar.n = c["done"] + c["cached"] + c["failed"]
            self._bar.set_postfix_str(f"{c['failed']} failed, {c['running']} running, {c['queued']} queued",
                                      refresh=False)
            self._bar.refresh()
            return
        line = self.summary()
        previous, when = self._last_line
        now = time.monotonic()
        changed = line.split(" (")[0] != previous.split(" (")[0]
        if sum(c.values()) and changed and (final or now - when >= LINE_EVERY_S):
            self._last_line = (line, now)
            print(f"scailfin-exec: {line}", file=self.stream, flush=True)

    def finish(self) -> list[Step]:
        """The run is over (the scheduler closed): the last rows, the last progress, the report."""
        self._stop.set()
        self._thread.join()
        self._sweep()
        self._show(final=True)
        if self._bar is not None:
            self._bar.close()
        self.trace.close()
        if self.report:
            from .html import write_report

            write_report(self.scheduler.run_dir, self.report)
            print(f"scailfin-exec: report written to {self.report}", file=self.stream, flush=True)
        return list(self._ended.values())
