# Image resolution on the worker, without assuming a registry: find a reference in CVMFS-style
# unpacked trees, then let the runtime find or prepare it (a shared cache, its own storage, a
# pull: runtimes/<name>.py). Preparing an image into the shared cache is locked, built under a
# temporary name and renamed atomically, so concurrent jobs never see (or leave) a half-made image.

import base64
import errno
import fcntl
import glob
import json
import os
import shutil
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from . import disk, procs
from .jobspec import ImageSources
from .references import ImageRef, ReferenceError, parse_reference

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
SENT_CREDENTIALS = "registry-auth"  # the job's registry credentials, as its batch system brings them
PULL_TIMEOUT = 3600
LOCK_TIMEOUT = 3600


class ImageError(Exception):
    """The image could not be found or prepared; the message lists what was tried."""


class ResolvedImage(NamedTuple):
    reference: str  # normalised reference, or the path the job named
    kind: str  # "dir", "sif", "ref" (the runtime's own storage), "shifter"
    location: str  # what the runtime is given
    how: str  # one line for the result record: where it came from


def credentials_here(submitted: Optional[str], scratch: str):
    """Where this worker finds the job's registry credentials (a directory holding config.json)
    and whether it is a copy the batch system brought (SENT_CREDENTIALS, in the job's scratch
    directory: removed after the pull) or the run's own, on a file system this node shares."""
    if not submitted:
        return None, False
    sent = os.path.join(scratch, SENT_CREDENTIALS)
    if os.path.isfile(os.path.join(sent, "config.json")):
        return sent, True
    return (submitted, False) if os.path.isfile(os.path.join(submitted, "config.json")) else (None, False)


def login(credentials: Optional[str], registry: str) -> Optional[Tuple[str, str]]:
    """The user name and password for registry in a credentials directory, for a runtime that
    takes them one by one (ch-image, Sarus)."""
    if not credentials:
        return None
    try:
        with open(os.path.join(credentials, "config.json")) as f:
            auth = json.load(f)["auths"][registry]["auth"]
        user, _, password = base64.b64decode(auth).decode().partition(":")
        return user, password
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def auth_file(sources: ImageSources) -> List[str]:
    """--authfile FILE for a runtime that reads a login file (Podman, Apptainer), or nothing."""
    return ["--authfile", os.path.join(sources.credentials, "config.json")] if sources.credentials else []


def default_cache(environ) -> str:
    return environ.get("SCAILFIN_IMAGE_CACHE") or procs.state_dir(environ, "images")


def usable_cache(sources: ImageSources, environ) -> Tuple[ImageSources, Optional[str]]:
    """The job's image sources with a cache this node can use, and a warning when the job's own
    cache is not one: a shared cache is made by the submit side before the run, so one that does
    not exist here is on no file system this node shares (an HTCondor job's private /tmp would
    be a new, empty cache for every job: a pull per step); the node's own cache serves instead."""
    if sources.cache is None or (os.path.isdir(sources.cache) and os.access(sources.cache, os.W_OK | os.X_OK)):
        return sources, None
    own = default_cache(environ)
    why = "does not exist here" if not os.path.isdir(sources.cache) else "is not writable here"
    return sources._replace(cache=own), "the image cache {} {} (a shared cache must be on a file system this node " \
        "mounts, made before the run): this node's own cache {} is used instead".format(sources.cache, why, own)


# -- the shared cache ------------------------------------------------------------------------

