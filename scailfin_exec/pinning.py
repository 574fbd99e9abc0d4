# Image tags pinned to digests once per run: every job of a run that names `repository:tag` runs
# the image that tag meant when the run first asked (`repository:tag@sha256:...`, Docker's own
# form, so the result record, the trace and the report show both), even if the tag moves in the
# middle of the run. One manifest request per image per run, through skopeo (the registries' token
# handshakes and the user's login files - $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
# ~/.docker/config.json - are skopeo's own). An image the run's image roots hold under its tag is
# left as it is (the tree is what runs), and so is one the submit side cannot resolve: the run says
# so once per image, and the nodes pin it at their first pull.

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import threading

from .worker.images import tree_copies
from .worker.jobspec import ImageSources
from .worker.references import ReferenceError, parse_reference

INSPECT_TIMEOUT_S = 60


class Pins:
    """The digests of one run's images, each asked for once (concurrent jobs of one image wait for
    the first to ask)."""

    def __init__(self, log: logging.Logger | None = None, skopeo: str | None = None, auth_file: str | None = None):
        self.log = log or logging.getLogger("scailfin_exec")
        self.skopeo = skopeo or shutil.which("skopeo")
        self.auth = ["--authfile", auth_file] if auth_file else []  # else skopeo looks where podman login writes
        self._lock = threading.Lock()
        self._pins: dict[str, str] = {}  # image as named -> as pinned (itself when it could not be)
        self._asking: dict[str, threading.Lock] = {}

    def pin(self, image: str, sources: ImageSources) -> str:
        """image as it runs in this run: repository:tag@sha256:..., or image itself (a path, a
        digest already, pulls disabled, in an image root, or not resolvable from here)."""
        if image in self._pins:
            return self._pins[image]
        with self._lock:
            asking = self._asking.setdefault(image, threading.Lock())
        with asking:
            if image not in self._pins:
                self._pins[image] = self._resolve(image, sources)
        return self._pins[image]

    def _resolve(self, image: str, sources: ImageSources) -> str:
        if os.path.isabs(image) or not sources.pull:
            return image
        try:
            ref = parse_reference(image)
        except ReferenceError:
            return image  # the job's validation says why
        if ref.digest or tree_copies(ref, sources.roots):
            return image
        if self.skopeo is None:
            self.log.warning("image %s: not pinned to a digest here (no skopeo on this host's PATH): each node "
                             "pins it at its first pull", image)
            return image
        try:  # the manifest as the registry serves it: its digest is the sha256 of these very bytes
            out = subprocess.run([self.skopeo, "inspect", "--raw", *self.auth, f"docker://{ref}"], capture_output=True,
                                 timeout=INSPECT_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            out = None
        if out is None or out.returncode != 0 or not out.stdout.strip():
            said = _said(out.stderr if out is not None else b"", f"no answer in {INSPECT_TIMEOUT_S} s")
            self.log.warning("image %s: not pinned to a digest (this host cannot resolve it: %s): each node pins it "
                             "at its first pull", ref, said)
            return image
        digest = "sha256:" + hashlib.sha256(out.stdout).hexdigest()
        self.log.info("image %s: pinned to %s for this run", ref, digest)
        return str(ref._replace(digest=digest))

    def identity(self, image: str, sources: ImageSources) -> list:
        """What a step's key takes for its image: the digest this run pins it to; for a copy in
        the image roots, which files or directories those are and when they last changed (a tree
        is not hashed: it is a whole system); else its name alone."""
        if os.path.isabs(image):
            return [image, *_changed(image)]
        try:
            ref = parse_reference(self.pin(image, sources))
        except ReferenceError:
            return [image]
        if ref.digest:
            return [ref.digest]
        return [image] + [[kind, path, *_changed(path)] for kind, path in sorted(tree_copies(ref, sources.roots).items())]


def _changed(path: str) -> list:
    try:
        st = os.stat(path)
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns]


def _said(stderr: bytes, default: str) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    text = lines[-1].replace('level=fatal msg="', "").rstrip('"') if lines else default
    return text if len(text) <= 300 else text[:297] + "..."
