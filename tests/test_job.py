# The job description on the submit side: written validated and private, and a malformed image
# reference refused before anything is submitted, with the message the worker would give.
import os
import stat

import pytest

from scailfin_exec.job import Job, JobError, write_job
from scailfin_exec.worker.references import parse_reference

pytestmark = pytest.mark.fast


def test_a_job_file_is_written_validated_and_private(tmp_path):
    job = write_job(Job(id="j", image="alpine", argv=["true"], workspace="/data//ws/"), str(tmp_path / "job.json"))
    assert job.workspace == "/data/ws" and job.outputs == ["/data/ws"]
    assert stat.S_IMODE(os.stat(tmp_path / "job.json").st_mode) == 0o600


def test_a_malformed_image_reference_fails_before_submission_with_the_workers_message(tmp_path):
    with pytest.raises(JobError) as info:
        write_job(Job(id="j", image="Alpine:Latest!", argv=["true"], workspace="/w"), str(tmp_path / "job.json"))
    with pytest.raises(ValueError) as worker:
        parse_reference("Alpine:Latest!")
    assert str(info.value) == f"job.image: {worker.value}" == "job.image: invalid image reference 'Alpine:Latest!': bad tag 'Latest!'"
    assert not (tmp_path / "job.json").exists()


def test_the_runs_job_records_are_private_and_a_line_cut_off_is_skipped(tmp_path):
    from scailfin_exec.job import append_job_records, job_records

    append_job_records(str(tmp_path), [(1.5, Job(id=f"j{i}", image="alpine", argv=["true"], workspace="/ws"))
                                       for i in range(2)])
    with open(tmp_path / "jobs.jsonl", "a") as f:
        f.write('{"submitted": 1, "job": {"id": "cut')
    found = job_records(str(tmp_path))
    assert sorted(found) == ["j0", "j1"] and found["j1"][1].workspace == "/ws" and found["j0"][0] == 1.5
    assert stat.S_IMODE(os.stat(tmp_path / "jobs.jsonl").st_mode) == 0o600
