# scailfin-cwl --cachedir through the local scheduler, in real containers: a second run takes every
# step from the cache and submits no job, with the same outputs; the key changes with what decides a
# step's result (an input's content, an environment variable the step gets, a requirement it
# inherits) and with nothing else; a run interrupted in the middle of a scatter resumes with only
# the steps that had not finished; cached steps show as such in the trace, progress and report; a
# step with secret inputs is never cached.
# The same on HTCondor and Slurm: tests/cwl/test_htcondor.py, tests/cwl/test_slurm.py. A tag moved
# in a registry: tests/test_pinning.py.
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from scailfin_exec.report.trace import read_trace

from ..conftest import REPO, wait_for
from .test_examples import EXAMPLES

DATA = os.path.join(REPO, "tests", "cwl", "data")
WORDCOUNT = os.path.join(EXAMPLES, "wordcount")


def states(run):
    """{state: [step names]} of a scailfin-cwl run, from its trace."""
    found = {}
    for row in read_trace(os.path.join(run.run_dir, "trace.tsv")):
        found.setdefault(row["state"], []).append(row["name"])
    return {state: sorted(names) for state, names in found.items()}


def jobs_submitted(run):
    """The job descriptions a run handed to its scheduler (each has its directory in the run directory)."""
    return sorted(glob.glob(os.path.join(run.run_dir, "*", "job.json")))


def outputs(run) -> dict:
    """The run's output files, name -> content."""
    files = [v for v in run.output.values() for v in (v if isinstance(v, list) else [v])]
    return {f["basename"]: open(f["path"]).read() for f in files}


def wordcount(scailfin_cwl, tmp_path, cache, text, *args, runtime="podman"):
    job = tmp_path / "job.yml"
    job.write_text(json.dumps({"text": {"class": "File", "path": str(text)}}))
    run = scailfin_cwl("--runtime", runtime, "--cachedir", cache, "--outdir", tmp_path / f"out-{time.monotonic_ns()}",
                       *args, os.path.join(WORDCOUNT, "wordcount.cwl"), job)
    assert run.returncode == 0, run.stderr
    return run


def test_a_second_run_takes_every_step_from_the_cache_submits_no_job_and_gives_the_same_outputs(scailfin_cwl,
                                                                                                 tmp_path):
    cache = tmp_path / "cache"
    first = wordcount(scailfin_cwl, tmp_path, cache, os.path.join(WORDCOUNT, "text.txt"))
    assert states(first) == {"done": ["count_words", "split_words"]}
    report = tmp_path / "report.html"
    second = wordcount(scailfin_cwl, tmp_path, cache, os.path.join(WORDCOUNT, "text.txt"), "--report", report)
    assert jobs_submitted(second) == []
    assert states(second) == {"cached": ["count_words", "split_words"]}
    assert outputs(second) == outputs(first) and outputs(first)["count.txt"].strip() == "18"
    # cwltool's own layout and words, and where each step came from
    assert "[job split_words] Using cached output in " + str(cache) in second.stderr
    assert "(from the wordcount run on " in second.stderr and "(job split_words-1" in second.stderr
    assert sorted(os.listdir(cache)) == sorted(
        f"{key}{suffix}" for key in {os.path.basename(d) for d in glob.glob(f"{cache}/*") if os.path.isdir(d)}
        for suffix in ("", ".status", ".run"))
    assert "0 done, 2 cached, 0 failed" in second.stderr
    rows = read_trace(os.path.join(second.run_dir, "trace.tsv"))
    assert all(row["cached_from"].startswith("the wordcount run on ") for row in rows)
    page = report.read_text()
    assert "2 cached" in page and "cached: from the wordcount run" in page


def test_a_changed_input_reruns_the_step_it_reaches_and_not_a_step_whose_input_came_out_the_same(scailfin_cwl,
                                                                                                   tmp_path):
    cache = tmp_path / "cache"
    text = tmp_path / "text.txt"
    text.write_text("alpha beta\ngamma\n")
    wordcount(scailfin_cwl, tmp_path, cache, text)
    text.write_text("alpha   beta gamma\n")  # other content, the same words
    again = wordcount(scailfin_cwl, tmp_path, cache, text)
    assert states(again) == {"cached": ["count_words"], "done": ["split_words"]}
    text.write_text("alpha beta\n")
    third = wordcount(scailfin_cwl, tmp_path, cache, text)
    assert states(third) == {"done": ["count_words", "split_words"]}
    assert outputs(third)["count.txt"].strip() == "2"


