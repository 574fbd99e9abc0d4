# `scailfin-exec`: doctor reports the node (and the site's Slurm cluster), run-job replays a job
# description (and stops it on SIGTERM or Ctrl-C), shim ships the zipapp.
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scailfin_exec.job import ImageSources, Job, write_job

EXE = os.path.join(os.path.dirname(sys.executable), "scailfin-exec")


def run(*args, env=None):
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env)


def test_doctor_reports_each_runtime_with_a_version_or_a_reason():
    out = run("doctor")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert any(line.startswith("runtime charliecloud: found 0.") for line in lines)
    assert any(line.startswith("runtime podman: found 4.") for line in lines)
    assert "runtime apptainer: apptainer not on PATH" in lines
    assert "runtime sarus: sarus not on PATH" in lines
    [usable] = [line for line in lines if line.startswith("usable runtimes: ")]
    assert "charliecloud" in usable


def test_doctor_fails_when_no_runtime_is_usable():
    out = run("doctor", env={"PATH": "/nonexistent", "HOME": os.environ["HOME"]})
    assert out.returncode == 1 and "usable runtimes: none" in out.stdout.splitlines()
    assert "scheduler slurm: unusable: the slurm scheduler needs Slurm's sbatch on PATH (not found in /nonexistent)" \
        in out.stdout.splitlines()


def test_doctor_names_the_registries_the_users_login_file_has_credentials_for_and_no_secret():
    auth = os.path.join(os.environ.get("SCAILFIN_CACHE", "/var/cache/scailfin-exec"), "site", "registry", "auth.json")
    with open(auth) as f:
        secret = json.load(f)["auths"]["127.0.0.1:5002"]["auth"]
    out = run("doctor", env=dict(os.environ, REGISTRY_AUTH_FILE=auth))
    assert f"registry credentials: {auth} has 127.0.0.1:5002" in out.stdout.splitlines()
    assert secret not in out.stdout + out.stderr
    nowhere = run("doctor", env=dict(os.environ, REGISTRY_AUTH_FILE="/nonexistent/auth.json", HOME="/nonexistent",
                                     XDG_RUNTIME_DIR="/nonexistent"))
    assert any(line.startswith("registry credentials: none (no login file in /nonexistent/auth.json")
               for line in nowhere.stdout.splitlines())


def test_doctor_says_sbatch_works_and_which_partitions_it_sees(slurm):
    lines = run("doctor").stdout.splitlines()
    assert any(line.startswith("scheduler slurm: ") and "(slurm-wlm 26." in line and "slurmctld answers" in line
               for line in lines)
    [works] = [line for line in lines if line.startswith("scheduler slurm: sbatch ")]
    assert works.startswith("scheduler slurm: sbatch works here: sbatch: Job ") and "partition debug" in works
    assert "scheduler slurm: partition debug (up, 1 node(s), " in "\n".join(lines) and "[default]" in lines[-1]


def test_run_job_replays_a_job_and_exits_with_its_code(tmp_path, workspace, image_roots):
    job = Job(id="replay", image="alpine", argv=["sh", "-c", "echo replayed > r.txt; echo shown; exit 3"],
              workspace=str(workspace), runtime=["podman"], images=ImageSources(image_roots, None, False))
    path = tmp_path / "job.json"
    write_job(job, str(path))
    out = run("run-job", str(path), "--runtime", "charliecloud", "--run-dir", str(tmp_path / "run"))
    assert out.returncode == 3
    assert out.stdout == "shown\n" and (workspace / "r.txt").read_text() == "replayed\n"
    assert "scailfin-exec: job replay: exit 3 (charliecloud" in out.stderr  # --runtime overrode the job's podman
    record = json.load(open(tmp_path / "run" / "replay" / "job.result.json"))
    assert record["runtime"]["name"] == "charliecloud"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_job_stopped_by_a_signal_stops_its_step_with_one_line(tmp_path, workspace, image_roots, sig):
    token = f"scailfin-run-job-step-{os.getpid()}-{sig.name}"  # in the step's shell's command line
    job = Job(id="long", image="alpine", argv=["sh", "-c", "sleep 300; :", token],
              workspace=str(workspace), runtime=["charliecloud"], images=ImageSources(image_roots, None, False))
    path = tmp_path / "job.json"
    write_job(job, str(path))
    proc = subprocess.Popen([EXE, "run-job", str(path), "--run-dir", str(tmp_path / "run")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _running(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _running(token), "the step never started"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, err
        assert f"scailfin-exec: {sig.name}: stopping job long\n" in err and "Traceback" not in err
        assert not _running(token)  # the step, its shell and its runtime are gone
    finally:
        for pid in _running(token):  # the test failed: leave nothing behind
            os.kill(int(pid), signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _running(token: str) -> list[str]:
    """The processes whose command line holds token."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_run_job_with_a_bad_job_file_says_why(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"version": 1, "id": "x", "image": "alpine", "argv": ["true"], "workspace": "rel"}))
    out = run("run-job", str(path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"scailfin-exec: error: {path}: job.workspace: must be an absolute path, got 'rel'"


def test_shim_command_writes_a_runnable_zipapp(tmp_path):
    target = tmp_path / "shim.pyz"
    out = run("shim", "--directory", str(tmp_path), "-o", str(target))
    assert out.returncode == 0 and out.stdout.strip() == str(target)
    doctor = subprocess.run(["/usr/bin/python3", str(target), "--doctor"], capture_output=True, text=True)
    assert "runtime charliecloud: found" in doctor.stdout
