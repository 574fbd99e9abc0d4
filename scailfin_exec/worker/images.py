# Image resolution on the worker, without assuming a registry: normalise a reference as Docker
# does, then find it in CVMFS-style unpacked trees, a shared cache, the runtime's own storage,
# or pull it. Preparing an image into the shared cache is locked, built under a temporary name
# and renamed atomically, so concurrent jobs never see (or leave) a half-made image.

import errno
import fcntl
import glob
import os
import shutil
import subprocess
import time
from typing import Callable, List, NamedTuple, Optional

from . import procs
from .jobspec import ImageSources

DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io")
# unpacked.cern.ch names Docker Hub like this; we also accept docker.io/ as the directory name
_TREE_REGISTRY = {DOCKER_HUB: ("registry.hub.docker.com", "docker.io")}
_LOWER_ALNUM = set("abcdefghijklmnopqrstuvwxyz0123456789")
_HEX = set("0123456789abcdefABCDEF")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
PULL_TIMEOUT = 3600
LOCK_TIMEOUT = 3600


# Docker's reference grammar, checked without regular expressions (compiling them costs more
# than the rest of the shim's start-up on a busy worker).
def _valid_component(part: str) -> bool:
    if not part or part[0] not in _LOWER_ALNUM or part[-1] not in _LOWER_ALNUM:
        return False
    if not set(part) <= _LOWER_ALNUM | set("._-"):
        return False
    return ".." not in part and "._" not in part and "_." not in part and "___" not in part


def _valid_tag(tag: str) -> bool:
    return 0 < len(tag) <= 128 and tag[0] != "." and tag[0] != "-" and set(tag) <= _LOWER_ALNUM | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-")


def _valid_digest(digest: str) -> bool:
    algorithm, _, hexpart = digest.partition(":")
    return bool(algorithm) and set(algorithm) <= _LOWER_ALNUM and len(hexpart) >= 32 and set(hexpart) <= _HEX


class ImageError(Exception):
    """The image could not be found or prepared; the message lists what was tried."""


class ImageRef(NamedTuple):
    registry: str
    repository: str
    tag: Optional[str]
    digest: Optional[str]

    def __str__(self) -> str:
        text = "{}/{}".format(self.registry, self.repository)
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def tree_candidates(self, root: str) -> List[str]:
        """Where an unpacked tree rooted at root keeps this image (without a file suffix)."""
        leaf = self.repository + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")
        return [os.path.join(root, reg, leaf) for reg in _TREE_REGISTRY.get(self.registry, (self.registry,))]

    @property
    def cache_name(self) -> str:
        # the naming cwl-utils uses for CWL_SINGULARITY_CACHE, so such a cache can be shared
        return str(self).replace("_", "___").replace("/", "_s_")

    @property
    def shifter_name(self) -> str:
        repo = self.repository
        if self.registry == DOCKER_HUB:
            repo = repo[len("library/"):] if repo.startswith("library/") else repo
        else:
            repo = self.registry + "/" + repo
        return "docker:{}:{}".format(repo, self.tag or "latest")


def parse_reference(text: str) -> ImageRef:
    """Normalise as Docker does: 'alpine' is docker.io/library/alpine:latest."""
    original = text
    if text.startswith("docker://"):
        text = text[len("docker://"):]
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise ImageError("invalid image reference {!r}".format(original))
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _valid_digest(digest):
            raise ImageError("invalid image reference {!r}: bad digest {!r}".format(original, digest))
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _valid_tag(tag):
            raise ImageError("invalid image reference {!r}: bad tag {!r}".format(original, tag))
    parts = text.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, parts = parts[0], parts[1:]
    else:
        registry = DOCKER_HUB
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if len(parts) == 1:
            parts = ["library"] + parts
    for part in parts:
        if not _valid_component(part):
            raise ImageError("invalid image reference {!r}: bad name component {!r}".format(original, part))
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry, "/".join(parts), tag, digest)


class ResolvedImage(NamedTuple):
    reference: str  # normalised reference, or the path the job named
    kind: str  # "dir", "sif", "ref" (the runtime's own storage), "shifter"
    location: str  # what the runtime is given
    how: str  # one line for the result record: where it came from


def default_cache(environ) -> str:
    return environ.get("SCAILFIN_IMAGE_CACHE") or procs.state_dir(environ, "images")


# -- the shared cache ------------------------------------------------------------------------

def prepare_cached(final: str, produce: Callable[[str], None], timeout: float = LOCK_TIMEOUT) -> bool:
    """Make `final` exist by calling produce(tmp) under a lock, then renaming tmp to final.

    Returns True if this call produced it, False if it was already there (or another job made it
    while we waited). A temporary left by a killed job is removed under the lock.
    """
    if os.path.exists(final):
        return False
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with _locked(final + ".lock", timeout):
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


class _locked:
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


def _checked(out: procs.Output, what: str) -> None:
    if out.returncode != 0:
        raise ImageError("{} failed (exit {}): {}".format(what, out.returncode, out.tail()))


