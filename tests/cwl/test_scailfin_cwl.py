# scailfin-cwl beyond the examples: cwltool's exit codes with messages naming the step, the
# runtime and the host; parallelism sized on the scheduler; GPUs requested from the worker;
# steps without a container; the embedding API.
import json
import os
import signal
import subprocess
import sys
import time

from ..conftest import REPO, result_records

DATA = os.path.join(REPO, "tests", "cwl", "data")


def data(name):
    return os.path.join(DATA, name)


def test_failing_step_exits_1_naming_step_runtime_and_host(scailfin_cwl):
    run = scailfin_cwl("--runtime", "charliecloud", data("failing-step.cwl"))
    assert run.returncode == 1
    host = os.uname().nodename
    assert f"[job failing-step.cwl] charliecloud 0.31 on {host} ran docker.io/library/alpine:latest: exit 1" in run.stderr
    assert "about to fail" in run.stderr  # the tail of the step's stderr
    assert "Final process status is permanentFail" in run.stderr


def test_missing_image_exits_1_naming_step_runtime_and_host(scailfin_cwl):
    run = scailfin_cwl("--runtime", "podman", data("missing-image.cwl"))
    assert run.returncode == 1
    line = next(line for line in run.stderr.splitlines() if "no-such-image" in line and "not found" in line)
    assert "[job missing-image.cwl]" in line and "podman" in line and os.uname().nodename in line
    assert "pulling is disabled" in line


def test_unsupported_requirement_exits_33(scailfin_cwl):
    run = scailfin_cwl("--runtime", "podman", data("dockerfile-only.cwl"))
    assert run.returncode == 33
    assert "DockerRequirement with only dockerFile" in run.stderr and "[job dockerfile-only.cwl]" in run.stderr


