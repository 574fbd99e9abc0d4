# Private images with the credentials users already keep (the login file `podman login` writes),
# through each runtime where it runs: Podman and Charliecloud through the local scheduler,
# Apptainer on the pool's nodes (HTCondor's file transfer and chirp) and on the Slurm node. Each
# job gets its registry's entry as a private file of the run (0600 in a 0700 directory), and the
# password is then nowhere: not in any file of the run, the workspace, the image cache, nor in any
# log of the pool or the Slurm cluster that the user can read.
import base64
import json
import os
import shutil
import uuid

import pytest

from scailfin_exec import Run, Settings
from scailfin_exec.credentials import Credentials, login_files

from .test_pinning import AUTH_FILE, PRIVATE, push

CACHE = os.environ.get("SCAILFIN_CACHE", "/var/cache/scailfin-exec")
SITE_ROOT = os.path.join(CACHE, "site", "rootfs")
SHARED = "/scratch/scailfin-shared"
SITE_LOGS = [os.path.join(SITE_ROOT, p) for p in ("var/log/condor", "var/spool/condor", "var/lib/condor", "var/log/slurm",
                                                  "var/spool/slurmd", "var/spool/slurmctld")]


@pytest.fixture
def stand_in(image_roots):
    return os.path.join(image_roots[0], "registry.hub.docker.com", "library", "alpine:latest")


def password():
    with open(AUTH_FILE) as f:
        auth = json.load(f)["auths"][PRIVATE]["auth"]
    return base64.b64decode(auth).decode().partition(":")[2], auth


def holding(secrets, *directories):
    """The files under directories that hold any of secrets, and how many files were read."""
    found, read = [], 0
    for directory in directories:
        for root, _, files in os.walk(directory):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue  # not the user's to read (nor, then, another user's)
                read += 1
                if any(s.encode() in data for s in secrets):
                    found.append(path)
    return found, read


@pytest.mark.parametrize("runtime,scheduler,transfer", [
    ("podman", "local", "shared"), ("charliecloud", "local", "shared"), ("apptainer", "htcondor", "htcondor"),
    ("apptainer", "htcondor", "chirp"), ("apptainer", "slurm", "shared")])
def test_a_private_image_is_pulled_with_the_users_login_and_its_password_is_nowhere_in_the_run(
        runtime, scheduler, transfer, stand_in, tmp_path, monkeypatch, request):
    if scheduler != "local":
        request.getfixturevalue("pool" if scheduler == "htcondor" else "slurm")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", AUTH_FILE)  # where the user's `podman login` put it
    marker = uuid.uuid4().hex
    reference = f"{PRIVATE}/private/cred-{uuid.uuid4().hex[:8]}:v1"
    push(stand_in, reference, tmp_path, {"etc/which": marker + "\n"}, auth=True)
    base = tmp_path if scheduler == "local" else SHARED
    work = os.path.join(base, f"cred-{uuid.uuid4().hex[:8]}")
    ws, run_dir, cache = (os.path.join(work, n) for n in ("ws", "run", "cache"))
    os.makedirs(ws)
    try:
        settings = Settings(scheduler=scheduler, transfer=transfer, runtime=[runtime], pull=True, image_cache=cache,
                            run_dir=run_dir)
        with Run(settings, name="private") as run:
            handle = run.submit(run.job("private-1", reference, ["sh", "-c", "cat /etc/which > which.txt"], ws))
            sent = os.path.join(handle.job.images.credentials, "config.json")
            assert os.stat(sent).st_mode & 0o777 == 0o600
            assert os.stat(os.path.dirname(os.path.dirname(sent))).st_mode & 0o777 == 0o700
            with open(sent) as f:
                assert list(json.load(f)["auths"]) == [PRIVATE]  # that registry's entry alone
            result = run.wait(handle, timeout=300)
        assert result.ok, f"{result.describe()}\n{result.stderr_tail()}"
        assert result.record.runtime.name == runtime and "pulled" in result.record.image.how
        with open(os.path.join(ws, "which.txt")) as f:
            assert f.read() == marker + "\n"
        assert not os.path.exists(sent)  # the run removed its copy when it ended
        found, read = holding(password(), work, *SITE_LOGS)
        assert found == [] and read > 5, (found, read)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_registry_auth_setting_is_used_and_the_usual_places_are_not(tmp_path, monkeypatch):
    own = tmp_path / "own-auth.json"
    own.write_text(json.dumps({"auths": {"lab.example.org:5000": {"auth": base64.b64encode(b"me:pw").decode()}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", AUTH_FILE)
    assert login_files()[0] == AUTH_FILE
    assert Credentials(None).registries() == [PRIVATE]
    configured = Credentials(str(own))
    assert configured.registries() == ["lab.example.org:5000"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert configured.for_image(f"{PRIVATE}/private/alpine:3.20", str(run_dir)) is None
    written = configured.for_image("lab.example.org:5000/x/y:1", str(run_dir))
    assert written == configured.for_image("lab.example.org:5000/other:2", str(run_dir))  # once per registry
    configured.remove(str(run_dir))
    assert not os.path.exists(written)


def test_docker_logins_keyed_by_url_and_helpers_are_understood(tmp_path, caplog):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"u:p").decode()},
                                            "broken.example.org": {"auth": "not base64!"}},
                                  "credsStore": "desktop"}))
    credentials = Credentials(str(config))
    assert credentials.registries() == ["docker.io"]
    assert any("credential helper" in r.getMessage() for r in caplog.records)