def _unpack_archive(archive: str) -> Callable[[str], None]:
    def produce(tmp: str) -> None:
        os.makedirs(tmp)
        argv = ["tar", "-x", "-f", archive, "-C", tmp, "--no-same-owner", "--exclude=./dev/*", "--exclude=dev/*"]
        _checked(procs.run(argv, timeout=PULL_TIMEOUT), "unpacking " + archive)
    return produce


# -- resolution per runtime ------------------------------------------------------------------

def resolve(runtime: str, exe: str, image: str, sources: ImageSources, environ, options: List[str] = ()) -> ResolvedImage:
    """Find or prepare `image` in a form `runtime` (found at exe) can run; ImageError if none."""
    if os.path.isabs(image):
        return _resolve_path(runtime, exe, image, sources, environ, options)
    ref = parse_reference(image)
    cache = sources.cache or default_cache(environ)
    tried = []  # type: List[str]
    found = {}  # kind -> path, first match in the trees
    for root in sources.roots:
        here = {}
        for base in ref.tree_candidates(root):
            for kind, path in (("dir", base), ("sif", base + ".sif")) + tuple(("archive", base + s) for s in ARCHIVE_SUFFIXES):
                if os.path.isdir(path) if kind == "dir" else os.path.isfile(path):
                    here.setdefault(kind, path)
        if not here:
            tried.append("not in {} ({})".format(root, ref.tree_candidates(root)[0]))
        for kind, path in here.items():
            found.setdefault(kind, path)
    resolver = _RESOLVERS[runtime]
    result = resolver(ref, exe, found, cache, sources, tried, options, environ)
    if result is not None:
        return result
    if not sources.pull:
        tried.append("pulling is disabled (images.pull: false)")
    raise ImageError("image {} not found for {}: {}".format(ref, runtime, "; ".join(tried) or "nothing to try"))


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
    result = _RESOLVERS[runtime](ref, exe, found, cache, sources._replace(pull=False), [], options, environ)
    if result is None:
        raise ImageError("{} cannot run an image given as a {} ({})".format(runtime, kind, path))
    return result._replace(reference=path)


def _archive_to_dir(ref, found, cache, tried) -> Optional[ResolvedImage]:
    if "archive" not in found:
        return None
    final = os.path.join(cache, "dir", ref.cache_name)
    made = prepare_cached(final, _unpack_archive(found["archive"]))
    how = "unpacked {} into the cache {}".format(found["archive"], final) if made else "cached {} (from {})".format(final, found["archive"])
    return ResolvedImage(str(ref), "dir", final, how)


def _apptainer(ref, exe, found, cache, sources, tried, options, environ):
    if "sif" in found:
        return ResolvedImage(str(ref), "sif", found["sif"], "SIF in the image tree: " + found["sif"])
    if "dir" in found:
        return ResolvedImage(str(ref), "dir", found["dir"], "unpacked tree: " + found["dir"])
    sif = os.path.join(cache, "sif", ref.cache_name + ".sif")
    if os.path.isfile(sif):
        return ResolvedImage(str(ref), "sif", sif, "cached SIF: " + sif)
    tried.append("not in the cache ({})".format(sif))
    archive = _archive_to_dir(ref, found, cache, tried)
    if archive is not None:
        return archive
    if not sources.pull:
        return None

    def pull(tmp):
        _checked(procs.run([exe] + list(options) + ["pull", tmp, "docker://" + str(ref)], timeout=PULL_TIMEOUT),
                 "{} pull docker://{}".format(os.path.basename(exe), ref))
    made = prepare_cached(sif, pull)
    return ResolvedImage(str(ref), "sif", sif, ("pulled docker://{} into {}" if made else "cached SIF {1} (pulled by another job)").format(ref, sif))


def _charliecloud(ref, exe, found, cache, sources, tried, options, environ):
    if "dir" in found:
        return ResolvedImage(str(ref), "dir", found["dir"], "unpacked tree: " + found["dir"])
    final = os.path.join(cache, "dir", ref.cache_name)
    if os.path.isdir(final):
        return ResolvedImage(str(ref), "dir", final, "cached directory: " + final)
    tried.append("not in the cache ({})".format(final))
    archive = _archive_to_dir(ref, found, cache, tried)
    if archive is not None:
        return archive
    if not sources.pull:
        return None
    bindir = os.path.dirname(exe)
    storage = os.path.join(cache, "ch-image")

    def pull(tmp):
        # ch-image locks its whole storage directory: serialise every use of it
        with _locked(storage + ".lock", LOCK_TIMEOUT):
            _checked(procs.run([os.path.join(bindir, "ch-image"), "-s", storage, "pull", str(ref)], timeout=PULL_TIMEOUT),
                     "ch-image pull " + str(ref))
            _checked(procs.run([os.path.join(bindir, "ch-convert"), "-s", storage, "-i", "ch-image", str(ref), tmp], timeout=PULL_TIMEOUT),
                     "ch-convert {} to a directory".format(ref))
    made = prepare_cached(final, pull)
    return ResolvedImage(str(ref), "dir", final, ("pulled {} into {}" if made else "cached directory {1} (pulled by another job)").format(ref, final))


