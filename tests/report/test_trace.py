# The trace file and the steps behind it, without a run: rows as written and read back, cells
# that cannot break a row, phases laid out in order from the submission, and the summary.
import pytest

from scailfin_exec.job import Job, Result
from scailfin_exec.report.html import summary
from scailfin_exec.report.steps import phase_spans, step_of
from scailfin_exec.report.trace import COLUMNS, TraceWriter, parse_iso, read_trace
from scailfin_exec.worker.results import ImageUsed, ResultRecord, RuntimeUsed, Staged

pytestmark = pytest.mark.fast


def ended_step(exit_code=0, error=None, submitted=1000.0):
    job = Job(id="fit-3", image="docker.io/library/python:3-slim", argv=["true"], workspace="/w",
              labels={"step": "fit"})
    record = ResultRecord(exit_code=exit_code, job_id="fit-3", host="node7", started=1002.5, finished=1010.0,
                          cpu_seconds=6.5, timings={"detect_runtime": 0.1, "resolve_image": 0.4, "stage_in": 1.0,
                                                    "run": 5.0, "stage_out": 0.5},
                          runtime=RuntimeUsed("apptainer", "1.4.5"), image=ImageUsed(job.image),
                          stage_in=Staged("htcondor", 2, 2048), stage_out=Staged("htcondor", 1, 512),
                          command=["apptainer", "exec", "img", "sh", "-c", "echo a\tb\nc"])
    return step_of(job, Result("fit-3", exit_code, record, error=error), submitted, "12.0", restarts=1)


def test_a_row_is_written_at_once_and_read_back_with_every_column(tmp_path):
    path = tmp_path / "trace.tsv"
    writer = TraceWriter([str(path)])
    writer.write(ended_step())
    rows = read_trace(str(path))  # before close: each row is flushed as it is written
    writer.close()
    assert path.read_text().splitlines()[0].split("\t") == list(COLUMNS)
    [row] = rows
    assert (row["name"], row["job_id"], row["scheduler_id"], row["state"], row["exit_code"]) == \
        ("fit", "fit-3", "12.0", "done", "0")
    assert parse_iso(row["submitted"]) == 1000.0 and parse_iso(row["started"]) == 1002.5
    assert parse_iso(row["ended"]) == 1010.0 and row["submitted"].endswith("Z")
    assert (row["queued_s"], row["image_s"], row["stage_in_s"], row["run_s"], row["stage_out_s"]) == \
        ("2.500", "0.500", "1.000", "5.000", "0.500")
    assert (row["bytes_in"], row["bytes_out"], row["runtime"], row["host"], row["restarts"]) == \
        ("2048", "512", "apptainer 1.4.5", "node7", "1")


def test_a_failure_reason_with_tabs_and_line_breaks_stays_in_its_cell(tmp_path):
    step = ended_step(exit_code=3, error="held by HTCondor:\tdisk\nfull")
    path = tmp_path / "trace.tsv"
    writer = TraceWriter([str(path)])
    writer.write(step)
    writer.close()
    assert len(path.read_text().splitlines()) == 2
    [row] = read_trace(str(path))
    assert row["state"] == "failed" and row["error"].startswith("held by HTCondor: disk full")


def test_phases_follow_each_other_from_the_submission():
    spans = phase_spans(ended_step())
    assert [name for name, _, _ in spans] == ["queued", "image", "stage_in", "run", "stage_out"]
    assert spans[0][1] == 1000.0 and spans[1][1] == 1002.5
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(spans, spans[1:]))


def test_the_summary_counts_states_bytes_runtimes_hosts_and_retries():
    lines = dict(summary([ended_step(), ended_step(exit_code=1, submitted=990.0)]))
    assert lines["steps"] == "1 done, 1 failed"
    assert lines["wall time"].startswith("20.0 s")
    assert lines["staged in / out"] == "htcondor: 4.0 KiB in, 1.0 KiB out"
    assert lines["runtimes"] == "apptainer 1.4.5 (2)" and lines["hosts"] == "node7 (2)" and lines["retries"] == "2"
