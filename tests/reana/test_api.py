# `scailfin-exec serve` as REANA's engines see it: through their own client
# (JobControllerAPIClient, which validates every answer against the specification) and plain
# HTTP, with real steps in real containers (local scheduler, Charliecloud; the pool, Apptainer).
import base64
import json
import os
import time
import uuid

import jsonschema
import pytest
import requests

from ..conftest import jobs_in_queue
from ..test_credentials import holding, password
from ..test_pinning import AUTH_FILE, PRIVATE, push
from .conftest import workspace


def cmd(text):
    return base64.b64encode(text.encode()).decode()


def request(ws, command, **fields):
    body = {"docker_img": "docker.io/library/alpine", "job_name": "step", "workflow_uuid": os.path.basename(ws),
            "workflow_workspace": ws, "cmd": cmd(command), "env_vars": {}, "cvmfs_mounts": "false"}
    body.update(fields)
    return body


def client_request(ws, command, **fields):
    """The same, as keyword arguments of JobControllerAPIClient.submit."""
    body = request(ws, command)
    body["image"] = body.pop("docker_img")
    body["cmd"] = command
    body.update(fields)
    del body["env_vars"]
    return body


def check(spec, path, method, status, body):
    """An answer against the specification's schema for it (with its definitions)."""
    schema = spec["paths"][path][method]["responses"][str(status)].get("schema")
    assert schema is not None, f"the specification has no schema for {method} {path} {status}"
    jsonschema.validate(body, dict(schema, definitions=spec["definitions"]))


def test_every_answer_has_the_shape_the_specification_gives(serve, spec):
    service = serve("--runtime", "charliecloud")
    ws = workspace(service.root)
    listed = service.get("/jobs")
    check(spec, "/jobs", "get", 200, listed.json())
    created = service.post("/jobs", json=request(ws, "echo hello > hello.txt"))
    assert created.status_code == 201
    check(spec, "/jobs", "post", 201, created.json())
    job_id = created.json()["job_id"]
    first = service.get(f"/jobs/{job_id}").json()
    check(spec, "/jobs/{job_id}", "get", 200, first)
    assert first["status"] in ("queued", "running", "finished")
    final = service.wait(job_id)
    check(spec, "/jobs/{job_id}", "get", 200, final)
    assert final["status"] == "finished" and final["cmd"] == cmd("echo hello > hello.txt")
    assert open(os.path.join(ws, "hello.txt")).read() == "hello\n"
    check(spec, "/jobs", "get", 200, service.get("/jobs").json())
    assert service.get("/job_cache", params={"job_spec": "{}", "workflow_json": "{}",
                                             "workflow_workspace": ws}).json() == {"cached": False, "result_path": None}
    assert service.get(f"/jobs/{job_id}/logs").headers["Content-Type"].startswith("text/plain")
    stopped = service.delete("/shutdown")
    check(spec, "/shutdown", "delete", 200, stopped.json())
    refused = service.post("/jobs", json=request(ws, "true"))
    assert refused.status_code == 403
    check(spec, "/jobs", "post", 403, refused.json())
    missing = service.get("/jobs/no-such-job")
    assert missing.status_code == 404 and "does not exist" in missing.json()["message"]
    assert service.delete("/jobs/no-such-job/").status_code == 404


def test_a_failing_command_is_failed_and_its_logs_hold_its_stderr_and_why(serve, reana_client):
    service = serve("--runtime", "charliecloud")
    ws = workspace(service.root)
    job_id = reana_client("submit", json.dumps(client_request(ws, "echo about to fail >&2; exit 3")))["job_id"]
    job = reana_client("wait", job_id, "120")
    assert job["status"] == "failed"
    logs = reana_client("logs", job_id)["logs"]
    assert "about to fail" in logs
    assert "exit code 3 (charliecloud" in logs and f"on {os.uname().nodename}" in logs
    assert f"{job_id} (step) failed: exit code 3 (charliecloud" in service.log()  # the service's own log says it too


def test_a_missing_image_fails_with_the_image_named(serve, reana_client):
    service = serve("--runtime", "charliecloud")
    ws = workspace(service.root)
    job_id = reana_client("submit", json.dumps(client_request(ws, "true", image="docker.io/library/not-here:1.0")))
    job = reana_client("wait", job_id["job_id"], "120")
    assert job["status"] == "failed"
    logs = reana_client("logs", job_id["job_id"])["logs"]
    assert "not-here" in logs and "failed:" in logs


