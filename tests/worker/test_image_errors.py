# What a step that cannot get its image says, for every way a real registry fails, pulled by each
# runtime where it runs (Podman, Docker (the site's engine) and Charliecloud through the local
# scheduler, Apptainer on the pool's nodes): one line naming the cause and what fixes it, exit 252
# (the image), and nothing half-made left in the image cache. The registries are real: the test
# site's (tests/site/registry, whose storage the tests may damage), one this test starts with a
# certificate nobody trusts, and a port where nothing listens.
import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import urllib.request
import uuid

import pytest

from scailfin_exec import Run, Settings

from ..conftest import wait_for
from ..test_pinning import LOGS, REGISTRY, push

SHARED = "/scratch/scailfin-shared"  # seen by the pool's jobs: their image cache, looked at afterwards
FULL_IMAGES = "/tmp/scailfin-full-images"  # a 16 MiB tmpfs (tests/site/start)
WHERE = {"podman": "local", "docker": "local", "charliecloud": "local", "apptainer": "htcondor"}


@pytest.fixture
def stand_in(image_roots):
    return os.path.join(image_roots[0], "registry.hub.docker.com", "library", "alpine:latest")


@pytest.fixture(scope="module")
def untrusted_registry(tmp_path_factory):
    """A registry on 192.0.2.1:5003 (the site's other loopback address: Docker trusts any registry
    on 127.0.0.0/8 without looking at its certificate) whose certificate is self-signed."""
    here = tmp_path_factory.mktemp("untrusted")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=192.0.2.1",
                    "-addext", "subjectAltName=IP:192.0.2.1", "-keyout", here / "key", "-out", here / "crt"],
                   check=True, capture_output=True)
    (here / "config.yml").write_text(f"""version: 0.1
log: {{level: error}}
storage: {{filesystem: {{rootdirectory: {here / 'data'}}}}}
http: {{addr: "192.0.2.1:5003", tls: {{certificate: {here / 'crt'}, key: {here / 'key'}}}}}
""")
    proc = subprocess.Popen(["docker-registry", "serve", here / "config.yml"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: _answers("192.0.2.1", 5003), seconds=30), "the untrusted registry did not start"
        yield "192.0.2.1:5003"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def _put(url, data, content_type):
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": content_type})
    return urllib.request.urlopen(request, context=ssl.create_default_context(), timeout=30)


def push_for_another_architecture(repository, tag):
    """A manifest list whose only image is for linux/arm64, pushed as repository:tag."""
    base = f"https://{REGISTRY}/v2/{repository}"

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = urllib.request.urlopen(urllib.request.Request(f"{base}/blobs/uploads/", method="POST"),
                                       context=ssl.create_default_context(), timeout=30)
        location = start.headers["Location"]
        location = location if location.startswith("https://") else f"https://{REGISTRY}{location}"
        _put(f"{location}{'&' if '?' in location else '?'}digest={digest}", data, "application/octet-stream")
        return {"digest": digest, "size": len(data)}

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    layer = gzip.compress(layer.getvalue())
    config = json.dumps({"architecture": "arm64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": dict(blob(config), mediaType="application/vnd.docker.container.image.v1+json"),
                           "layers": [dict(blob(layer), mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")]}).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    _put(f"{base}/manifests/{manifest_digest}", manifest, "application/vnd.docker.distribution.manifest.v2+json")
    listed = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                         "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                        "digest": manifest_digest, "size": len(manifest),
                                        "platform": {"architecture": "arm64", "os": "linux"}}]}).encode()
    _put(f"{base}/manifests/{tag}", listed, "application/vnd.docker.distribution.manifest.list.v2+json")


def corrupt_a_layer(reference):
    """The registry's stored copy of the image's first layer, overwritten with other bytes of its size."""
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"docker://{reference}"], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    digest = json.loads(raw)["layers"][0]["digest"].split(":")[1]
    data = os.path.join(LOGS, "anonymous-data", "docker", "registry", "v2", "blobs", "sha256", digest[:2], digest, "data")
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.write(os.urandom(size))


@pytest.fixture
def wrong_login(tmp_path, monkeypatch):
    """A login file for the private registry (as `podman login` writes it) with a wrong password."""
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {"127.0.0.1:5002": {"auth": base64.b64encode(b"scailfin:wrong").decode()}}}))
    path.chmod(0o600)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    return path


def image_for(error, tmp_path, stand_in, request):
    """The image reference that fails with error (making it so where needed)."""
    repository = f"test/err-{uuid.uuid4().hex[:8]}"
    if error == "registry down":
        return "127.0.0.1:5999/test/nothing-listens:v1"
    if error == "untrusted certificate":
        return f"{request.getfixturevalue('untrusted_registry')}/test/any:v1"
    if error == "wrong password":
        request.getfixturevalue("wrong_login")
        return "127.0.0.1:5002/private/alpine:3.20"
    if error == "unknown repository":
        return f"{REGISTRY}/{repository}:v1"
    if error == "unknown tag":
        return f"{REGISTRY}/library/alpine:no-such-tag"
    if error == "another architecture only":
        push_for_another_architecture(repository, "v1")
        return f"{REGISTRY}/{repository}:v1"
    if error == "corrupted blob":
        reference = f"{REGISTRY}/{repository}:v1"
        push(stand_in, reference, tmp_path, {"etc/unique": uuid.uuid4().hex})
        corrupt_a_layer(reference)
        return reference
    raise AssertionError(error)