def prepare_cached(final: str, produce: Callable[[str], None], timeout: float = LOCK_TIMEOUT) -> bool:
    """Make `final` exist by calling produce(tmp) under a lock, then renaming tmp to final.

    Returns True if this call produced it, False if it was already there (or another job made it
    while we waited). A temporary left by a killed job is removed under the lock.
    """
    if os.path.exists(final):
        return False
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with locked(final + ".lock", timeout):
        if os.path.exists(final):
            return False
        for stale in glob.glob(glob.escape(final) + ".tmp-*"):
            _remove(stale)
        tmp = "{}.tmp-{}-{}".format(final, os.uname().nodename, os.getpid())
        try:
            produce(tmp)
            os.rename(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
    return True


class locked:
    def __init__(self, path: str, timeout: float):
        self.path, self.timeout, self.fd = path, timeout, None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise ImageError("timed out after {:.0f} s waiting for the lock {}".format(self.timeout, self.path))
                time.sleep(0.1)

    def __exit__(self, *exc):
        fcntl.lockf(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def checked(out: procs.Output, what: str) -> None:
    if out.returncode != 0:
        raise ImageError("{} failed (exit {}): {}".format(what, out.returncode, out.tail()))


# What a failed pull means, from what the runtime's own tool said (Podman, Docker and Apptainer
# speak containers/image's Go, ch-image Python's requests): the first cause whose words appear.
_PULL_CAUSES = (
    ("full", ("no space left on device", "disk quota exceeded")),
    ("corrupt", ("digest did not match", "error verifying sha256 checksum", "does not match its digest",
                 "digest mismatch", "layer verification failed")),
    ("platform", ("no image found in manifest list for architecture", "no child with platform",
                  "requested arch unavailable", "no matching manifest for")),
    ("untrusted", ("x509:", "certificate verify failed", "certificate_verify_failed", "tls: failed to verify")),
    ("unreachable", ("connection refused", "no route to host", "network is unreachable", "i/o timeout",
                     "no such host", "name or service not known", "temporary failure in name resolution",
                     "connection timed out", "read timed out", "failed to establish a new connection")),
    ("ambiguous", ("unauthorized or not in registry",)),  # ch-image cannot tell the two apart
    ("refused", ("unauthorized", "authentication required", "denied", "incorrect username or password",
                 "no further authentication possible")),
    ("unknown", ("manifest unknown", "name unknown", "not found")),
)
# where a runtime takes a registry's CA besides the system store
_CA_PLACES = {"podman": "/etc/containers/certs.d/{}/ca.crt", "docker": "/etc/docker/certs.d/{}/ca.crt"}


def pull_failure(runtime: str, tool: str, ref, out: procs.Output, cache: str) -> "ImageError":
    """One line for a failed pull of ref by tool (runtime's): what went wrong, what fixes it, and
    the tool's own last words."""
    text = out.text.lower()
    cause, word = next(((c, w) for c, words in _PULL_CAUSES for w in words if w in text), (None, None))
    registry, name = ref.registry, "{}:{}".format(ref.repository, ref.tag) if ref.tag else ref.repository
    log_in = "log in to it on the submit side, e.g. podman login {}".format(registry)
    if cause == "full":
        # still full: how full; emptied again (the failed pull's temporaries removed): that it was
        said = "no room to prepare it" + (disk.full_note(cache) or
                                          ": the file system holding {} filled up (no space left on device)".format(cache))
    elif cause == "corrupt":
        said = "a layer arrived corrupt (its content does not match its digest): the registry's stored copy is " \
               "damaged; push the image again"
    elif cause == "platform":
        said = "no image for this node's platform (linux/{}) in its manifest list".format(_architecture())
    elif cause == "untrusted":
        place = _CA_PLACES.get(runtime)
        said = "registry {}'s TLS certificate is not trusted on this node: add the CA that signed it to the node's " \
               "system trust store (a .crt in /usr/local/share/ca-certificates/, then update-ca-certificates){}".format(
                   registry, " or to " + place.format(registry) if place else "")
    elif cause == "unreachable":
        said = "registry {} cannot be reached from this node ({}): is it up, and does this node have a route to " \
               "it? Nodes without one need the image in an image root".format(registry, word)
    elif cause == "ambiguous":
        said = "registry {} has no image {} or refused access to it (an unknown repository or tag, or wrong or " \
               "missing credentials: {})".format(registry, name, log_in)
    elif cause == "refused":
        said = "registry {} refused access to {} (wrong or missing credentials: {})".format(registry, name, log_in)
    elif cause == "unknown":
        said = "registry {} has no image {} (unknown repository or tag)".format(registry, name)
    else:
        said = "{} failed (exit {})".format(tool, out.returncode)
    lines = out.text.splitlines() or [""]
    last = next((line for line in reversed(lines) if "error" in line.lower() or "fatal" in line.lower()), lines[-1]).strip()
    return ImageError("image {}: {} [{}: {}]".format(ref, said, tool, last if len(last) <= 240 else last[:237] + "..."))


def _architecture() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _unpack_archive(archive: str) -> Callable[[str], None]:
    def produce(tmp: str) -> None:
        os.makedirs(tmp)
        argv = ["tar", "-x", "-f", archive, "-C", tmp, "--no-same-owner", "--exclude=./dev/*", "--exclude=dev/*"]
        checked(procs.run(argv, timeout=PULL_TIMEOUT), "unpacking " + archive)
    return produce


# -- resolution: the trees here, the rest in each runtime ---------------------------------------

def tree_copies(ref, roots: List[str], tried: Optional[List[str]] = None) -> Dict[str, str]:
    """The copies of ref that the image roots hold, kind (dir, sif, archive) -> path, the first
    root first; each root without one is named in tried."""
    found = {}  # type: Dict[str, str]
    for root in roots:
        here = {}
        for base in ref.tree_candidates(root):
            for kind, path in (("dir", base), ("sif", base + ".sif")) + tuple(("archive", base + s) for s in ARCHIVE_SUFFIXES):
                if os.path.isdir(path) if kind == "dir" else os.path.isfile(path):
                    here.setdefault(kind, path)
        if not here and tried is not None:
            tried.append("not in {} ({})".format(root, ref.tree_candidates(root)[0]))
        for kind, path in here.items():
            found.setdefault(kind, path)
    return found


def resolve(runtime, exe: str, image: str, sources: ImageSources, environ, options: List[str] = ()) -> ResolvedImage:
    """Find or prepare `image` in a form `runtime` (an adapter, its program found at exe) can run;
    ImageError if none."""
    if os.path.isabs(image):
        return _resolve_path(runtime, exe, image, sources, environ, options)
    try:
        ref = parse_reference(image)
    except ReferenceError as e:
        raise ImageError(str(e))
    cache = sources.cache or default_cache(environ)
    tried = []  # type: List[str]
    found = tree_copies(ref, sources.roots, tried)
    result = runtime.resolve(ref, exe, found, cache, sources, tried, options, environ)
    if result is not None:
        return result
    if not sources.pull:
        tried.append("pulling is disabled (images.pull: false)")
    raise ImageError("image {} not found for {}: {}".format(ref, runtime.name, "; ".join(tried) or "nothing to try"))


def _resolve_path(runtime, exe, path, sources, environ, options) -> ResolvedImage:
    if os.path.isdir(path):
        kind = "dir"
    elif path.endswith(".sif") and os.path.isfile(path):
        kind = "sif"
    elif path.endswith(ARCHIVE_SUFFIXES) and os.path.isfile(path):
        kind = "archive"
    else:
        raise ImageError("image {} does not exist (or is not a directory, .sif or .tar/.tar.gz)".format(path))
    found = {kind: path}
    cache = sources.cache or default_cache(environ)
    ref = ImageRef("local", "path" + path.replace("/", "_"), None, None)
    result = runtime.resolve(ref, exe, found, cache, sources._replace(pull=False), [], options, environ)
    if result is None:
        raise ImageError("{} cannot run an image given as a {} ({})".format(runtime.name, kind, path))
    return result._replace(reference=path)


def archive_to_dir(ref, found, cache, tried) -> Optional[ResolvedImage]:
    if "archive" not in found:
        return None
    final = os.path.join(cache, "dir", ref.cache_name)
    made = prepare_cached(final, _unpack_archive(found["archive"]))
    how = "unpacked {} into the cache {}".format(found["archive"], final) if made else "cached {} (from {})".format(final, found["archive"])
    return ResolvedImage(str(ref), "dir", final, how)
