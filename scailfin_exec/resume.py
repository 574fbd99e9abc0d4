# Re-runs that skip finished steps: a step's key (a hash of what decides its result and of nothing
# that changes from run to run: no per-run path, no scheduler, no timestamp) and the cache of
# finished steps in cwltool's --cachedir layout, which every front end shares:
#
#     CACHEDIR/KEY/          the step's outputs, as the step left them
#     CACHEDIR/KEY.status    "success" once they are whole (written last), else the step's status;
#                            locked shared while a run looks, exclusive while a run writes KEY/
#     CACHEDIR/KEY.run       where the entry came from (workflow, run directory, job, host, time)
#
# A step killed half-way leaves no "success" (the status is written only after its outputs were
# collected), so a later run takes the entry over and runs the step again.

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from .worker.disk import write_whole

KEY_FORMAT = 1  # changes when what goes into a key changes: older entries are then missed, not misread
SUCCESS = "success"


def step_key(parts: dict[str, Any]) -> str:
    """The key of a step described by parts (JSON-able, any order): 32 hex digits, the length of
    cwltool's own keys."""
    text = json.dumps({"scailfin-step-key": KEY_FORMAT, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_identity(path: str) -> str:
    """A file's content identity, cwltool's checksum form (sha1$HEX)."""
    digest = hashlib.sha1()  # noqa: S324  (cwltool's checksum: the same value it puts in File objects)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha1$" + digest.hexdigest()


def tree_identity(path: str) -> list:
    """A directory's content identity: every entry's relative path with its file's identity, its
    link's target, or "dir" (names and contents; not times, owners or modes)."""
    entries = []
    for top, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(top, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                entries.append([rel, "link", os.readlink(full)])
            elif os.path.isdir(full):
                entries.append([rel, "dir"])
            else:
                entries.append([rel, file_identity(full)])
    return entries


@dataclass
class Origin:
    """Where a cache entry came from: shown for a step taken from the cache."""
    workflow: str
    run_dir: str  # "" for a run whose directory was temporary
    job_id: str
    host: str
    finished: float

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.finished))
        kept = f", run directory {self.run_dir}" if self.run_dir else ""
        return f"the {self.workflow} run on {self.host} that ended it at {when} (job {self.job_id}{kept})"


class Entry:
    """One key's place in a cache directory, looked at under a shared lock on its status file
    (held until finish() or close()): finished says whether its outputs are whole."""

    def __init__(self, cachedir: str, key: str):
        os.makedirs(cachedir, exist_ok=True)
        self.key = key
        self.path = os.path.join(cachedir, key)
        self._status = open(self.path + ".status", "a+", encoding="utf-8")  # noqa: SIM115  (held: the lock)
        fcntl.flock(self._status, fcntl.LOCK_SH)

    @property
    def finished(self) -> bool:
        self._status.seek(0)
        return self._status.read() == SUCCESS and os.path.isdir(self.path)

    def origin(self) -> Origin | None:
        try:
            with open(self.path + ".run", encoding="utf-8") as f:
                return Origin(**json.load(f))
        except (OSError, ValueError, TypeError):
            return None

    def claim(self) -> bool:
        """Take the entry to write it (an exclusive lock): its directory is emptied. False if
        another run finished it while this one waited for the lock (then it is a hit after all)."""
        fcntl.flock(self._status, fcntl.LOCK_EX)
        if self.finished:
            fcntl.flock(self._status, fcntl.LOCK_SH)
            return False
        for stale in (self.path, self.path + ".run"):
            if os.path.isdir(stale):
                shutil.rmtree(stale)
            elif os.path.lexists(stale):
                os.unlink(stale)
        os.makedirs(self.path)
        return True

    def finish(self, status: str, origin: Origin | None = None) -> None:
        """The step ended with status (cwltool's: "success", "permanentFail", ...), its outputs
        collected: say where it came from, then (last) its status; release the lock."""
        try:
            if status == SUCCESS and origin is not None:
                write_whole(self.path + ".run", json.dumps(asdict(origin)), 0o644)
            self._status.seek(0)
            self._status.truncate()
            self._status.write(status)
            self._status.flush()
            os.fsync(self._status.fileno())
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            self._status.truncate(0)  # a full disk: no entry rather than a half-written one
        finally:
            self.close()

    def close(self) -> None:
        if not self._status.closed:
            self._status.close()  # releases the lock


def origin_here(workflow: str, run_dir: str, job_id: str) -> Origin:
    return Origin(workflow, run_dir, job_id, socket.gethostname(), time.time())