def test_a_private_image_is_pulled_with_the_services_own_login_and_the_password_is_in_none_of_its_files(
        serve, tmp_path, image_roots):
    """serve takes registry credentials from its own configuration (--registry-auth): a request
    has no way to bring any."""
    stand_in = os.path.join(image_roots[0], "registry.hub.docker.com", "library", "alpine:latest")
    reference = f"{PRIVATE}/private/serve-{uuid.uuid4().hex[:8]}:v1"
    marker = uuid.uuid4().hex
    push(stand_in, reference, tmp_path, {"etc/which": marker + "\n"}, auth=True)
    service = serve("--runtime", "charliecloud", "--pull", "yes", "--registry-auth", AUTH_FILE, images=False)
    ws = workspace(service.root)
    created = service.post("/jobs", json=request(ws, "cat /etc/which > which.txt", docker_img=reference))
    assert created.status_code == 201, created.text
    final = service.wait(created.json()["job_id"])
    assert final["status"] == "finished", service.get(f"/jobs/{created.json()['job_id']}/logs").text
    assert open(os.path.join(ws, "which.txt")).read() == marker + "\n"
    found, read = holding(password(), str(tmp_path), service.root)
    # while the service runs, only its run's private copy (jobs of the workflow may pull yet)
    assert [os.path.relpath(p, service.state_dir).split(os.sep)[2:] for p in found] == \
        [[".credentials", os.path.basename(os.path.dirname(os.path.dirname(found[0]))), "registry-auth", "config.json"]] \
        and read > 3, found
    assert os.stat(found[0]).st_mode & 0o777 == 0o600
    service.stop()
    assert holding(password(), str(tmp_path), service.root)[0] == []


def test_a_step_that_outlives_its_max_runtime_fails(serve):
    service = serve("--runtime", "charliecloud")
    ws = workspace(service.root)
    job_id = service.post("/jobs", json=request(ws, "sleep 60", htcondor_max_runtime="2")).json()["job_id"]
    started = time.monotonic()
    job = service.wait(job_id, timeout=60)
    assert job["status"] == "failed" and time.monotonic() - started < 40
    assert "wall" in service.get(f"/jobs/{job_id}/logs").text.lower()


def test_env_vars_reach_the_step(serve):
    service = serve("--runtime", "charliecloud")
    ws = workspace(service.root)
    job_id = service.post("/jobs", json=request(ws, 'printf "%s" "$GREETING" > env.txt',
                                                env_vars={"GREETING": "it's a \"test\" $HOME"})).json()["job_id"]
    assert service.wait(job_id)["status"] == "finished"
    assert open(os.path.join(ws, "env.txt")).read() == "it's a \"test\" $HOME"


