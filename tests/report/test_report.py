# The run report, the trace file and the progress output of real runs: decay-scatter and a
# failing workflow (one step exits 1, one step's image is missing) through the local scheduler
# (Charliecloud) and on the HTCondor test site (Apptainer, HTCondor's file transfer). Each report
# is opened in a real headless Chromium (tests/report/browser.py) and a screenshot kept with the
# test's files; the trace rows are compared with the result records and HTCondor's event log.
import json
import os
import pty
import subprocess
import sys

import pytest

from scailfin_exec.report.trace import parse_iso, read_trace

from ..conftest import REPO
from ..cwl.test_examples import example
from .browser import check_page

FAILURES = os.path.join(REPO, "tests", "report", "data", "two-failures.cwl")
ON = {"local": ["--scheduler", "local", "--runtime", "charliecloud"],
      "htcondor": ["--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer"]}


def run_dir_of(stderr):
    line = next(line for line in stderr.splitlines() if "result records and step logs are in" in line)
    return line.rsplit(" ", 1)[-1]


def records(run_dir):
    found = {}
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name, "job.result.json")
        if os.path.exists(path):
            found[name] = json.load(open(path))
    return found


def check_trace_against_records(trace, run_dir):
    """One row per step; its start and end are the record's (to the millisecond), its phases in
    order inside them, submitted before started."""
    rows = read_trace(trace)
    assert [r["job_id"] for r in rows] == sorted({r["job_id"] for r in rows}, key=[r["job_id"] for r in rows].index)
    recs = records(run_dir)
    for row in rows:
        record = recs.get(row["job_id"])
        if record is None:  # a step that never ran (cancelled before it started)
            assert row["started"] == "" and row["state"] in ("failed", "cancelled")
            continue
        assert abs(parse_iso(row["started"]) - record["started"]) < 0.001
        assert abs(parse_iso(row["ended"]) - record["finished"]) < 0.001
        assert parse_iso(row["submitted"]) <= parse_iso(row["started"])
        assert float(row["run_s"] or 0) == pytest.approx(record["timings"].get("run", 0.0), abs=0.001)
        assert row["runtime"].split()[0] == record["runtime"]["name"] and row["host"] == record["host"]
    return rows


@pytest.mark.parametrize("where", ["local", "htcondor"])
def test_decay_scatter_report_and_trace(scailfin_cwl, tmp_path, where, request):
    if where == "htcondor":
        request.getfixturevalue("pool")
    report, trace = tmp_path / "report.html", tmp_path / "trace.tsv"
    run = scailfin_cwl(*ON[where], "--parallel", "--report", report, "--trace", trace, "--outdir", tmp_path / "out",
                       *example("decay-scatter", "decay-scatter.cwl", "decay-scatter-job.json"))
    assert run.returncode == 0, run.stderr
    run_dir = run_dir_of(run.stderr)
    rows = check_trace_against_records(trace, run_dir)
    assert len(rows) == 25 and {r["state"] for r in rows} == {"done"}
    assert f"scailfin-exec: report written to {report}" in run.stderr
    assert "scailfin-exec: 25 done, 0 failed, 0 running, 0 queued (25 steps" in run.stderr  # the final line
    timeline, ran, outlined = check_page(report, str(tmp_path / f"decay-scatter-{where}.png"), steps=25, failed=0)
    assert len(ran) == 25
    if where == "htcondor":
        check_trace_against_the_event_log(rows, os.path.join(run_dir, "events.log"))


def check_trace_against_the_event_log(rows, event_log):
    """HTCondor's own times (whole seconds) bracket the trace's: submitted, then executing, then
    the shim's start and end, then terminated."""
    import htcondor2

    seen = {}
    for event in htcondor2.JobEventLog(event_log).events(stop_after=0):
        seen.setdefault(f"{event.cluster}.{event.proc}", {}).setdefault(event.type, event.timestamp)
    for row in rows:
        times = seen[row["scheduler_id"]]
        submit = times[htcondor2.JobEventType.SUBMIT]
        execute = times[htcondor2.JobEventType.EXECUTE]
        end = times[htcondor2.JobEventType.JOB_TERMINATED]
        assert parse_iso(row["submitted"]) <= submit + 1 <= parse_iso(row["started"]) + 2
        assert execute <= parse_iso(row["started"]) + 1
        assert parse_iso(row["ended"]) <= end + 1


@pytest.mark.parametrize("where", ["local", "htcondor"])
def test_a_failing_run_has_its_failures_marked_with_their_reasons(scailfin_cwl, tmp_path, where, request):
    if where == "htcondor":
        request.getfixturevalue("pool")
    report, trace = tmp_path / "report.html", tmp_path / "trace.tsv"
    run = scailfin_cwl(*ON[where], "--parallel", "--on-error", "continue", "--report", report, "--trace", trace,
                       FAILURES)
    assert run.returncode == 1
    rows = {r["name"]: r for r in check_trace_against_records(trace, run_dir_of(run.stderr))}
    assert {name: r["state"] for name, r in rows.items()} == {"breaks": "failed", "no_image": "failed", "works": "done"}
    assert rows["breaks"]["exit_code"] == "1" and rows["no_image"]["exit_code"] == "252"
    assert "no-such-image" in rows["no_image"]["error"]
    timeline, ran, outlined = check_page(report, str(tmp_path / f"failing-{where}.png"), steps=3, failed=2)
    assert {row.split(" [")[0] for row in outlined} == {"breaks", "no_image"}
    page = report.read_text()
    assert "the calibration is missing" in page and "not found" in page  # the failures' stderr tail and reason


def test_scailfin_exec_report_rebuilds_the_report_and_trace_from_a_run_directory(scailfin_cwl, tmp_path):
    run = scailfin_cwl(*ON["local"], "--parallel", "--on-error", "continue", "--trace", tmp_path / "live.tsv",
                       FAILURES)
    run_dir = run_dir_of(run.stderr)
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-exec")
    made = subprocess.run([exe, "report", run_dir, "-o", tmp_path / "after.html", "--trace", tmp_path / "after.tsv"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "report of 3 step(s) written to" in made.stderr
    live, after = read_trace(tmp_path / "live.tsv"), read_trace(tmp_path / "after.tsv")
    key = ("name", "job_id", "state", "exit_code", "started", "ended", "run_s", "host", "runtime", "image")
    assert sorted(tuple(r[k] for k in key) for r in after) == sorted(tuple(r[k] for k in key) for r in live)
    check_page(tmp_path / "after.html", str(tmp_path / "after.png"), steps=3, failed=2)
    bad = subprocess.run([exe, "report", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "holds no job" in bad.stderr


def test_progress_is_a_bar_on_a_terminal_and_never_both(tmp_path, image_roots):
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    argv = [exe, *ON["local"], "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--parallel",
            "--outdir", str(tmp_path / "out"), *example("wordcount", "wordcount.cwl", "wordcount-job.yml")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: scailfin-cwl with a terminal as stdout and stderr
        os.chdir(tmp_path)
        os.execv(exe, argv)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    assert "2/2 done [" in text and ("step/s" in text or "s/step" in text)  # tqdm's bar: done/total, rate
    assert "scailfin-exec: 2 done" not in text  # not the line as well
