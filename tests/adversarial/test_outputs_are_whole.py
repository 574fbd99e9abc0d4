# Outputs are replaced whole in every transfer mode: a shim killed (SIGKILL) while its step writes
# leaves the old output and takes the step with it; an output that is a symbolic link leaving the
# workspace is refused in every mode, and the link is not left in the workspace.
import os
import signal
import subprocess
import sys
import time

import pytest

from scailfin_exec.config import Settings
from scailfin_exec.job import ImageSources, Job, write_job
from scailfin_exec.schedulers.htcondor import HTCondorScheduler
from scailfin_exec.schedulers.local import LocalScheduler

from ..conftest import processes_running, wait_for

EXE = os.path.join(os.path.dirname(sys.executable), "scailfin-exec")
WRITER = "for i in $(seq 1 400); do echo line $i; sleep 0.02; done > big.out; sleep 2852"


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.parametrize("runtime", ["charliecloud", "podman"])
def test_a_killed_shim_leaves_the_old_output_and_takes_its_step_with_it(tmp_path, workspace, image_roots, runtime):
    (workspace / "big.out").write_text("old content\n")
    job = Job(id="writer", image="docker.io/library/alpine", argv=["sh", "-c", WRITER], workspace=str(workspace),
              outputs=["big.out"], runtime=[runtime], images=ImageSources(image_roots, str(tmp_path / "cache"), False))
    write_job(job, str(tmp_path / "job.json"))
    run_job = subprocess.Popen([EXE, "run-job", str(tmp_path / "job.json"), "--run-dir", str(tmp_path / "run")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: any(name.startswith(".scailfin-work-") and os.path.exists(workspace / name / "big.out")
                                    for name in os.listdir(workspace)), 60), "the step never started writing"
        time.sleep(1)
        [shim] = children(run_job.pid)
        os.kill(shim, signal.SIGKILL)
        out, err = run_job.communicate(timeout=60)
    finally:
        if run_job.poll() is None:
            run_job.kill()
            run_job.communicate(timeout=30)
    assert run_job.returncode != 0 and "no result record from the shim" in err
    assert (workspace / "big.out").read_text() == "old content\n"
    assert wait_for(lambda: not processes_running(b"2852") and not processes_running(b"0.02"), 15)
    assert sorted(os.listdir(workspace)) == ["big.out"]  # the killed attempt's private copy is gone


def test_the_whole_new_output_replaces_the_old_one_when_the_step_ends(tmp_path, workspace, image_roots):
    (workspace / "big.out").write_text("old content\n")
    (workspace / "not-declared.txt").write_text("kept\n")
    step = "for i in $(seq 1 50); do echo line $i; done > big.out; echo changed > not-declared.txt; echo new > new.txt"
    job = Job(id="writer", image="docker.io/library/alpine", argv=["sh", "-c", step], workspace=str(workspace),
              outputs=["big.out", "new.txt"], runtime=["charliecloud"],
              images=ImageSources(image_roots, str(tmp_path / "cache"), False))
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        result = scheduler.run(job)
    assert result.ok, result.describe()
    assert (workspace / "big.out").read_text() == "".join(f"line {i}\n" for i in range(1, 51))
    assert (workspace / "new.txt").read_text() == "new\n"
    assert (workspace / "not-declared.txt").read_text() == "kept\n"  # only declared outputs come back
    assert result.record.stage_out.files == 2


ESCAPE = "ln -s /etc/passwd escape; echo new > keep.txt"


def escaped(result, workspace):
    assert result.exit_code == 254, result.describe()
    assert "is a symbolic link leaving the workspace (to /etc/passwd): refused" in result.shim_error.message
    assert not os.path.lexists(workspace / "escape") and (workspace / "keep.txt").read_text() == "old\n"


@pytest.mark.parametrize("runtime", ["charliecloud", "podman"])
def test_an_output_link_leaving_the_workspace_is_refused_on_a_shared_file_system(tmp_path, workspace, image_roots,
                                                                                   runtime):
    (workspace / "keep.txt").write_text("old\n")
    job = Job(id="escape", image="docker.io/library/alpine", argv=["sh", "-c", ESCAPE], workspace=str(workspace),
              runtime=[runtime], images=ImageSources(image_roots, str(tmp_path / "cache"), False))
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        escaped(scheduler.run(job), workspace)


def test_an_output_link_leaving_the_workspace_is_refused_with_htcondor_file_transfer(pool, tmp_path, workspace,
                                                                                      image_roots):
    (workspace / "keep.txt").write_text("old\n")
    job = Job(id="escape", image="docker.io/library/alpine", argv=["sh", "-c", ESCAPE], workspace=str(workspace),
              transfer="htcondor", runtime=["apptainer"], images=ImageSources(image_roots, None, False))
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="escape-htcondor") as scheduler:
        escaped(scheduler.run(job), workspace)
