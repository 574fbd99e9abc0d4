# The run report: one self-contained HTML file (Bokeh's JavaScript inlined: no CDN, no network)
# with a summary, a timeline (one row per step, a bar per phase, coloured by phase, failed steps
# outlined in red, the step's details on hover) and a sortable table of the steps, then the stderr
# tail of each failure. Built from a run directory alone (steps.steps_of_run).

from __future__ import annotations

import html
from collections import Counter

from ..worker.disk import write_whole
from .steps import PHASES, Step, phase_spans, steps_of_run

COLOURS = {"queued": "#bdbdbd", "image": "#9467bd", "stage_in": "#1f77b4", "run": "#2ca02c", "stage_out": "#ff7f0e"}
LABELS = {"queued": "queued", "image": "image preparation", "stage_in": "stage-in", "run": "run",
          "stage_out": "stage-out"}
ROW_PX = 16
BOKEH = ["bokeh", "bokeh-widgets", "bokeh-tables"]  # inlined: what the page uses (not MathJax, 1.8 MB)
COMMAND_CHARS = 300


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def summary(steps: list[Step]) -> list[tuple[str, str]]:
    """The report's summary as (what, value) pairs."""
    states = Counter(s.state for s in steps)
    starts = [s.submitted for s in steps if s.submitted]
    ends = [s.ended for s in steps if s.ended]
    staged: dict[str, list[int]] = {}
    for s in steps:
        for method, size, way in ((s.method_in, s.bytes_in, 0), (s.method_out, s.bytes_out, 1)):
            if method:
                staged.setdefault(method, [0, 0])[way] += size
    return [
        ("steps", ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"),
        ("wall time", f"{max(ends) - min(starts):.1f} s (first submission to last end)" if starts and ends else "-"),
        ("total CPU", f"{sum(s.cpu_seconds or 0 for s in steps):.1f} s (the shims and what they ran)"),
        ("staged in / out", "; ".join(f"{m}: {_human_bytes(i)} in, {_human_bytes(o)} out"
                                      for m, (i, o) in sorted(staged.items())) or "-"),
        ("runtimes", ", ".join(f"{r} ({n})" for r, n in Counter(s.runtime for s in steps if s.runtime).most_common())
         or "-"),
        ("hosts", ", ".join(f"{h} ({n})" for h, n in Counter(s.host for s in steps if s.host).most_common()) or "-"),
        ("retries", str(sum(s.restarts for s in steps))),
        ("holds", str(sum(1 for s in steps if "held by HTCondor" in s.reason))),
    ]


def _timeline(steps: list[Step], origin: float):
    from bokeh.models import ColumnDataSource, HoverTool, Legend, LegendItem
    from bokeh.plotting import figure

    rows = [f"{s.name} [{s.job_id}]" for s in steps]
    fig = figure(y_range=list(reversed(rows)), height=max(240, ROW_PX * len(rows) + 90), sizing_mode="stretch_width",
                 x_axis_label="seconds since the first submission", tools="xpan,xwheel_zoom,reset,save",
                 title="timeline: one row per step, its phases in order")
    segments = {p: {"y": [], "left": [], "right": []} for p in PHASES}
    for row, step in zip(rows, steps):
        for phase, start, end in phase_spans(step):
            segments[phase]["y"].append(row)
            segments[phase]["left"].append(start - origin)
            segments[phase]["right"].append(end - origin)
    items = []
    for phase in PHASES:
        bars = fig.hbar(y="y", left="left", right="right", height=0.7, color=COLOURS[phase],
                        source=ColumnDataSource(segments[phase]), name=f"phase-{phase}")
        items.append(LegendItem(label=LABELS[phase], renderers=[bars]))
    details = ColumnDataSource({
        "y": rows, "left": [s.submitted - origin for s in steps],
        "right": [(s.ended or s.started or s.submitted) - origin for s in steps],
        "outline": ["#d62728" if s.state in ("failed", "cancelled") else None for s in steps],
        "state": [s.state for s in steps], "image": [s.image for s in steps], "runtime": [s.runtime for s in steps],
        "host": [f"{s.host} ({s.slot})" if s.slot else s.host for s in steps],
        "exit_code": ["" if s.exit_code is None else str(s.exit_code) for s in steps],
        "reason": [s.reason for s in steps], "scheduler_id": [s.scheduler_id for s in steps],
        "command": [s.command[:COMMAND_CHARS] for s in steps],
        **{phase: [f"{s.phases.get(phase, 0.0):.2f}" for s in steps] for phase in PHASES},
    })
    outlines = fig.hbar(y="y", left="left", right="right", height=0.9, fill_alpha=0, line_color="outline",
                        line_width=2, source=details, name="steps")
    fig.add_tools(HoverTool(renderers=[outlines], tooltips=[
        ("step", "@y"), ("state", "@state"), ("exit code", "@exit_code"), ("scheduler id", "@scheduler_id"),
        ("image", "@image"), ("runtime", "@runtime"), ("host", "@host"),
        ("phases (s)", " / ".join(f"{LABELS[p]} @{p}" for p in PHASES)), ("why", "@reason"),
        ("command", "@command")]))
    fig.add_layout(Legend(items=items, orientation="horizontal"), "above")
    fig.ygrid.grid_line_color = None
    return fig


def _table(steps: list[Step]):
    from bokeh.models import ColumnDataSource, DataTable, NumberFormatter, TableColumn

    def duration(s: Step) -> float:
        return round((s.ended or s.started or s.submitted) - s.submitted, 3) if s.submitted else 0.0

    data = {"name": [s.name for s in steps], "job_id": [s.job_id for s in steps], "state": [s.state for s in steps],
            "duration": [duration(s) for s in steps], "queued": [round(s.phases.get("queued", 0.0), 3) for s in steps],
            "run": [round(s.phases.get("run", 0.0), 3) for s in steps],
            "exit_code": ["" if s.exit_code is None else str(s.exit_code) for s in steps],
            "runtime": [s.runtime for s in steps], "host": [s.host for s in steps],
            "restarts": [s.restarts for s in steps],
            "reason": [s.reason or (f"cached: from {s.cached_from}" if s.cached_from else "") for s in steps]}
    seconds = NumberFormatter(format="0.00")
    columns = [TableColumn(field="name", title="step"), TableColumn(field="job_id", title="job"),
               TableColumn(field="state", title="state", width=70),
               TableColumn(field="duration", title="duration (s)", formatter=seconds, width=90),
               TableColumn(field="queued", title="queued (s)", formatter=seconds, width=80),
               TableColumn(field="run", title="run (s)", formatter=seconds, width=70),
               TableColumn(field="exit_code", title="exit", width=40),
               TableColumn(field="runtime", title="runtime"), TableColumn(field="host", title="host"),
               TableColumn(field="restarts", title="retries", width=50), TableColumn(field="reason", title="why")]
    return DataTable(source=ColumnDataSource(data), columns=columns, sortable=True, reorderable=False,
                     index_position=None, sizing_mode="stretch_width", height=min(600, 28 + 25 * max(1, len(steps))),
                     name="steps-table")


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table.summary td{{padding:2px 12px 2px 0;vertical-align:top}}
pre{{background:#f6f6f6;padding:.6em;overflow-x:auto}} h3.failed{{color:#d62728}}</style>
{resources}</head><body>
<h1>{title}</h1><p>run directory: <code>{run_dir}</code></p>
<table class="summary" id="summary">{summary}</table>
<h2>Timeline</h2>{timeline_div}
<h2>Steps</h2><p>Click a column's title to sort by it.</p>{table_div}
<h2>Failures</h2>{failures}
{script}</body></html>
"""


def render(steps: list[Step], run_dir: str, title: str = "scailfin-exec run report") -> str:
    from bokeh.embed import components
    from bokeh.resources import Resources

    steps = sorted(steps, key=lambda s: (s.submitted, s.job_id))
    origin = min((s.submitted for s in steps if s.submitted), default=0.0)
    script, (timeline_div, table_div) = components((_timeline(steps, origin), _table(steps)))
    failures = "".join(
        f'<h3 class="failed">{html.escape(s.name)} ({html.escape(s.job_id)}): {html.escape(s.state)}</h3>'
        f"<p>{html.escape(s.reason)}</p><pre>{html.escape(s.stderr_tail or '(no stderr)')}</pre>"
        for s in steps if s.state in ("failed", "cancelled")) or "<p>none</p>"
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in summary(steps))
    resources = Resources(mode="inline", components=BOKEH).render()
    return PAGE.format(title=html.escape(title), run_dir=html.escape(run_dir), summary=rows, resources=resources,
                       timeline_div=timeline_div, table_div=table_div, failures=failures, script=script)


def write_report(run_dir: str, out: str, steps: list[Step] | None = None) -> None:
    """The report of a run directory, written to `out` (replaced whole: a temporary file, then a rename)."""
    text = render(steps if steps is not None else steps_of_run(run_dir), run_dir)
    write_whole(out, text, 0o644)
