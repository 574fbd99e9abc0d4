# Registry credentials for a run's pulls, taken where users already keep them: the login file that
# `podman login` or `docker login` wrote ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
# ~/.docker/config.json, the first that exists), or the one the `registry_auth` setting names
# (`scailfin-exec serve` takes only that: a request never brings credentials). For each registry a
# run pulls from, that registry's entry alone is written to a private file of the run directory
# (RUN_DIR/.credentials/*/registry-auth/config.json: directories 0700, file 0600); the job names the
# file's directory (never its content: job files, job ads, records, the trace and the report carry
# a path), batch jobs carry it with their own files, and the worker removes its copy once the image
# is pulled (worker/images.py hands it to each runtime its own way). The run removes its files when
# it ends.

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import tempfile
import threading

from .worker.images import SENT_CREDENTIALS as SENT  # what travels with a job (config.json: Docker's name too)
from .worker.references import ReferenceError, parse_reference

DIRECTORY = ".credentials"  # in the run directory


def login_files(environ=os.environ) -> list[str]:
    """Where podman login and docker login keep credentials, in the order they are looked for."""
    places = [environ.get("REGISTRY_AUTH_FILE")]
    if environ.get("XDG_RUNTIME_DIR"):
        places.append(os.path.join(environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    places.append(os.path.join(environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker"),
                               "config.json"))
    return [p for p in places if p]


def login_file(configured: str | None, environ=os.environ) -> str | None:
    """The login file a run uses: the configured one, or the first of login_files() that exists."""
    if configured:
        return configured
    return next((p for p in login_files(environ) if os.path.isfile(p)), None)


class Credentials:
    """One run's registry credentials: which registries the login file has an entry for, each
    written for the nodes once, on first need."""

    def __init__(self, configured: str | None, log: logging.Logger | None = None, environ=os.environ):
        self.log = log or logging.getLogger("scailfin_exec")
        self.file = login_file(configured, environ)
        self._lock = threading.Lock()
        self._written: dict[str, str | None] = {}  # registry -> its directory for the nodes (None: no entry)
        self._entries: dict | None = None
        self._made: list[str] = []

    def registries(self) -> list[str]:
        """The registries the login file has credentials for (names only: `doctor` shows them)."""
        return sorted(self._read())

    def for_image(self, image: str, run_dir: str) -> str | None:
        """The directory (holding config.json) with the credentials for image's registry, written
        into run_dir on first need; None if the login file has none for it."""
        try:
            registry = parse_reference(image).registry
        except ReferenceError:
            return None
        with self._lock:
            if registry not in self._written:
                entry = self._read().get(registry)
                self._written[registry] = self._write(registry, entry, run_dir) if entry else None
            return self._written[registry]

    def remove(self, run_dir: str | None) -> None:
        """The run's credential files gone, and those an earlier process left in its run directory
        for jobs this run took over (the run has ended: so have they)."""
        with self._lock:
            for directory in self._made + ([os.path.join(run_dir, DIRECTORY)] if run_dir else []):
                shutil.rmtree(directory, ignore_errors=True)
            self._made.clear()
            self._written.clear()

    def _read(self) -> dict:
        if self._entries is None:
            self._entries = {}
            if self.file:
                try:
                    with open(self.file) as f:
                        data = json.load(f)
                    auths = data.get("auths", {})
                except (OSError, ValueError, AttributeError) as e:
                    self.log.warning("registry credentials: %s could not be read (%s): no credentials are sent",
                                     self.file, e)
                    data, auths = {}, {}
                if data.get("credsStore") or data.get("credHelpers"):
                    self.log.warning("registry credentials: %s keeps some in a credential helper, which cannot be "
                                     "sent to the nodes: only its own auths entries are", self.file)
                for name, entry in auths.items() if isinstance(auths, dict) else []:
                    registry = name.split("://", 1)[-1].split("/", 1)[0]  # docker login keeps https://HOST/v1/
                    if registry == "index.docker.io":
                        registry = "docker.io"
                    if isinstance(entry, dict) and isinstance(entry.get("auth"), str) and _decodes(entry["auth"]):
                        self._entries[registry] = entry["auth"]
        return self._entries

    def _write(self, registry: str, auth: str, run_dir: str) -> str:
        base = os.path.join(run_dir, DIRECTORY)
        os.makedirs(base, 0o700, exist_ok=True)
        holder = tempfile.mkdtemp(dir=base)  # 0700; new, whatever an earlier process left
        directory = os.path.join(holder, SENT)
        os.mkdir(directory, 0o700)
        path = os.path.join(directory, "config.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {registry: {"auth": auth}}}, f)
        self._made.append(holder)
        self.log.info("registry credentials: %s's from %s go to the nodes with the jobs that pull from it",
                      registry, self.file)
        return directory


def _decodes(auth: str) -> bool:
    try:
        return ":" in base64.b64decode(auth, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
