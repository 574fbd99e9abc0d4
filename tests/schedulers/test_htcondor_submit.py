# The htcondor scheduler's submit description as pure functions of settings and jobs (no pool):
# the batch's shared description, one row per job carrying its description in the job ad (or its
# private job file, with secrets), values every row shares written into the description, and
# nothing from a job that the submit language would expand.
import base64
import json

import time

import classad2
import pytest

from scailfin_exec.job import Job, job_from_dict, job_to_dict, validated
from scailfin_exec.schedulers import SchedulerError
from scailfin_exec.schedulers.htcondor import HTCondorSettings, condor_arguments
from scailfin_exec.schedulers.htcondor import submit

pytestmark = pytest.mark.fast


def job(**over):
    fields = dict(id="step-1", image="docker.io/library/alpine", argv=["sh", "-c", "echo $HOME"], workspace="/data/ws",
                  labels={"step": "count words"})
    fields.update(over)
    return validated(Job(**fields))


def test_arguments_are_quoted_for_the_submit_language():
    assert condor_arguments(["python3", "a b", "it's", 'say "x"']) == '"\'python3\' \'a b\' \'it\'\'s\' \'say ""x""\'"'
    with pytest.raises(SchedulerError, match="newline"):
        condor_arguments(["a\nb"])


def test_the_description_carries_site_policy_and_the_run_and_names_its_batch_safely():
    options = HTCondorSettings(accounting_group="group_physics", requirements="HasSingularity",
                               submit_commands={"periodic_remove": "JobStatus == 5"}, job_attributes={"+Project": '"x"'})
    described = submit.description(options, "wf$ENV(TOKEN)\n", "run-1", "/runs/events.log", "/runs/.incoming",
                                   classad2.quote)
    assert described["batch_name"] == "wf_ENV(TOKEN)_" and described["log"] == "/runs/events.log"
    assert described["initialdir"] == "/runs/.incoming" and described["output"] == "$(scailfin_id).stdout.log"
    assert described["transfer_output_remaps"] == '"back = $(scailfin_id).back"'
    assert described["accounting_group"] == "group_physics" and described["requirements"] == "HasSingularity"
    assert described["My.Project"] == '"x"' and described["My.ScailfinRun"] == '"run-1"'
    # the site's periodic_remove, or the run's lease run out (lease.py) for a job not running
    assert described["periodic_remove"] == ("(JobStatus == 5) || (JobStatus != 2 && time() > ScailfinLeaseUntil && "
                                            "time() > EnteredCurrentStatus + 1200)")
    assert abs(int(described["My.ScailfinLeaseUntil"]) - time.time() - 1200) <= 5
    assert described["job_lease_duration"] == "2400"


def a_row(j, **over):
    fields = submit.without_defaults(job_to_dict(j))
    shared = {k: v for k, v in fields.items() if k not in ("id", "labels")}
    args = dict(fields={k: v for k, v in fields.items() if k not in shared}, base=submit.encoded(shared),
                directory="/runs/step-1", shim="/runs/shim.pyz", outbox="/runs/.outbox/back", worker_python=None,
                quote=classad2.quote)
    args.update(over)
    return submit.row(j, **args)


def decoded(value):
    return json.loads(base64.b64decode(value.strip('"')))


@pytest.mark.parametrize("mode, io_proxy", [("shared", "false"), ("htcondor", "false"), ("chirp", "true")])
def test_a_row_carries_the_image_workspace_resources_the_description_and_what_the_transfer_mode_sends(mode, io_proxy):
    staged = {"/data/in.txt": "in.txt", "/data/dir": "send/1.tar"} if mode == "htcondor" else {}
    j = job(transfer=mode, staged=staged)
    row = a_row(j)
    assert row["scailfin_arguments"] == ('"\'python3\' \'-S\' \'shim.pyz\' \'--job-ad\' \'--outbox\' \'back\' '
                                         '\'--image\' \'docker.io/library/alpine\' \'--workspace\' \'/data/ws\'"')
    assert row["scailfin_image"] == '"docker.io/library/alpine"' and row["scailfin_step"] == '"count words"'
    assert row["scailfin_io_proxy"] == io_proxy and (row["scailfin_cpus"], row["scailfin_memory"]) == ("1", "256M")
    assert row["scailfin_id"] == "step-1"
    inputs = row["scailfin_inputs"].split(",")
    assert inputs[:2] == ["/runs/shim.pyz", "/runs/.outbox/back"]
    assert inputs[2:] == (["/runs/step-1/send", "/data/in.txt"] if mode == "htcondor" else [])
    # the job ad holds the whole description: the shared part and the job's own, less the defaults
    carried = {**decoded(row["scailfin_base"]), **decoded(row["scailfin_own"])}
    assert job_from_dict(carried) == j and "secrets" not in carried and "binds" not in carried


def test_a_job_with_secrets_sends_its_private_job_file_and_nothing_of_it_is_in_its_ad():
    j = job(argv=["login", "--token", "s3cret"], secrets=["s3cret"])
    row = a_row(j, job_file="/runs/step-1/job.json")
    assert row["scailfin_own"] == row["scailfin_base"] == '""'
    assert "s3cret" not in "".join(row.values())
    assert "'job.json'" in row["scailfin_arguments"] and "--job-ad" not in row["scailfin_arguments"]
    assert row["scailfin_inputs"].split(",")[2] == "/runs/step-1/job.json"


def test_what_every_row_shares_is_written_into_the_description_and_only_differences_stay_in_rows():
    jobs = [job(id=f"s{i}", labels={"step": "scatter"}) for i in range(3)]
    fields = [job_to_dict(j) for j in jobs]
    shared = submit.shared_fields(fields)
    assert "id" not in shared and shared["argv"] == ["sh", "-c", "echo $HOME"] and "labels" in shared
    base = submit.encoded(shared)
    rows = [a_row(j, fields={k: v for k, v in f.items() if k not in shared}, base=base) for j, f in zip(jobs, fields)]
    described = submit.description(HTCondorSettings(), "b", "r", "/runs/events.log", "/runs/.incoming", classad2.quote)
    hoisted, left = submit.hoist(described, rows)
    assert [sorted(r) for r in left] == [["scailfin_id", "scailfin_own"]] * 3
    assert hoisted["My.ScailfinJobBase"] == base and hoisted["My.ScailfinStep"] == '"scatter"'
    assert hoisted["output"] == "$(scailfin_id).stdout.log" and hoisted["My.ScailfinJob"] == "$(scailfin_own)"
    assert "$(scailfin_arguments)" not in hoisted["arguments"] and "--job-ad" in hoisted["arguments"]
    assert submit.hoist(described, rows[:1])[1] == [{}]  # one job: everything is written in


@pytest.mark.parametrize("field, value", [("workspace", "/data/$ENV(SECRET)"), ("image", "/images/a$b")])
def test_a_value_the_submit_language_would_expand_is_refused(field, value):
    with pytest.raises(SchedulerError, match="which HTCondor's submit language would expand or cut: refused"):
        a_row(job(**{field: value}))


def test_a_batch_is_made_by_the_schedd_all_at_once_unless_the_site_limits_it():
    described = {"executable": "/usr/bin/env"}
    assert submit.late_materialized(described, 1000) == {"executable": "/usr/bin/env", "max_materialize": "1000"}
    assert "max_materialize" not in described
    for site in ({"max_idle": "50"}, {"Max_Materialize": "10"}):
        assert submit.late_materialized(dict(described, **site), 1000) == dict(described, **site)
