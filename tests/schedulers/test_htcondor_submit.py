# The htcondor scheduler's submit description as pure functions of settings and jobs (no pool):
# the batch's shared description, one row per job, and nothing from a job that the submit
# language would expand.
import classad2
import pytest

from scailfin_exec.job import Job, validated
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
    described = submit.description(options, "wf$ENV(TOKEN)\n", "run-1", "/runs/events.log", classad2.quote)
    assert described["batch_name"] == "wf_ENV(TOKEN)_" and described["log"] == "/runs/events.log"
    assert described["accounting_group"] == "group_physics" and described["requirements"] == "HasSingularity"
    assert described["periodic_remove"] == "JobStatus == 5" and described["My.Project"] == '"x"'
    assert described["My.ScailfinRun"] == '"run-1"'


@pytest.mark.parametrize("mode, io_proxy", [("shared", "false"), ("htcondor", "false"), ("chirp", "true")])
def test_a_row_carries_the_image_workspace_resources_and_what_the_transfer_mode_sends(mode, io_proxy):
    staged = {"/data/in.txt": "in.txt", "/data/dir": "send/1.tar"} if mode == "htcondor" else {}
    row = submit.row(job(transfer=mode, staged=staged), "/runs/step-1", "/runs/shim.pyz", None, classad2.quote)
    assert row["scailfin_arguments"] == ('"\'python3\' \'-S\' \'shim.pyz\' \'job.json\' \'--outbox\' \'back\' '
                                         '\'--image\' \'docker.io/library/alpine\' \'--workspace\' \'/data/ws\'"')
    assert row["scailfin_image"] == '"docker.io/library/alpine"' and row["scailfin_step"] == '"count words"'
    assert row["scailfin_io_proxy"] == io_proxy and (row["scailfin_cpus"], row["scailfin_memory"]) == ("1", "256M")
    inputs = row["scailfin_inputs"].split(",")
    assert inputs[:3] == ["/runs/shim.pyz", "job.json", "back"]
    assert inputs[3:] == (["send", "/data/in.txt"] if mode == "htcondor" else [])


@pytest.mark.parametrize("field, value", [("workspace", "/data/$ENV(SECRET)"), ("image", "/images/a$b")])
def test_a_value_the_submit_language_would_expand_is_refused(field, value):
    with pytest.raises(SchedulerError, match="which HTCondor's submit language would expand or cut: refused"):
        submit.row(job(**{field: value}), "/runs/step-1", "/runs/shim.pyz", None, classad2.quote)