def _engine(ref, exe, found, cache, sources, tried, options, environ):
    """Podman and Docker keep images in their own storage: import unpacked trees into it."""
    name = os.path.basename(exe)
    base = [exe] + list(options)
    # asking the engine costs ~0.1 s; its image index file changes whenever an image comes or goes
    index = _storage_index(name, options, environ)
    seen = os.path.join(cache, "present", "{}-{}-{}".format(name, os.getuid(), ref.cache_name))
    if index is not None and _read(seen) == str(os.stat(index).st_mtime_ns):
        return ResolvedImage(str(ref), "ref", str(ref), "{} storage".format(name))
    if procs.run(base + ["image", "inspect", "--format", "{{.Id}}", str(ref)], timeout=60).returncode == 0:
        if index is not None:
            _write(seen, str(os.stat(index).st_mtime_ns))
        return ResolvedImage(str(ref), "ref", str(ref), "{} storage".format(name))
    tried.append("not in {}'s storage".format(name))
    source = found.get("dir") or found.get("archive")
    if source is not None:
        # the import is serialised per image so two jobs do not import it twice
        marker = os.path.join(cache, "imported", "{}-{}-{}".format(name, os.getuid(), ref.cache_name))

        def produce(tmp):
            if os.path.isdir(source):
                out = _import_tree(base, source, str(ref))
            else:
                out = procs.run(base + ["import", "-q", source, str(ref)], timeout=PULL_TIMEOUT)
            _checked(out, "{} import {}".format(name, source))
            with open(tmp, "w") as f:
                f.write(source + "\n")
        if os.path.exists(marker):
            os.unlink(marker)  # the storage lost it since: import again
        prepare_cached(marker, produce)
        return ResolvedImage(str(ref), "ref", str(ref), "imported {} into {} storage".format(source, name))
    if not sources.pull:
        return None
    out = procs.run(base + ["pull", "-q", str(ref)], timeout=PULL_TIMEOUT)
    if out.returncode != 0:
        tried.append("{} pull failed: {}".format(name, out.tail(1)))
        return None
    return ResolvedImage(str(ref), "ref", str(ref), "pulled into {} storage".format(name))


def _storage_index(name, options, environ) -> Optional[str]:
    """Podman's image index (containers/storage), in its default place; None if elsewhere."""
    if name != "podman" or any(o.startswith(("--root", "--storage")) for o in options):
        return None
    if os.getuid() == 0:
        root = "/var/lib/containers/storage"
    else:
        data = environ.get("XDG_DATA_HOME") or os.path.join(environ.get("HOME", "/nonexistent"), ".local", "share")
        root = os.path.join(data, "containers", "storage")
    for driver in ("overlay", "vfs"):
        path = os.path.join(root, driver + "-images", "images.json")
        if os.path.isfile(path):
            return path
    return None


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path: str, text: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "{}.tmp-{}".format(path, os.getpid())
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass


def _import_tree(base, directory, ref) -> procs.Output:
    tar = subprocess.Popen(["tar", "-C", directory, "-c", "."], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        return procs.run(base + ["import", "-q", "-", ref], timeout=PULL_TIMEOUT, stdin=tar.stdout)
    finally:
        tar.stdout.close()
        tar.wait()


def _shifter(ref, exe, found, cache, sources, tried, options, environ):
    shifterimg = os.path.join(os.path.dirname(exe), "shifterimg")
    name = ref.shifter_name
    if procs.run([shifterimg, "lookup", name], timeout=60).returncode == 0:
        return ResolvedImage(str(ref), "shifter", name, "Shifter image gateway")
    tried.append("not in Shifter's image gateway ({})".format(name))
    if not sources.pull:
        return None
    _checked(procs.run([shifterimg, "pull", name], timeout=PULL_TIMEOUT), "shifterimg pull " + name)
    deadline = time.monotonic() + PULL_TIMEOUT
    while procs.run([shifterimg, "lookup", name], timeout=60).returncode != 0:  # pulls are asynchronous
        if time.monotonic() > deadline:
            raise ImageError("shifterimg pull {}: not ready after {} s".format(name, PULL_TIMEOUT))
        time.sleep(2)
    return ResolvedImage(str(ref), "shifter", name, "pulled through Shifter's image gateway")


def _sarus(ref, exe, found, cache, sources, tried, options, environ):
    listing = procs.run([exe, "images"], timeout=60)
    repo_tag = "{}/{}".format(ref.registry, ref.repository), ref.tag or "latest"
    for line in listing.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 2 and (cols[0], cols[1]) in (repo_tag, (ref.repository, repo_tag[1])):
            return ResolvedImage(str(ref), "ref", str(ref), "Sarus local images")
    tried.append("not in Sarus's local images")
    if not sources.pull:
        return None
    _checked(procs.run([exe, "pull", str(ref)], timeout=PULL_TIMEOUT), "sarus pull " + str(ref))
    return ResolvedImage(str(ref), "ref", str(ref), "pulled by Sarus")


_RESOLVERS = {
    "apptainer": _apptainer,
    "singularity": _apptainer,
    "charliecloud": _charliecloud,
    "podman": _engine,
    "docker": _engine,
    "shifter": _shifter,
    "sarus": _sarus,
}
