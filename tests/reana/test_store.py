# The service's job database: what it writes is there when it is opened again, private to its user.
import os
import stat

import pytest

from scailfin_exec.job import Job, validated
from scailfin_exec.reana.store import Row, Store

pytestmark = pytest.mark.fast


def test_rows_survive_reopening_and_only_unended_ones_are_unfinished(tmp_path):
    path = str(tmp_path / "state" / "jobs.sqlite")
    store = Store(path)
    job = Job(id="a", image="alpine", argv=["true"], workspace="/w", env={"SECRET_LOOKING": "x"})
    for job_id in ("a", "b", "c"):
        store.add(Row(job_id, "wf", f"step-{job_id}", '{"scheduler": "local"}', "/run", Row.job_json(job),
                      "alpine", "dHJ1ZQ==", "false"))
    store.update("a", status="finished", outcome="exit code 0", ended=1.5)
    store.update("b", status="running", native="123", restart_count=1)
    store.close()
    again = Store(path)
    rows = {row.job_id: row for row in again.all()}
    assert [r.job_id for r in again.unfinished()] == ["b", "c"]
    assert rows["a"].terminal and rows["a"].outcome == "exit code 0" and rows["a"].ended == 1.5
    assert rows["b"].native == "123" and rows["b"].restart_count == 1 and rows["b"].status == "running"
    assert rows["c"].the_job() == validated(job)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again.delete("c")
    assert [r.job_id for r in again.unfinished()] == ["b"]
