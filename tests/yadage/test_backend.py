# The yadage backend: the examples through `yadage-run -b py:scailfin_exec.yadage:Backend` with
# the local scheduler (Podman, Charliecloud) and on the HTCondor test site (Apptainer with
# HTCondor's file transfer and with chirp, Charliecloud with chirp), on the Slurm cluster (Apptainer
# and Charliecloud, shared file system), the fromenv route and Python,
# resuming an interrupted run, yadage's checksum cache (`-c checksums`: a second run submits no job,
# a changed input reruns only what depends on it), read-only earlier stages, CVMFS, and a failing
# step's report.
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from scailfin_exec.job import job_records
from scailfin_exec.report.trace import read_trace

from ..conftest import REPO

EXAMPLES = os.path.join(REPO, "yadage_examples")
YADAGE_RUN = os.path.join(os.path.dirname(sys.executable), "yadage-run")


def yadage_run(workdir, example, image_roots, options=(), backend="py:scailfin_exec.yadage:Backend", env=None,
               toplevel=None, wait=True, flags=()):
    argv = [YADAGE_RUN, "-t", toplevel or os.path.join(EXAMPLES, example), "-b", backend, *flags,
            "-k", f"image_roots=[{os.pathsep.join(image_roots)}]", "-k", "pull=false"]
    for option in options:
        argv += ["-k", option]
    argv += [str(workdir), "workflow.yml"]
    if os.path.exists(os.path.join(toplevel or os.path.join(EXAMPLES, example), "input.yml")):
        argv.append(os.path.join(toplevel or os.path.join(EXAMPLES, example), "input.yml"))
    if not wait:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=os.path.dirname(str(workdir)))
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=os.path.dirname(str(workdir)))


def records(run_dir):
    return [json.load(open(os.path.join(run_dir, d, "job.result.json"))) for d in sorted(os.listdir(run_dir))
            if os.path.exists(os.path.join(run_dir, d, "job.result.json"))]


def check_hello(workdir, recs, runtime):
    text = (workdir / "hello" / "hello.txt").read_text()
    assert text == f"Hello physicist, from Linux in {workdir / 'hello'}\n"
    assert [r["runtime"]["name"] for r in recs] == [runtime]
    assert recs[0]["image"]["reference"] == "docker.io/library/busybox:latest"


def check_chain(workdir, recs, runtime):
    summary = json.loads((workdir / "summarise" / "summary.json").read_text())
    assert summary == {"count": 100, "sum": 5050, "mean": 50.5, "label": "chain-example"}  # env: block honoured
    assert sorted(r["labels"]["step"] for r in recs) == ["generate", "summarise"]
    assert {r["runtime"]["name"] for r in recs} == {runtime}


def check_scatter(workdir, recs, runtime):
    lines = (workdir / "merge" / "table.csv").read_text().splitlines()
    assert lines[0] == "particle,seed,mean_loss" and len(lines) == 13
    assert [line.split(",")[1] for line in lines[1:]] == [str(i) for i in range(1, 13)]
    assert all(1.8 < float(line.split(",")[2]) < 2.2 for line in lines[1:])  # exponential with mean 2
    assert len(recs) == 13 and {r["runtime"]["name"] for r in recs} == {runtime}


CHECKS = {"hello": check_hello, "chain": check_chain, "scatter": check_scatter}


@pytest.mark.parametrize("example", CHECKS)
@pytest.mark.parametrize("runtime", ["podman", "charliecloud"])
def test_examples_through_the_local_scheduler(tmp_path, image_roots, example, runtime):
    run_dir = tmp_path / "run"
    run = yadage_run(tmp_path / "work", example, image_roots, [f"runtime={runtime}", f"run_dir={run_dir}"])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    CHECKS[example](tmp_path / "work", records(run_dir), runtime)


@pytest.mark.parametrize("example", CHECKS)
@pytest.mark.parametrize("transfer,runtime", [("htcondor", "apptainer"), ("chirp", "apptainer"),
                                              ("chirp", "charliecloud")])
def test_examples_on_the_htcondor_pool(tmp_path, image_roots, pool, example, transfer, runtime):
    run_dir = tmp_path / "run"
    run = yadage_run(tmp_path / "work", example, image_roots,
                     ["scheduler=htcondor", f"transfer={transfer}", f"runtime={runtime}", f"run_dir={run_dir}"])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recs = records(run_dir)
    CHECKS[example](tmp_path / "work", recs, runtime)
    method = "chirp (parrot)" if transfer == "chirp" else "htcondor"
    assert {r["stage_in"]["method"] for r in recs} == {method}  # /tmp: the workers cannot see it


