# The slurm scheduler's submissions as pure functions: the sbatch command line, the batch script,
# which jobs can share an array, and --time (no cluster needed).
import os
import subprocess

import pytest

from scailfin_exec.job import Job, Resources
from scailfin_exec.schedulers import SchedulerError
from scailfin_exec.schedulers.slurm import submit
from scailfin_exec.schedulers.slurm.settings import SlurmSettings

pytestmark = pytest.mark.fast


def job(name, **resources):
    return Job(id=name, image="alpine", argv=["true"], workspace="/w", resources=Resources(**resources),
               labels={"step": name.split("-")[0]})


def test_jobs_with_the_same_requests_share_an_array_and_time_leaves_the_keeper_a_grace():
    assert submit.resources(job("a-1")) == submit.resources(job("a-2")) == (1, 256, 0, None)
    assert submit.resources(job("a", cores=2.5, memory_mb=4096, gpus=1, walltime_s=300)) == (3, 4096, 1, 6)
    assert submit.time_limit(1) == 2 and submit.time_limit(3600) == 61


def test_the_sbatch_command_line_carries_resources_site_policy_and_the_run():
    options = SlurmSettings(partition="debug", account="physics", qos="short", reservation=None,
                            constraint="haswell&ib").validate()
    argv = submit.sbatch_argv(options, "decay", "scailfin-run-RUN", 24, (2, 512, 1, 5), "/run/array-1.sh",
                              "/run/array-1-%a.err")
    assert argv[0] == "sbatch" and argv[-1] == "/run/array-1.sh"
    for flag in ("--parsable", "--array=0-23", "--job-name=decay", "--comment=scailfin-run-RUN", "--cpus-per-task=2",
                 "--mem=512M", "--time=5", "--gres=gpu:1", "--partition=debug", "--account=physics", "--qos=short",
                 "--constraint=haswell&ib", "--error=/run/array-1-%a.err", "--requeue"):
        assert flag in argv
    assert not any(a.startswith("--reservation") for a in argv)
    with pytest.raises(SchedulerError, match="line break"):
        submit.sbatch_argv(options, "a\nb", "c", 1, (1, 1, 0, None), "s", "e")


def test_the_batch_script_runs_the_shim_in_its_tasks_directory_whatever_the_paths_hold(tmp_path):
    odd = tmp_path / "it's a $(dir)"
    jobs = [odd / "j0", odd / "j1"]
    for d in jobs:
        d.mkdir(parents=True)
    listing = odd / "array-1.dirs"
    listing.write_text("".join(f"{d}\n" for d in jobs))
    python = tmp_path / "fake python"
    python.write_text('#!/bin/sh\necho "$PWD $*"\necho err >&2\n')
    python.chmod(0o755)
    options = SlurmSettings(sbatch_lines=["--licenses=fs:1"]).validate()
    text = submit.script(options, str(listing), str(python), "/run/the shim.pyz")
    assert text.splitlines()[:2] == ["#!/bin/sh", "#SBATCH --licenses=fs:1"]
    script = tmp_path / "array.sh"
    script.write_text(text)
    for task, directory in enumerate(jobs):
        proc = subprocess.run(["sh", str(script)], env=dict(os.environ, SLURM_ARRAY_TASK_ID=str(task)),
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert (directory / "stdout.log").read_text() == f"{directory} -S /run/the shim.pyz job.json\n"
        assert (directory / "stderr.log").read_text() == "err\n"
    listing.write_text("/not/on/this/node\n")
    proc = subprocess.run(["sh", str(script)], env=dict(os.environ, SLURM_ARRAY_TASK_ID="0"), capture_output=True,
                          text=True)
    assert proc.returncode == 254 and "/not/on/this/node is not on node" in proc.stderr


def test_an_array_is_named_after_its_step_or_the_run():
    assert submit.job_name([job("decay-1"), job("decay-2")], "wf") == "decay"
    assert submit.job_name([job("decay-1"), job("merge-1")], "wf") == "wf"


@pytest.mark.parametrize("field,value", [("partition", "a b"), ("account", "x\ny"), ("qos", "")])
def test_site_names_with_spaces_or_line_breaks_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SlurmSettings(**{field: value}).validate()
    with pytest.raises(ValueError, match="sbatch_lines"):
        SlurmSettings(sbatch_lines=["--x\n#SBATCH --y"]).validate()
