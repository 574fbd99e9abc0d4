# The chirp transfer mode, submit half: the job reaches the submit side through HTCondor's I/O
# proxy (the shim writes outputs back, each renamed into place), where every file costs round
# trips. So each directory a step needs travels as one archive, fetched with one request: built
# here once, in the run directory, and shared by every job of the run that needs the same content
# (its name is a digest of every entry's path, type, size, time and mode: a directory that changed
# gets a new one), removed when no job of this process needs it any more. A directory of more than
# ARCHIVE_LIMIT bytes (its large files streamed) or of a few entries is fetched entry by entry.
# Once the job has ended, the temporaries of a killed or evicted attempt are cleared.

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import threading

from ..job import Job
from ..worker.transfers import needed_paths
from .shared import bring_back as _clear_leftovers
from .shared import inputs  # noqa: F401  (nothing for HTCondor to carry)

IO_PROXY = True
ARCHIVES = "chirp-archives"  # in the run directory
ARCHIVE_LIMIT = 64 << 20  # a directory of more bytes is fetched entry by entry (no copy of it here)
ARCHIVE_MIN_ENTRIES = 32  # nor one of fewer entries: their round trips cost less than an archive

_lock = threading.Lock()
_users: dict[str, int] = {}  # archive -> jobs of this process that still need it


class ArchiveError(OSError):
    """A directory a step needs could not be read to archive it."""


def ship(job: Job, directory: str, taken: frozenset = frozenset()) -> Job:
    """The job, with an archive for each directory it needs (job.archives)."""
    where = os.path.join(os.path.dirname(directory), ARCHIVES)
    shipped = job._replace(archives={})
    try:
        for path in needed_paths(job):
            if os.path.isdir(path) and not os.path.islink(path):
                archive = _archive(path, where)
                if archive is not None:
                    shipped.archives[path] = archive
    except ArchiveError:
        _release(shipped)  # the ones taken before
        raise
    return shipped


def bring_back(job: Job, directory: str, returned: str) -> str | None:
    _release(job)
    return _clear_leftovers(job, directory, returned)


def _release(job: Job) -> None:
    with _lock:
        for archive in job.archives.values():
            if archive in _users:
                _users[archive] -= 1
                if _users[archive] == 0:
                    del _users[archive]
                    try:
                        os.unlink(archive)
                    except FileNotFoundError:
                        pass


def manifest(path: str) -> tuple[list, int]:
    """Every entry under path (relative name, type, size, modification time, mode, link target)
    in walk order, and the bytes of its files."""
    entries, total = [], 0
    for top, dirs, names in os.walk(path, onerror=_unreadable):
        dirs.sort()
        for name in sorted(dirs + names):
            full = os.path.join(top, name)
            try:
                info = os.lstat(full)
            except OSError as e:
                _unreadable(e)
            link = os.readlink(full) if stat.S_ISLNK(info.st_mode) else None
            entries.append([os.path.relpath(full, path), stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns,
                            stat.S_IMODE(info.st_mode), link])
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return entries, total


def _unreadable(error: OSError):
    raise ArchiveError(f"cannot read {error.filename} to send it through chirp: {error.strerror or error}")


def _archive(path: str, where: str) -> str | None:
    entries, total = manifest(path)
    if total > ARCHIVE_LIMIT or len(entries) < ARCHIVE_MIN_ENTRIES:
        return None
    digest = hashlib.sha256(json.dumps([path, entries]).encode(errors="surrogateescape")).hexdigest()[:40]
    archive = os.path.join(where, digest + ".tar")
    with _lock:
        if not os.path.exists(archive):
            os.makedirs(where, mode=0o700, exist_ok=True)
            _build(path, archive)
        _users[archive] = _users.get(archive, 0) + 1
    return archive


def _writable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """The step's copy is its own: writable by it (and directories enterable), as fetched files were."""
    if info.isdir():
        info.mode |= stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR
    elif info.isfile():
        info.mode |= stat.S_IWUSR | stat.S_IRUSR
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _build(path: str, archive: str) -> None:
    partial = f"{archive}.{os.getpid()}.{threading.get_ident()}.partial"
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(path, arcname=os.path.basename(path), filter=_writable)
        os.replace(partial, archive)
    except OSError as e:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise ArchiveError(f"cannot archive {path} to send it through chirp: {e.strerror or e}") from None