@pytest.mark.parametrize("example", CHECKS)
@pytest.mark.parametrize("runtime", ["apptainer", "charliecloud"])
def test_examples_on_the_slurm_cluster(tmp_path, image_roots, slurm, example, runtime):
    run_dir = tmp_path / "run"  # pytest's /tmp, which the Slurm node shares
    run = yadage_run(tmp_path / "work", example, image_roots,
                     ["scheduler=slurm", f"runtime={runtime}", f"run_dir={run_dir}"])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recs = records(run_dir)
    CHECKS[example](tmp_path / "work", recs, runtime)
    assert {r["host"] for r in recs} == {os.uname().nodename} and {r["stage_in"]["method"] for r in recs} == {"shared"}
    if example == "scatter":  # the twelve in a few sbatch calls (yadage hands them over one by one as it
        # polls, so a batch may close between two of them: seen once as 3 + 9), then the merge
        arrays = sorted(len(open(run_dir / name).read().splitlines()) for name in os.listdir(run_dir)
                        if name.startswith("array-") and name.endswith(".dirs"))
        assert sum(arrays) == 13 and len(arrays) <= 4, arrays


def test_the_report_and_trace_options_of_the_backend(tmp_path, image_roots):
    from scailfin_exec.report.trace import read_trace

    report, trace = tmp_path / "scatter.html", tmp_path / "scatter.tsv"
    run = yadage_run(tmp_path / "work", "scatter", image_roots,
                     ["runtime=charliecloud", f"run_dir={tmp_path / 'run'}", f"report={report}", f"trace={trace}"])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = read_trace(str(trace))
    assert len(rows) == 13 and {r["state"] for r in rows} == {"done"} and {r["runtime"].split()[0] for r in rows} == \
        {"charliecloud"}
    assert "Bokeh" in report.read_text() and "scailfin-exec: 13 done, 0 failed" in run.stderr


def test_the_fromenv_route_as_reana_uses_it(tmp_path, image_roots):
    env = dict(os.environ, PACKTIVITY_ASYNCBACKEND="scailfin_exec.yadage:Backend:Proxy")
    run_dir = tmp_path / "run"
    run = yadage_run(tmp_path / "work", "chain", image_roots, ["runtime=charliecloud", f"run_dir={run_dir}"],
                     backend="fromenv", env=env)
    assert run.returncode == 0, run.stdout[-3000:]
    check_chain(tmp_path / "work", records(run_dir), "charliecloud")


def test_from_python_through_yadages_steering_api(tmp_path, image_roots):
    run_dir = tmp_path / "run"
    code = f"""
from yadage.steering_api import run_workflow
from yadage.utils import setupbackend_fromstring
backend = setupbackend_fromstring("py:scailfin_exec.yadage:Backend", dict(
    runtime=["charliecloud"], image_roots={image_roots!r}, pull=False, run_dir={str(run_dir)!r}))
run_workflow({str(tmp_path / 'work')!r}, "workflow.yml", initdata={{"name": "physicist"}},
             toplevel={os.path.join(EXAMPLES, 'hello')!r}, backend=backend, visualize=False)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    check_hello(tmp_path / "work", records(run_dir), "charliecloud")


def test_a_failing_step_fails_the_run_and_says_why(tmp_path, image_roots):
    run = yadage_run(tmp_path / "work", "failing", image_roots, ["runtime=charliecloud"],
                     toplevel=os.path.join(REPO, "tests", "yadage", "data", "failing"))
    assert run.returncode != 0
    log = run.stdout + run.stderr
    line = next(line for line in log.splitlines() if "step breaks" in line and "failed" in line)
    assert "exit code 7" in line and "charliecloud" in line and os.uname().nodename in line
    assert "cannot find the calibration file" in log and "giving up" in log  # the tail of its stderr


def test_an_interrupted_run_resumes_without_resubmitting_finished_steps(tmp_path, image_roots):
    workdir, run_dir, state = tmp_path / "work", tmp_path / "run", tmp_path / "state.json"
    slow = tmp_path / "slow"
    os.makedirs(slow)
    text = open(os.path.join(EXAMPLES, "chain", "workflow.yml")).read()
    (slow / "workflow.yml").write_text(text.replace("import json, os, statistics", "import json, os, statistics, time; time.sleep(20)"))
    (slow / "input.yml").write_text("count: 100\n")
    env = dict(os.environ, PACKTIVITY_ASYNCBACKEND="scailfin_exec.yadage:Backend:Proxy")
    first = subprocess.Popen([YADAGE_RUN, "-t", str(slow), "-b", "fromenv", "-s", f"filebacked:{state}",
                              "-k", f"image_roots=[{os.pathsep.join(image_roots)}]", "-k", "pull=false",
                              "-k", "runtime=charliecloud", "-k", f"run_dir={run_dir}",
                              str(workdir), "workflow.yml", str(slow / "input.yml")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run_dir.is_dir() and any(d.startswith("summarise")
                                                                         for d in os.listdir(run_dir))):
        time.sleep(0.1)
    time.sleep(1)
    first.send_signal(signal.SIGINT)  # stage one done, stage two running
    output = first.communicate(timeout=120)[0]
    assert first.returncode != 0, output[-4000:]
    assert (workdir / "generate" / "numbers.txt").exists() and not (workdir / "summarise" / "summary.json").exists()
    resume = f"""