def test_a_failed_run_that_submitted_no_job_leaves_no_temporary_run_directory(image_roots, tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    run = subprocess.run([exe, "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--runtime", "podman",
                          data("dockerfile-only.cwl")], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env=dict(os.environ, TMPDIR=str(temporary)))
    assert run.returncode == 33, run.stderr
    assert [d for d in os.listdir(temporary) if d.startswith("scailfin-run-")] == []


def test_a_run_leaves_none_of_its_staging_or_temporary_directories_behind(scailfin_cwl, tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    example = os.path.join(REPO, "cwl_examples", "wordcount")
    run = scailfin_cwl("--runtime", "charliecloud", "--outdir", tmp_path / "out", os.path.join(example, "wordcount.cwl"),
                       os.path.join(example, "wordcount-job.yml"), env=dict(os.environ, TMPDIR=str(temporary)))
    assert run.returncode == 0, run.stderr
    assert os.listdir(tmp_path / "out")
    assert sorted(os.listdir(temporary)) == []


def test_bad_scailfin_option_exits_2(scailfin_cwl):
    run = scailfin_cwl("--runtime", "dockr", data("failing-step.cwl"))
    assert run.returncode == 2 and "runtime: unknown runtime 'dockr'" in run.stderr


def test_parallel_follows_the_schedulers_capacity_not_this_hosts_cores(scailfin_cwl, tmp_path):
    assert os.cpu_count() < 6
    run = scailfin_cwl("--runtime", "charliecloud", "--parallel", "--max-parallel", "6", "--outdir", tmp_path / "out",
                       data("sleepy-scatter.cwl"), data("sleepy-scatter-job.json"))
    assert run.returncode == 0, run.stderr
    spans = [tuple(map(float, open(f["path"]).read().split())) for f in run.output["spans"]]
    assert len(spans) == 8
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert most == 6  # more than this host's cores, and no more than the scheduler's capacity


def test_without_parallel_steps_run_one_at_a_time(scailfin_cwl, tmp_path):
    job = tmp_path / "three.json"
    job.write_text(json.dumps({"ids": [1, 2, 3]}))
    run = scailfin_cwl("--runtime", "charliecloud", "--max-parallel", "6", "--outdir", tmp_path / "out",
                       data("sleepy-scatter.cwl"), job)
    assert run.returncode == 0, run.stderr
    spans = [tuple(map(float, open(f["path"]).read().split())) for f in run.output["spans"]]
    assert len(spans) == 3 and max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans) == 1


def test_a_run_directory_an_earlier_run_used_can_be_used_again_and_keeps_both_runs(scailfin_cwl, tmp_path):
    job = tmp_path / "one.json"
    job.write_text(json.dumps({"ids": [1]}))
    run_dir = tmp_path / "kept"
    runs = [scailfin_cwl("--runtime", "charliecloud", "--run-dir", run_dir, "--outdir", tmp_path / f"out{i}",
                         data("sleepy-scatter.cwl"), job) for i in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    records = [json.load(open(run_dir / d / "job.result.json")) for d in sorted(os.listdir(run_dir))
               if (run_dir / d / "job.result.json").exists()]
    assert len(records) == 2 and [r["exit_code"] for r in records] == [0, 0]


def test_cuda_requirement_becomes_a_gpu_request_and_no_nvidia_smi_runs_here_recorded_argv(scailfin_cwl, stand_ins, tmp_path):
    stand_ins.install("apptainer", "nvidia-smi")
    sif_root = tmp_path / "sifs" / "registry.hub.docker.com" / "library"
    sif_root.mkdir(parents=True)
    (sif_root / "alpine:latest.sif").write_text("sif")
    run = scailfin_cwl("--runtime", "apptainer", "--image-roots", tmp_path / "sifs", data("gpu-step.cwl"),
                       env=stand_ins.env(base_path=os.environ["PATH"]))
    assert run.returncode == 0, run.stderr
    assert stand_ins.calls("nvidia-smi") == []
    [run_call] = [c for c in stand_ins.calls("apptainer") if c["argv"][1] != "--version"]
    assert "--nv" in run_call["argv"] and run_call["argv"][1] == "run"
    [record] = result_records(run.stderr)
    job = json.load(open(os.path.join(os.path.dirname(_record_path(run.stderr)), "job.json")))
    assert job["resources"]["gpus"] == 1 and record["runtime"]["name"] == "apptainer"


def _record_path(stderr):
    line = next(line for line in stderr.splitlines() if "result records and step logs are in" in line)
    run_dir = line.rsplit(" ", 1)[-1]
    return os.path.join(run_dir, sorted(os.listdir(run_dir))[0], "job.result.json")


def test_steps_without_a_container_run_here_unless_a_default_container_is_given(scailfin_cwl, tmp_path):
    here = scailfin_cwl("--runtime", "podman", "--outdir", tmp_path / "a", data("no-container.cwl"))
    assert here.returncode == 0, here.stderr
    assert (tmp_path / "a" / "where.txt").read_text() == open("/etc/debian_version").read()
    assert "result records and step logs are in" not in here.stderr  # nothing went through the scheduler
    there = scailfin_cwl("--runtime", "podman", "--default-container", "docker.io/library/alpine",
                         "--outdir", tmp_path / "b", data("no-container.cwl"))
    assert there.returncode == 0, there.stderr
    assert (tmp_path / "b" / "where.txt").read_text() == "not-debian\n"  # alpine's stand-in is busybox
    [record] = result_records(there.stderr)
    assert record["image"]["reference"] == "docker.io/library/alpine:latest"


def test_embedding_api_for_engines_that_call_cwltool_main(tmp_path, image_roots):
    code = f"""
import sys
import time
import cwltool.main
from cwltool.context import LoadingContext
import scailfin_exec.cwl
sys.exit(cwltool.main.main(["--outdir", {str(tmp_path / 'out')!r},
                            {os.path.join(REPO, 'cwl_examples', 'wordcount', 'wordcount.cwl')!r},
                            {os.path.join(REPO, 'cwl_examples', 'wordcount', 'wordcount-job.yml')!r}],
                           loadingContext=LoadingContext({{"construct_tool_object": scailfin_exec.cwl.make_tool}})))
"""
    env = dict(os.environ, SCAILFIN_RUNTIME="charliecloud", SCAILFIN_IMAGE_ROOTS=os.pathsep.join(image_roots),
               SCAILFIN_PULL="no", SCAILFIN_RUN_DIR=str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "count.txt").read_text().strip() == "18"
    steps = sorted(d for d in os.listdir(tmp_path / "run") if os.path.isdir(tmp_path / "run" / d))
    assert [s.rsplit("-", 1)[0] for s in steps] == ["count_words", "split_words"]
    trace = (tmp_path / "run" / "trace.tsv").read_text().splitlines()  # the engine's run is traced too
    assert len(trace) == 3 and all("\tdone\t" in row for row in trace[1:])
    record = json.load(open(tmp_path / "run" / [s for s in steps if s.startswith("split")][0] / "job.result.json"))
    assert record["runtime"]["name"] == "charliecloud"


def _children(pid):
    found = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry)] = open(f"/proc/{entry}/cmdline").read().split("\0")
        except (ValueError, OSError):
            continue
    return found


def _gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_a_killed_scailfin_cwl_leaves_no_waiting_process_behind(image_roots, tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    proc = subprocess.Popen([exe, "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--runtime",
                             "charliecloud", data("slow-writer.cwl")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    waiter = shim = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            children = _children(proc.pid)
            waiters = [pid for pid, argv in children.items() if argv[:2] == ["/bin/sh", "-c"]]
            shims = [pid for pid, argv in children.items() if pid not in waiters]
            if waiters and shims:
                break
            time.sleep(0.1)
        [waiter], [shim] = waiters, shims
        proc.kill()  # no chance to clean up
        proc.wait()
        assert _gone(waiter, 5), "the step's waiter outlived scailfin-cwl"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if waiter is not None and not _gone(waiter, 0):
            os.kill(waiter, signal.SIGKILL)
        if shim is not None and not _gone(shim, 30):  # the step itself ends on its own (8 s)
            os.killpg(shim, signal.SIGKILL)