def test_delete_of_a_running_job_on_the_pool_stops_it_and_leaves_nothing_in_the_queue(serve, pool, reana_client):
    service = serve("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer")
    ws = workspace(service.root)
    job_id = reana_client("submit", json.dumps(client_request(ws, "sleep 300")))["job_id"]
    deadline = time.monotonic() + 120
    while service.get(f"/jobs/{job_id}").json()["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert service.get(f"/jobs/{job_id}").json()["status"] == "running"
    assert service.delete(f"/jobs/{job_id}/").status_code == 204
    assert service.wait(job_id, timeout=60)["status"] == "stopped"
    assert jobs_in_queue(pool, f'JobBatchName == "reana-{os.path.basename(ws)}"') == []


def test_a_workspace_outside_the_roots_is_refused_before_anything_runs(serve, reana_client, tmp_path):
    service = serve("--runtime", "charliecloud")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = os.path.join(service.root, "users", "link")
    os.makedirs(os.path.dirname(link))
    os.symlink(outside, link)
    for where in ("/etc", str(outside), link, service.root, os.path.join(service.root, "..", "elsewhere")):
        answer = reana_client("submit", json.dumps(client_request(where, "touch /etc/x; touch pwned")))
        assert "error" in answer and "workflow_workspace" in answer["error"], (where, answer)
    assert service.get("/jobs").json() == []
    assert not os.path.exists(outside / "pwned")


@pytest.mark.parametrize("body,expected", [
    ("{not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"docker_img": "alpine"}), "missing required field(s) job_name, workflow_uuid, workflow_workspace"),
    ("CMD", "cmd: not base64"),
    ("TYPES", "kerberos: must be true or false"),
    ("UNKNOWN", "unknown field(s) colour"),
    ("BACKEND", "compute_backend 'compute4punch'"),
    ("KERBEROS", "kerberos: this service cannot provide Kerberos credentials"),
    ("REQUIREMENTS", "htcondor_requirements: 'true) || (true' is not a ClassAd expression"),
    ("FLAVOUR", "htcondor_max_runtime: 'fortnight'"),
    ("BIG", "larger than 1048576 bytes"),
])
def test_a_malformed_request_gets_400_with_a_message_and_the_service_keeps_serving(serve, body, expected):
    service = serve("--runtime", "charliecloud")
    ws = workspace(service.root)
    bodies = {
        "CMD": json.dumps(dict(request(ws, "x"), cmd="not base64!")),
        "TYPES": json.dumps(dict(request(ws, "x"), kerberos="yes")),
        "UNKNOWN": json.dumps(dict(request(ws, "x"), colour="blue")),
        "BACKEND": json.dumps(dict(request(ws, "x"), compute_backend="compute4punch")),
        "KERBEROS": json.dumps(dict(request(ws, "x"), kerberos=True)),
        "REQUIREMENTS": json.dumps(dict(request(ws, "x"), compute_backend="htcondorcern",
                                        htcondor_requirements="true) || (true")),
        "FLAVOUR": json.dumps(dict(request(ws, "x"), htcondor_max_runtime="fortnight")),
        "BIG": json.dumps(dict(request(ws, "x"), cmd=cmd("#" * 1024 * 1024))),
    }
    answer = service.post("/jobs", data=bodies.get(body, body), headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert expected in answer.json()["message"]
    assert service.get("/jobs").json() == []
    assert service.get("/jobs").status_code == 200


def test_another_address_than_loopback_needs_a_token(serve, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-0123456789\n")
    token_file.chmod(0o644)
    with pytest.raises(AssertionError, match="readable by others"):
        serve("--token-file", token_file, listen="192.0.2.1:5001")
    with pytest.raises(AssertionError, match="needs --token-file"):
        serve(listen="192.0.2.1:5001", state="state2")
    token_file.chmod(0o600)
    service = serve("--token-file", token_file, listen="192.0.2.1:5001", state="state3",
                    token="s3cret-token-0123456789")
    url = service.url + "/jobs"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    refused = requests.post(url, json={"docker_img": "alpine"}, timeout=10)
    assert refused.status_code == 401 and "token" in refused.json()["message"]
    assert requests.get(url, headers={"Authorization": "Bearer s3cret-token-0123456789"}, timeout=10).json() == []
    assert requests.get(url, params={"access_token": "s3cret-token-0123456789"}, timeout=10).status_code == 200


def test_an_unpacked_image_and_cvmfs_come_from_the_workers_cvmfs_on_the_pool(serve, reana_client):
    # no image roots given to the service: only the worker's /cvmfs/unpacked.cern.ch has the image
    service = serve("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer", images=False)
    ws = workspace(service.root)
    job_id = reana_client("submit", json.dumps(client_request(
        ws, "ls /cvmfs/unpacked.cern.ch/registry.hub.docker.com/library > listing.txt", unpacked_img=True,
        cvmfs_mounts="true", htcondor_max_runtime="espresso")))["job_id"]
    job = reana_client("wait", job_id, "180")
    assert job["status"] == "finished", service.get(f"/jobs/{job_id}/logs").text
    assert "alpine:latest" in open(os.path.join(ws, "listing.txt")).read().split()
    assert "/cvmfs/unpacked.cern.ch/registry.hub.docker.com/library/alpine:latest" in \
        service.get(f"/jobs/{job_id}/logs").text + open(_record(service, job_id)).read()


def _record(service, job_id):
    runs = os.path.join(service.state_dir, "runs")
    return next(os.path.join(runs, d, job_id, "job.result.json") for d in os.listdir(runs)
                if os.path.exists(os.path.join(runs, d, job_id, "job.result.json")))
