# Fixtures for the REANA job controller: `scailfin-exec serve` as a real process on the address
# REANA's engines hard-code (127.0.0.1:5000, in the test site's network namespace), REANA's own
# engines and client from the environments dev/setup made (dev/reana-engines), and the demo.
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests

ENGINES = os.environ.get("SCAILFIN_REANA_ENGINES", "")
SHARED = "/scratch/scailfin-shared"  # made by tests/site/start, the test user's
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client.py")


def engine_python(engine):
    return os.path.join(ENGINES, engine, "bin", "python")


@pytest.fixture(scope="session")
def engines():
    if not ENGINES or not os.path.exists(engine_python("serial")):
        pytest.fail("SCAILFIN_REANA_ENGINES does not hold REANA's engines: run through dev/test (dev/setup installs "
                    "them with dev/reana-engines)")
    return ENGINES


@pytest.fixture(scope="session")
def spec(engines):
    """reana-job-controller's OpenAPI specification, from the installed reana-commons."""
    found = glob.glob(os.path.join(engines, "serial", "lib", "python3*", "site-packages", "reana_commons",
                                   "openapi_specifications", "reana_job_controller.json"))
    assert found, "reana-commons in the serial engine's environment has no job controller specification"
    with open(found[0]) as f:
        return json.load(f)


class Service:
    """One `scailfin-exec serve` process and what the tests ask of it."""

    def __init__(self, root, state_dir, args, listen="127.0.0.1:5000", token=None):
        self.root, self.state_dir, self.args, self.listen, self.token = root, state_dir, args, listen, token
        self.url = f"http://{listen}"
        self.log_path = os.path.join(os.path.dirname(state_dir), f"serve-{os.path.basename(state_dir)}.log")
        self.proc = None

    def start(self):
        exe = os.path.join(os.path.dirname(sys.executable), "scailfin-exec")
        argv = [exe, "serve", "--listen", self.listen, "--state-dir", self.state_dir, "--workspace-root", self.root,
                *self.args]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"scailfin-exec serve exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if self.get("/jobs").status_code in (200, 401):
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"scailfin-exec serve did not answer within 60 s:\n{self.log()}")

    def stop(self, shutdown=True):
        """Stop the service: by default after /shutdown (its jobs are stopped: nothing left behind)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if shutdown:
            try:
                self.get("/shutdown", timeout=60)
            except requests.RequestException:
                pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path, **kw):
        return requests.get(self.url + path, headers=kw.pop("headers", self.headers()), timeout=kw.pop("timeout", 30),
                            **kw)

    def post(self, path, **kw):
        return requests.post(self.url + path, headers=kw.pop("headers", self.headers()),
                             timeout=kw.pop("timeout", 30), **kw)

    def delete(self, path, **kw):
        return requests.delete(self.url + path, headers=kw.pop("headers", self.headers()),
                               timeout=kw.pop("timeout", 30), **kw)

    def wait(self, job_id, timeout=300):
        """The job's final Job object (polled as the engines do, faster)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/jobs/{job_id}").json()
            if job["status"] in ("finished", "failed", "stopped"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not end within {timeout} s: {job}\n{self.log()[-3000:]}")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


@pytest.fixture
def serve(tmp_path, image_roots):
    """Start `scailfin-exec serve` (workspace root tmp_path/reana, the stand-in images, no pulls)
    with extra arguments; every service a test started is shut down and stopped after it."""
    started = []
    default_root = tmp_path / "reana"
    default_root.mkdir(exist_ok=True)

    def start(*args, state="state", listen="127.0.0.1:5000", token=None, images=True, root=default_root):
        extra = ["--image-roots", os.pathsep.join(image_roots), "--pull", "no"] if images else []
        service = Service(str(root), str(tmp_path / state), [*extra, *map(str, args)], listen, token)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def root_outside_tmp():
    """A workspace root not under /tmp (REANA's cwl engine rewrites every /tmp/X/Y/ in a command
    into the workspace, assuming cwltool's temporary directories; REANA's own are under /var/reana)."""
    path = tempfile.mkdtemp(prefix="reana-", dir=SHARED)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def reana_client(engines):
    """REANA's own client (reana_commons' JobControllerAPIClient, in the serial engine's
    environment), through tests/reana/client.py: returns its JSON answer, or its error."""
    def call(*args, timeout=300):
        proc = subprocess.run([engine_python("serial"), CLIENT, *args], capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
        return json.loads(proc.stdout)
    return call


def workspace(root, name=None):
    """A REANA-style workspace (users/<user>/workflows/<workflow>) under the service's root; its
    name is the workflow's (a new UUID: the tests' batch names on the pool never meet)."""
    path = os.path.join(root, "users", "00000000-0000-0000-0000-000000000000", "workflows", name or str(uuid.uuid4()))
    os.makedirs(path)
    return path
