# The Docker runtime against a real engine (the test site's dockerd, tests/site/docker): a step
# from an unpacked tree (imported into the engine once) runs as the user, not as root; a registry
# image is pulled by the digest the run pinned its tag to; a private one with the user's login,
# handed to `docker pull` through --config and never seen in the run; a stopped step leaves no
# container behind.
import os
import signal
import subprocess
import sys
import uuid

from scailfin_exec import Run, Settings
from scailfin_exec.job import Bind, ImageSources, Job, write_job

from ..conftest import run_shim, wait_for
from ..test_credentials import holding, password
from ..test_pinning import AUTH_FILE, PRIVATE, REGISTRY, push


def stand_in(image_roots):
    return os.path.join(image_roots[0], "registry.hub.docker.com", "library", "alpine:latest")


def containers(name_part):
    out = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return [n for n in out.stdout.split() if name_part in n]


def test_a_step_from_an_unpacked_tree_runs_in_the_engine_as_the_user(docker_engine, image_roots, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = Settings(runtime=["docker"], pull=False, image_roots=image_roots, run_dir=str(tmp_path / "run"))
    with Run(settings, name="docker-tree") as run:
        result = run.run(run.job("tree-1", "docker.io/library/alpine", ["sh", "-c", "id -u > uid.txt"], str(ws)))
    assert result.ok, f"{result.describe()}\n{result.stderr_tail()}"
    assert result.record.runtime.name == "docker" and result.record.runtime.version.startswith("20.10")
    assert (ws / "uid.txt").read_text() == f"{os.getuid()}\n"
    assert (ws / "uid.txt").stat().st_uid == os.getuid()


def test_read_only_binds_with_commas_and_values_with_commas_arrive_as_given(docker_engine, shim, make_job, tmp_path,
                                                                            workspace):
    data = tmp_path / "in,put"
    data.write_text("given\n")
    job = make_job(runtime=["docker"], binds=[Bind(str(data), "/in/host,name", False)], env={"GREETING": "a,b c"},
                   argv=["sh", "-c", 'cat "/in/host,name" > got.txt; echo "$GREETING" >> got.txt; '
                         'echo x 2>/dev/null > "/in/host,name" || echo read-only >> got.txt'])
    code, err, record = run_shim(shim, job)
    assert code == 0, err
    assert record["runtime"]["name"] == "docker"
    with open(workspace / "got.txt") as f:
        assert f.read() == "given\na,b c\nread-only\n"
    assert data.read_text() == "given\n"


def test_a_docker_client_without_an_engine_is_unusable_and_says_why(shim, make_job, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, err, record = run_shim(shim, make_job(runtime=["docker"]))
    assert code == 251
    assert "docker: client " in err and "no engine answers: " in err and "/nonexistent/docker.sock" in err


def test_a_registry_image_is_pulled_by_its_pinned_digest(docker_engine, image_roots, tmp_path):
    reference = f"{REGISTRY}/test/docker-{uuid.uuid4().hex[:8]}:v1"
    marker = uuid.uuid4().hex
    digest = push(stand_in(image_roots), reference, tmp_path, {"etc/which": marker + "\n"})
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = Settings(runtime=["docker"], pull=True, run_dir=str(tmp_path / "run"))
    with Run(settings, name="docker-pull") as run:
        result = run.run(run.job("pull-1", reference, ["sh", "-c", "cat /etc/which > which.txt"], str(ws)))
    assert result.ok, f"{result.describe()}\n{result.stderr_tail()}"
    assert result.image == f"{reference}@{digest}" and result.record.image.how.startswith("pulled ")
    assert (ws / "which.txt").read_text() == marker + "\n"


def test_a_private_image_is_pulled_with_the_users_login_through_config_and_the_password_stays_out(
        docker_engine, image_roots, tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_AUTH_FILE", AUTH_FILE)
    reference = f"{PRIVATE}/private/docker-{uuid.uuid4().hex[:8]}:v1"
    marker = uuid.uuid4().hex
    push(stand_in(image_roots), reference, tmp_path, {"etc/which": marker + "\n"}, auth=True)
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = Settings(runtime=["docker"], pull=True, run_dir=str(tmp_path / "run"), image_cache=str(tmp_path / "c"))
    with Run(settings, name="docker-private") as run:
        result = run.run(run.job("private-1", reference, ["sh", "-c", "cat /etc/which > which.txt"], str(ws)))
    assert result.ok, f"{result.describe()}\n{result.stderr_tail()}"
    assert (ws / "which.txt").read_text() == marker + "\n"
    assert holding(password(), str(tmp_path))[0] == []


def test_a_step_whose_shim_is_killed_leaves_no_container(docker_engine, image_roots, tmp_path, shim):
    """The keeper removes the named container a killed client leaves in the engine (keeper.py,
    "runtime"): the engine, not the client, holds the container."""
    ws = tmp_path / "ws"
    ws.mkdir()
    job = Job(id=f"killed-{uuid.uuid4().hex[:6]}", image="docker.io/library/alpine",
              argv=["sleep", "300"], workspace=str(ws), runtime=["docker"],
              images=ImageSources(image_roots, str(tmp_path / "cache"), False))
    job_file = tmp_path / "job.json"
    write_job(job, str(job_file))
    proc = subprocess.Popen([sys.executable, shim, str(job_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert wait_for(lambda: containers(job.id), seconds=120), "no container named after the job " + (
            proc.stderr.read1().decode() if proc.poll() is not None else "(the shim runs)")
        os.kill(proc.pid, signal.SIGKILL)  # the shim alone: its keeper is told by the kernel
        proc.wait(timeout=60)
        assert wait_for(lambda: not containers(job.id), seconds=60), containers(job.id)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
