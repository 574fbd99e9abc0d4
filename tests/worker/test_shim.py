# The worker shim end to end, with real containers (Charliecloud, Podman) as the test user:
# same-path workspace, stdio, preference order, and every failure with its documented exit code,
# one line saying why, and nothing in the workspace lost.
import ast
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from scailfin_exec.job import Bind, FORMAT_VERSION
from scailfin_exec.worker import shim as shim_module

from ..conftest import REPO, run_shim, snapshot


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("scailfin-shim: error:")]


def test_shim_imports_only_the_standard_library():
    stdlib = set(sys.stdlib_module_names)
    for path in pathlib.Path(REPO, "scailfin_exec", "worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] in stdlib or name.startswith("scailfin_exec.worker"), f"{path.name} imports {name}"


def test_shim_zipapp_runs_in_an_isolated_python_without_site_packages(shim):
    out = subprocess.run(["/usr/bin/python3", "-I", "-S", shim, "--doctor"], capture_output=True, text=True)
    assert "runtime charliecloud: found" in out.stdout, out.stderr


def test_workspace_is_bound_at_the_same_absolute_path(shim, make_job, workspace):
    (workspace / "in.txt").write_text("three little words")
    job = make_job(argv=["sh", "-c", "pwd > where.txt; wc -w < in.txt > count.txt; echo \"$GREETING\" > env.txt"],
                   env={"GREETING": "hello $HOME"})
    code, err, record = run_shim(shim, job)
    assert code == 0, err
    assert (workspace / "where.txt").read_text().strip() == str(workspace)
    assert (workspace / "count.txt").read_text().strip() == "3"
    assert (workspace / "env.txt").read_text() == "hello $HOME\n"  # passed verbatim, not expanded
    assert record["runtime"]["name"] == "charliecloud" and record["payload_exit_code"] == 0
    assert set(record["timings"]) >= {"stage_in", "detect_runtime", "resolve_image", "run", "stage_out", "total"}
    assert f"charliecloud {record['runtime']['version']} ran docker.io/library/alpine:latest on " in err


def test_result_record_counts_the_cpu_the_step_used_in_its_container(shim, make_job, workspace):
    code, err, idle = run_shim(shim, make_job(argv=["true"]))
    assert code == 0, err
    code, err, busy = run_shim(shim, make_job(argv=["sh", "-c", "timeout 1 sh -c 'while :; do :; done'; exit 0"]))
    assert code == 0, err
    assert busy["cpu_seconds"] >= 0.7 and idle["cpu_seconds"] < 0.5, (busy["cpu_seconds"], idle["cpu_seconds"])


def test_host_environment_does_not_leak_into_the_container(shim, make_job, workspace):
    job = make_job(argv=["sh", "-c", "env > env.txt"], env={"ONLY": "this"})
    env = dict(os.environ, LEAKY_SECRET="no")
    code, err, _ = run_shim(shim, job, env=env)
    assert code == 0, err
    seen = (workspace / "env.txt").read_text()
    assert "ONLY=this" in seen and "LEAKY_SECRET" not in seen


def test_script_is_fed_to_the_interpreter_on_stdin(shim, make_job, workspace):
    job = make_job(argv=["sh"], script="echo from-script > s.txt\nexit 0\n")
    code, err, _ = run_shim(shim, job)
    assert code == 0, err
    assert (workspace / "s.txt").read_text() == "from-script\n"


def test_stdin_stdout_stderr_files(shim, make_job, workspace):
    (workspace / "in.txt").write_text("b\na\n")
    job = make_job(argv=["sh", "-c", "sort; echo oops >&2"], stdin=str(workspace / "in.txt"),
                   stdout=str(workspace / "out.txt"), stderr=str(workspace / "err.txt"))
    code, err, _ = run_shim(shim, job)
    assert code == 0, err
    assert (workspace / "out.txt").read_text() == "a\nb\n" and (workspace / "err.txt").read_text() == "oops\n"


def test_payload_exit_code_passes_through(shim, make_job, workspace):
    (workspace / "keep.txt").write_text("precious")
    before = snapshot(workspace)
    code, err, record = run_shim(shim, make_job(argv=["sh", "-c", "exit 3"]))
    assert code == 3
    assert record["payload_exit_code"] == 3 and record["shim_error"] is None and record["exit_code"] == 3
    assert error_lines(err) == [] and snapshot(workspace) == before


def test_malformed_job_json(shim, tmp_path, workspace):
    job = tmp_path / "broken.json"
    job.write_text('{"version": 1, "id": ')
    code, err, record = run_shim(shim, job)
    assert code == shim_module.EXIT_BAD_JOB == 250
    assert len(error_lines(err)) == 1 and f"bad job file: {job}: not valid JSON" in err
    assert record["shim_error"]["kind"] == "bad-job"


def test_newer_job_format_is_refused(shim, tmp_path):
    job = tmp_path / "new.json"
    job.write_text(json.dumps({"version": FORMAT_VERSION + 1, "id": "x", "image": "alpine", "argv": ["true"],
                               "workspace": str(tmp_path)}))
    code, err, _ = run_shim(shim, job)
    assert code == 250 and "is newer than this shim understands" in err


def test_no_runtime_on_the_node_says_what_was_tried(shim, make_job, workspace):
    (workspace / "keep.txt").write_text("precious")
    before = snapshot(workspace)
    job = make_job(runtime=[])
    code, err, record = run_shim(shim, job, env={"PATH": "/nonexistent", "HOME": os.environ["HOME"]})
    assert code == shim_module.EXIT_NO_RUNTIME == 251
    [line] = error_lines(err)
    assert "no usable container runtime on" in line
    for name in ("apptainer", "singularity", "shifter", "charliecloud", "sarus", "podman", "docker"):
        assert f"{name}: " in line
    assert "apptainer: apptainer not on PATH" in line and "charliecloud: ch-run not on PATH" in line
    assert record["shim_error"]["kind"] == "no-runtime" and snapshot(workspace) == before


def test_image_not_found(shim, make_job, workspace, image_roots):
    (workspace / "keep.txt").write_text("precious")
    before = snapshot(workspace)
    code, err, record = run_shim(shim, make_job(image="docker.io/library/no-such-image:1.0"))
    assert code == shim_module.EXIT_IMAGE == 252
    [line] = error_lines(err)
    assert "image docker.io/library/no-such-image:1.0 not found for charliecloud" in line
    assert f"not in {image_roots[0]}" in line and "pulling is disabled" in line
    assert snapshot(workspace) == before


def test_bind_a_runtime_cannot_express(shim, make_job, workspace, tmp_path):
    odd = tmp_path / "with:colon"
    odd.mkdir()
    code, err, record = run_shim(shim, make_job(binds=[Bind(str(odd), str(odd), False)]))
    assert code == shim_module.EXIT_BIND == 253
    assert "charliecloud cannot bind" in err and "containing ':'" in err


def test_missing_workspace_is_a_staging_failure(shim, make_job, tmp_path):
    code, err, record = run_shim(shim, make_job(workspace=str(tmp_path / "gone")))
    assert code == shim_module.EXIT_STAGING == 254
    assert "stage-in failed: workspace" in err and "transfer: shared assumes" in err


def test_walltime_is_enforced(shim, make_job):
    started = time.monotonic()
    code, err, record = run_shim(shim, make_job(argv=["sleep", "60"], resources={"walltime_s": 1}))
    assert code == shim_module.EXIT_WALLTIME == 249
    assert "walltime of 1 s exceeded" in err and time.monotonic() - started < 30


def test_runtime_preference_job_then_worker_environment_then_command_line(shim, make_job, workspace):
    env = dict(os.environ, SCAILFIN_RUNTIME="podman")
    code, err, record = run_shim(shim, make_job(runtime=[]), env=env)
    assert code == 0, err
    assert record["runtime"]["name"] == "podman"  # the worker's SCAILFIN_RUNTIME, job says nothing
    code, err, record = run_shim(shim, make_job(runtime=["charliecloud"]), env=env)
    assert record["runtime"]["name"] == "charliecloud"  # the job's own preference wins over the worker's
    code, err, record = run_shim(shim, make_job(runtime=["charliecloud"]), "--runtime", "podman", env=env)
    assert record["runtime"]["name"] == "podman"  # the shim's command line wins over both
    assert record["detection"] == [line for line in record["detection"] if line.startswith("podman: found")]


def test_unknown_runtime_in_the_worker_environment_is_a_clear_error(shim, make_job):
    code, err, _ = run_shim(shim, make_job(runtime=[]), env=dict(os.environ, SCAILFIN_RUNTIME="dockr"))
    assert code == 250 and "SCAILFIN_RUNTIME: unknown runtime 'dockr'" in err


def test_podman_runs_the_step_with_the_workspace_at_the_same_path(shim, make_job, workspace):
    (workspace / "in.txt").write_text("podman input\n")
    job = make_job(runtime=["podman"], image="docker.io/library/debian:stable-slim",
                   argv=["python3", "-c", "import os; open('out.txt','w').write(os.getcwd() + ' ' + open('in.txt').read())"])
    code, err, record = run_shim(shim, job)
    assert code == 0, err
    assert (workspace / "out.txt").read_text() == f"{workspace} podman input\n"
    assert os.stat(workspace / "out.txt").st_uid == os.getuid()  # --userns=keep-id: files are the user's
    assert record["runtime"]["name"] == "podman" and "--network=none" in record["command"]


def _pythons():
    listed = [p for p in os.environ.get("SCAILFIN_TEST_PYTHONS", "/usr/bin/python3").split(os.pathsep) if p]
    return listed


@pytest.mark.parametrize("python", _pythons())
def test_shim_runs_a_real_step_under_the_oldest_and_newest_python(shim, make_job, workspace, python):
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    job = make_job(argv=["sh", "-c", f"echo {version} > ran-under.txt"])
    code, err, record = run_shim(shim, job, python=python)
    assert code == 0, err
    assert record["python"] == version and (workspace / "ran-under.txt").read_text().strip() == version
    code, err, record = run_shim(shim, make_job(image="no-such:1"), python=python)
    assert code == 252


def test_podman_image_lost_from_storage_is_imported_again(shim, make_job, workspace):
    env = dict(os.environ)
    job = make_job(runtime=["podman"], image="docker.io/library/busybox:latest", argv=["sh", "-c", "echo ok > b.txt"])
    code, err, record = run_shim(shim, job, env=env)
    assert code == 0, err
    code, err, record = run_shim(shim, make_job(runtime=["podman"], image="docker.io/library/busybox:latest",
                                                argv=["true"]), env=env)
    assert record["image"]["how"] == "podman storage"
    subprocess.run(["podman", "image", "rm", "--force", "docker.io/library/busybox:latest"], check=True,
                   capture_output=True)
    code, err, record = run_shim(shim, make_job(runtime=["podman"], image="docker.io/library/busybox:latest",
                                                argv=["sh", "-c", "echo again > b.txt"]), env=env)
    assert code == 0, err
    assert record["image"]["how"].startswith("imported ") and (workspace / "b.txt").read_text() == "again\n"
