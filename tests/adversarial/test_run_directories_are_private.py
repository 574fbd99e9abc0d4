# A run directory holds command lines, environments and secrets: it is the user's alone (0700,
# files 0600), whether it is a temporary one or one given with --run-dir, even one that existed.
import os
import stat

from scailfin_exec.job import ImageSources, Job
from scailfin_exec.schedulers.local import LocalScheduler


def modes(root):
    found = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def test_a_given_run_directory_and_all_in_it_are_private(tmp_path, workspace, image_roots):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    os.chmod(run_dir, 0o755)
    job = Job(id="private", image="docker.io/library/alpine", argv=["sh", "-c", "echo out; echo err >&2"],
              workspace=str(workspace), env={"TOKEN": "not for others"}, runtime=["charliecloud"],
              images=ImageSources(image_roots, str(tmp_path / "cache"), False))
    with LocalScheduler(str(run_dir)) as scheduler:
        assert scheduler.run(job).ok
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
    inside = modes(run_dir)
    assert inside["private"] == 0o700
    for name in ("job.json", "job.result.json", "stdout.log", "stderr.log"):
        assert inside[f"private/{name}"] == 0o600, name


def test_a_temporary_run_directory_is_private(workspace):
    with LocalScheduler() as scheduler:
        assert stat.S_IMODE(os.stat(scheduler.run_dir).st_mode) == 0o700