SAYS = {  # what the line must say, whatever the runtime
    "registry down": "cannot be reached",
    "untrusted certificate": "not trusted",
    "wrong password": "refused",
    "unknown repository": "has no image",
    "unknown tag": "has no image",
    "another architecture only": "no image for this node's platform (linux/amd64)",
    "corrupted blob": "corrupt",
}
FIXES = {  # and what it names to fix it
    "untrusted certificate": "update-ca-certificates",
    "wrong password": "log in to it on the submit side, e.g. podman login 127.0.0.1:5002",
}


def half_made(cache):
    """What a cache holds that is not a finished image: temporaries, partial downloads."""
    left = []
    for root, dirs, files in os.walk(cache):
        for name in dirs + files:
            if ".tmp-" in name or name.endswith((".partial", ".part")):
                left.append(os.path.join(root, name))
    return left


def finished(cache):
    """The finished images a cache holds (SIFs, unpacked trees)."""
    found = []
    for kind in ("sif", "dir"):
        directory = os.path.join(cache, kind)
        if os.path.isdir(directory):
            found += [n for n in os.listdir(directory) if not n.endswith(".lock")]
    return found


@pytest.mark.parametrize("runtime", list(WHERE))
@pytest.mark.parametrize("error", list(SAYS))
def test_an_image_that_cannot_be_had_fails_its_step_in_one_line_with_exit_252_and_leaves_no_half_made_image(
        error, runtime, tmp_path, stand_in, request):
    if runtime in ("apptainer", "docker"):
        request.getfixturevalue("pool" if runtime == "apptainer" else "docker_engine")
    image = image_for(error, tmp_path, stand_in, request)
    base = SHARED if WHERE[runtime] == "htcondor" else str(tmp_path)
    cache = os.path.join(base, f"image-cache-{uuid.uuid4().hex[:8]}")
    ws = os.path.join(base, f"ws-{uuid.uuid4().hex[:8]}")
    os.makedirs(ws)
    try:
        settings = Settings(scheduler=WHERE[runtime], transfer="htcondor" if WHERE[runtime] == "htcondor" else "shared",
                            runtime=[runtime], pull=True, image_cache=cache, run_dir=str(tmp_path / "run"))
        with Run(settings, name="image-errors") as run:
            result = run.wait(run.submit(run.job("e-1", image, ["true"], ws)), timeout=300)
        line = result.describe()
        assert result.exit_code == 252 and result.shim_error.kind == "image", line
        assert "\n" not in line and len(line) < 600, line
        assert image.split("/")[0] in line and SAYS[error] in line, line
        assert FIXES.get(error, "") in line, line
        assert not half_made(cache) and not finished(cache), (half_made(cache), finished(cache))
    finally:
        shutil.rmtree(ws, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def test_a_cache_that_fills_during_conversion_says_so_and_keeps_nothing_half_made(tmp_path, stand_in):
    """Charliecloud's pull unpacks the image into the cache: with room for the download but not
    for the tree, it fails naming the file system, and neither a partial tree nor a temporary stays."""
    cache = os.path.join(FULL_IMAGES, "cache")
    assert os.path.ismount(FULL_IMAGES), "tests/site/start mounts it"
    repository = f"test/full-{uuid.uuid4().hex[:8]}"
    reference = f"{REGISTRY}/{repository}:v1"
    push(stand_in, reference, tmp_path, {"etc/unique": uuid.uuid4().hex})
    filler = os.path.join(FULL_IMAGES, "filler")
    try:
        st = os.statvfs(FULL_IMAGES)
        with open(filler, "wb") as f:  # leave 1.5 MiB: the compressed layer fits, the unpacked tree (2 MiB) does not
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 1536 * 1024))
        ws = tmp_path / "ws"
        ws.mkdir()
        settings = Settings(runtime=["charliecloud"], pull=True, image_cache=cache, run_dir=str(tmp_path / "run"))
        with Run(settings, name="image-full") as run:
            result = run.wait(run.submit(run.job("full-1", reference, ["true"], str(ws))), timeout=300)
        line = result.describe()
        assert result.exit_code == 252 and result.shim_error.kind == "image", line
        assert f"the file system holding {cache}" in line or f"the file system holding {FULL_IMAGES}" in line, line
        assert not half_made(cache) and not finished(cache), (half_made(cache), finished(cache))
    finally:
        for entry in os.listdir(FULL_IMAGES):
            subprocess.run(["rm", "-rf", os.path.join(FULL_IMAGES, entry)], check=False)
