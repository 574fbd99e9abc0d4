# The result record, typed like the job: written and read through one definition, fields a newer
# shim adds are left out, and a record that is not one is a RecordError naming the file.
import json

import pytest

from scailfin_exec.job import read_result
from scailfin_exec.worker.results import (ImageUsed, RecordError, ResultRecord, RuntimeUsed, ShimError, Staged,
                                          load_record, record_from_dict, record_to_dict, result_path_for)

pytestmark = pytest.mark.fast


def test_a_record_round_trips_through_json_with_its_parts_typed():
    record = ResultRecord(exit_code=3, job_id="j", runtime=RuntimeUsed("podman", "4.3.1", "/usr/bin/podman"),
                          image=ImageUsed("docker.io/library/alpine:latest", "ref", "docker.io/library/alpine:latest",
                                          "podman storage"),
                          stage_in=Staged("shared", 2, 10, 0.5), notes=["a note"], timings={"run": 1.5})
    again = record_from_dict(json.loads(json.dumps(record_to_dict(record))))
    assert again == record and again.runtime.name == "podman" and again.stage_in.files == 2


def test_fields_a_newer_shim_adds_are_left_out():
    record = record_from_dict({"exit_code": 0, "a_field_from_the_future": 1, "shim_error": {
        "code": 254, "kind": "staging", "message": "m", "hint": "new"}})
    assert record.shim_error == ShimError(254, "staging", "m")


@pytest.mark.parametrize("data, message", [([], "not a JSON object"), ({}, "no exit code"),
                                           ({"exit_code": True}, "no exit code"),
                                           ({"exit_code": 0, "runtime": 5}, "malformed")])
def test_what_is_not_a_record_is_refused(data, message):
    with pytest.raises(RecordError, match=message):
        record_from_dict(data)


def test_a_missing_or_broken_record_is_the_jobs_error(tmp_path):
    broken = tmp_path / "job.result.json"
    broken.write_text("{ nope")
    result = read_result("j", str(broken), 137)
    assert result.record is None and result.exit_code == 137 and not result.ok
    assert result.error.startswith(f"no result record from the shim ({broken}: ")
    with pytest.raises(RecordError, match="No such file"):
        load_record(str(tmp_path / "missing.json"))
    assert result_path_for("/r/job.json") == "/r/job.result.json"