def test_the_same_input_at_another_path_is_the_same_step(scailfin_cwl, tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        shutil.copy(os.path.join(WORDCOUNT, "text.txt"), tmp_path / d / "text.txt")
    wordcount(scailfin_cwl, tmp_path, cache, tmp_path / "a" / "text.txt")
    again = wordcount(scailfin_cwl, tmp_path, cache, tmp_path / "b" / "text.txt", runtime="charliecloud")
    assert states(again) == {"cached": ["count_words", "split_words"]}  # nor does the runtime matter


def test_an_environment_variable_the_step_gets_and_a_requirement_it_inherits_are_in_its_key(scailfin_cwl, tmp_path):
    cache = tmp_path / "cache"
    workflow = tmp_path / "resume-env.cwl"
    shutil.copy(os.path.join(DATA, "resume-env.cwl"), workflow)

    def say(host_value):
        run = scailfin_cwl("--runtime", "podman", "--cachedir", cache, "--preserve-environment", "FROM_HOST",
                           "--outdir", tmp_path / f"out-{time.monotonic_ns()}", workflow,
                           env=dict(os.environ, FROM_HOST=host_value))
        assert run.returncode == 0, run.stderr
        return states(run), outputs(run)["said.txt"].strip()

    assert say("a") == ({"done": ["say"]}, "one a")
    assert say("a") == ({"cached": ["say"]}, "one a")
    assert say("b") == ({"done": ["say"]}, "one b")  # the variable passed from the host changed
    workflow.write_text(workflow.read_text().replace("FROM_WORKFLOW: one", "FROM_WORKFLOW: two"))
    assert say("b") == ({"done": ["say"]}, "two b")  # the workflow's EnvVarRequirement, inherited, changed
    assert say("b") == ({"cached": ["say"]}, "two b")


def test_a_step_whose_work_reuse_is_disabled_runs_every_time(scailfin_cwl, tmp_path):
    cache = tmp_path / "cache"
    workflow = tmp_path / "no-reuse.cwl"
    text = open(os.path.join(DATA, "resume-env.cwl")).read()
    workflow.write_text(text.replace("  EnvVarRequirement:\n", "  WorkReuse: {enableReuse: false}\n  EnvVarRequirement:\n", 1))
    for _ in range(2):
        run = scailfin_cwl("--runtime", "podman", "--cachedir", cache, "--outdir", tmp_path / f"o{time.monotonic_ns()}",
                           workflow)
        assert run.returncode == 0, run.stderr
        assert states(run) == {"done": ["say"]}


def finished_entries(cache):
    """The cache entries whose status says their outputs are whole."""
    return [s for s in glob.glob(f"{cache}/*.status") if open(s).read() == "success"]


def scatter_job(tmp_path, until):
    job = tmp_path / "scatter-job.json"
    job.write_text(json.dumps({"ids": list(range(1, 25)), "quick": 8, "until": until}))
    return job


def interrupt_then_resume(tmp_path, image_roots, scheduler_args, stop, wait_s, workflow=None):
    """Run the 24-way scatter (steps 1-8 quick, the rest waiting until a time wait_s away) with a
    cache; once at least 4 entries are finished, stop the run (stop(proc, run_dir): Ctrl-C, or
    removing its jobs through the scheduler); run the same command again. The resumed run must run
    only the steps that had not finished, and its outputs must be whole."""
    cache = tmp_path / "cache"
    until = int(time.time()) + wait_s
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")

    def command(n):
        run_dir = tmp_path / f"run-{n}"
        return run_dir, [exe, "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--cachedir", cache,
                         "--parallel", "--run-dir", run_dir, "--outdir", tmp_path / f"out-{n}", *scheduler_args,
                         workflow or os.path.join(DATA, "resume-scatter.cwl"), scatter_job(tmp_path, until)]

    run_dir, argv = command(1)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_for(lambda: len(finished_entries(cache)) >= 4 or proc.poll() is not None, seconds=wait_s)
        assert time.time() < until, "the quick steps were not done before the slow ones could end: no test"
        stop(proc, run_dir)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: leave no scailfin-cwl behind
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, err
    finished = len(finished_entries(cache))
    assert 4 <= finished <= 8, err
    assert time.time() < until, "the run was stopped after the slow steps could end: no test"

    run_dir, argv = command(2)
    resumed = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_trace(os.path.join(run_dir, "trace.tsv"))
    assert sum(r["state"] == "cached" for r in rows) == finished
    assert sum(r["state"] == "done" for r in rows) == 24 - finished
    assert len(glob.glob(os.path.join(run_dir, "*", "job.json"))) == 24 - finished  # jobs submitted
    said = json.loads(resumed.stdout)["said"]
    assert [open(f["path"]).read() for f in said] == [f"step {i}\n" for i in range(1, 25)]
    assert len(finished_entries(cache)) == 24
    return finished


def ctrl_c(proc, run_dir):
    proc.send_signal(signal.SIGINT)


def test_a_run_interrupted_mid_scatter_resumes_with_only_the_steps_that_had_not_finished(tmp_path, image_roots):
    interrupt_then_resume(tmp_path, image_roots, ["--runtime", "podman", "--max-parallel", "4"], ctrl_c, wait_s=40)


def test_a_step_with_secret_inputs_runs_every_time_and_no_entry_holds_the_secret(scailfin_cwl, tmp_path):
    cache = tmp_path / "cache"
    for _ in range(2):
        run = scailfin_cwl("--runtime", "podman", "--cachedir", cache, "--outdir", tmp_path / f"o{time.monotonic_ns()}",
                           os.path.join(DATA, "secret-step.cwl"), "--pw", "hunter2")
        assert run.returncode == 0, run.stderr
        assert states(run) == {"done": ["secret-step.cwl"]}
        assert outputs(run)["o.txt"] == "a secret of 7 characters\n"
        assert "not cached: it has secret inputs (pw)" in run.stderr
    assert not cache.exists() or os.listdir(cache) == []
