# scailfin_exec.Run, the embedding API: the README's example run as it is (a real Podman container
# through the local scheduler), the settings becoming each job's fields in one place, job ids
# unique in a run and beside an earlier run's directories, a closed run refusing new jobs, and a
# second close (Ctrl-C's, from another thread) waiting for the first.
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from scailfin_exec import Run, Settings
from scailfin_exec.job import ImageSources
from scailfin_exec.schedulers import SchedulerError

from .conftest import REPO


def readme_example() -> str:
    text = open(os.path.join(REPO, "README.md")).read()
    match = re.search(r"<!-- embedding-example -->\n```python\n(.*?)```", text, re.S)
    assert match, "README.md has no embedding example"
    return match.group(1)


def test_the_readmes_embedding_example_runs_a_step_in_a_real_container(tmp_path, image_roots):
    env = dict(os.environ, SCAILFIN_RUNTIME="podman", SCAILFIN_IMAGE_ROOTS=os.pathsep.join(image_roots),
               SCAILFIN_PULL="no", SCAILFIN_RUN_DIR=str(tmp_path / "run"))
    out = subprocess.run([sys.executable, "-c", readme_example()], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    described, greeting = out.stdout.splitlines()
    assert re.fullmatch(r"job greet-1: exit 0 \(podman 4\.\S+ on \S+, image docker\.io/library/alpine:latest\)",
                        described), described
    assert greeting == f"hello from {os.environ['USER']} in a container"  # podman keeps the user's id
    trace = (tmp_path / "run" / "trace.tsv").read_text().splitlines()  # the run's watch wrote its row
    assert len(trace) == 2 and "\tgreet-1\t" in trace[1] and "\tdone\t" in trace[1]


@pytest.mark.fast
def test_a_runs_settings_become_each_jobs_fields_and_the_callers_fields_win(tmp_path):
    settings = Settings(transfer="shared", runtime=["charliecloud", "podman"], image_roots=["/images"], pull=False,
                        image_cache="/cache", runtime_options={"podman": ["--runtime", "runc"]})
    run = Run(settings, name="wf", watch=False)
    job = run.job("a-1", "alpine", ["true"], str(tmp_path))
    assert (job.transfer, job.runtime, job.runtime_options) == ("shared", ["charliecloud", "podman"],
                                                                {"podman": ["--runtime", "runc"]})
    assert job.images == ImageSources(["/images"], "/cache", False) and job.labels == {"workflow": "wf"}
    assert run.job("a-2", "alpine", ["true"], str(tmp_path), runtime=["podman"]).runtime == ["podman"]


@pytest.mark.fast
def test_job_ids_are_unique_in_a_run_and_beside_an_earlier_runs_directories(tmp_path):
    (tmp_path / "count-1").mkdir()  # an earlier run's job in the same run directory
    run = Run(Settings(run_dir=str(tmp_path)), watch=False)
    ids = [run.job_id("count") for _ in range(3)] + [run.job_id("a step/with odd:chars"), run.job_id("...")]
    assert ids == ["count-2", "count-3", "count-4", "a_step_with_odd_chars-5", "step-6"]


@pytest.mark.fast
def test_a_closed_run_refuses_new_jobs_and_a_second_close_waits_for_the_first(tmp_path):
    run = Run(Settings(run_dir=str(tmp_path / "run")), watch=False)
    scheduler = run.scheduler
    slow_close, closed_at = scheduler.close, {}

    def slow():
        time.sleep(0.5)
        slow_close()
        closed_at["first"] = time.monotonic()
    scheduler.close = slow
    first = threading.Thread(target=run.close)
    first.start()
    time.sleep(0.1)
    run.close()  # as Ctrl-C's handler and the front end's own finally both do
    closed_at["second"] = time.monotonic()
    first.join()
    assert closed_at["second"] >= closed_at["first"] and run.closed_scheduler is scheduler
    with pytest.raises(SchedulerError, match="this run has ended"):
        run.scheduler