import os
from yadage.steering_object import YadageSteering
from yadage.utils import setupbackend_fromstring
steering = YadageSteering.connect({str(workdir / '_yadage')!r}, "frommodel", modelsetup="filebacked:{state}",
                                  accept_metadir=True)
backend = setupbackend_fromstring("fromenv", {{"image_roots": [{image_roots[0]!r}], "pull": False,
                                               "runtime": ["charliecloud"], "run_dir": {str(run_dir)!r}}})
steering.run_adage(backend, default_trackers=False)
"""
    second = subprocess.run([sys.executable, "-c", resume], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert json.loads((workdir / "summarise" / "summary.json").read_text())["sum"] == 5050
    submitted = sorted(d.rsplit("-", 2)[0] for d in os.listdir(run_dir) if os.path.isdir(run_dir / d))
    assert submitted.count("generate") == 1  # the finished stage was not run again
    assert submitted.count("summarise") == 2  # the interrupted one was


@pytest.mark.parametrize("runtime", ["podman", "charliecloud"])
def test_earlier_stages_are_mounted_read_only(tmp_path, image_roots, runtime):
    # packtivity's own docker path mounts them read-write; here they are read-only on every runtime
    run = yadage_run(tmp_path / "work", "readonly", image_roots, [f"runtime={runtime}"],
                     toplevel=os.path.join(REPO, "tests", "yadage", "data", "readonly"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "work" / "second" / "report.txt").read_text() == "original\nread-only\n"
    assert (tmp_path / "work" / "first" / "data.txt").read_text() == "original\n"


def test_cvmfs_is_bound_when_the_worker_has_it(tmp_path, image_roots, pool):
    run = yadage_run(tmp_path / "work", "cvmfs", image_roots, ["scheduler=htcondor", "transfer=htcondor",
                                                               "runtime=apptainer"],
                     toplevel=os.path.join(REPO, "tests", "yadage", "data", "cvmfs"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert "alpine:latest" in (tmp_path / "work" / "look" / "listing.txt").read_text().split()


def test_cvmfs_missing_on_the_worker_is_a_clear_failure(tmp_path, image_roots):
    assert not os.path.exists("/cvmfs")  # this host is a worker without CVMFS
    run = yadage_run(tmp_path / "work", "cvmfs", image_roots, ["runtime=charliecloud"],
                     toplevel=os.path.join(REPO, "tests", "yadage", "data", "cvmfs"))
    assert run.returncode != 0
    assert "this step needs /cvmfs from the worker, which has none" in run.stdout + run.stderr


def trace_states(run_dir):
    return {row["name"]: row["state"] for row in read_trace(os.path.join(run_dir, "trace.tsv"))}


@pytest.mark.parametrize("scheduler", ["local", "htcondor"])
def test_yadages_checksum_cache_takes_every_step_the_second_time_and_submits_no_job(tmp_path, image_roots, scheduler,
                                                                                    request):
    if scheduler == "htcondor":
        request.getfixturevalue("pool")
    where = ["runtime=apptainer", "scheduler=htcondor", "transfer=htcondor"] if scheduler == "htcondor" \
        else ["runtime=podman"]
    workdir = tmp_path / "work"
    first = yadage_run(workdir, "chain", image_roots, [*where, f"run_dir={tmp_path / 'run1'}"], flags=["-c", "checksums"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert trace_states(tmp_path / "run1") == {"generate": "done", "summarise": "done"}
    summary = (workdir / "summarise" / "summary.json").read_text()
    again = yadage_run(workdir, "chain", image_roots, [*where, f"run_dir={tmp_path / 'run2'}"], flags=["-c", "checksums"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert trace_states(tmp_path / "run2") == {"generate": "cached", "summarise": "cached"}
    assert job_records(str(tmp_path / "run2")) == {} and not list((tmp_path / "run2").glob("*/job.json"))  # no job
    assert "0 done, 2 cached, 0 failed" in again.stderr
    assert (workdir / "summarise" / "summary.json").read_text() == summary


def test_with_yadages_checksum_cache_a_changed_input_reruns_only_the_steps_that_depend_on_it(tmp_path, image_roots):
    toplevel = tmp_path / "two-branches"
    shutil.copytree(os.path.join(REPO, "tests", "yadage", "data", "two-branches"), toplevel)
    workdir = tmp_path / "work"

    def run(n):
        done = yadage_run(workdir, None, image_roots, ["runtime=podman", f"run_dir={tmp_path / f'run{n}'}"],
                          toplevel=str(toplevel), flags=["-c", "checksums"])
        assert done.returncode == 0, done.stderr[-3000:]
        return trace_states(tmp_path / f"run{n}"), (workdir / "join" / "joined.txt").read_text()

    assert run(1) == ({"left": "done", "right": "done", "join": "done"}, "left 1\nright 2\n")
    (toplevel / "input.yml").write_text("a: 1\nb: 3\n")
    assert run(2) == ({"left": "cached", "right": "done", "join": "done"}, "left 1\nright 3\n")
    assert run(3) == ({"left": "cached", "right": "cached", "join": "cached"}, "left 1\nright 3\n")
