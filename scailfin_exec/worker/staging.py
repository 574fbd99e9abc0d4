# Moving a job's workspace to the worker and its declared outputs back, per transfer mode.
# shared: the workspace is already visible at the same absolute path; we only check that it is.
# Standard library only (worker side).

import os
import re
import shutil
import time
from typing import Dict, List

from . import procs
from .jobspec import Job


class StagingError(Exception):
    """The workspace or an input is not where the transfer mode says it should be."""


def stage_in(job: Job, environ) -> Dict:
    started = time.monotonic()
    if job.transfer == "shared":
        _check_visible(job)
    else:
        raise StagingError("transfer mode {!r} is not supported by this shim yet".format(job.transfer))
    return {"method": job.transfer, "files": 0, "bytes": 0, "seconds": round(time.monotonic() - started, 6)}


def stage_out(job: Job, environ) -> Dict:
    started = time.monotonic()
    return {"method": job.transfer, "files": 0, "bytes": 0, "seconds": round(time.monotonic() - started, 6)}


def _check_visible(job: Job) -> None:
    hint = " (transfer: shared assumes this worker sees the submit side's file system at the same paths)"
    if not os.path.isdir(job.workspace):
        raise StagingError("workspace {} is not a directory on this worker{}".format(job.workspace, hint))
    mounted = any(_inside(job.cwd, b.target) for b in job.binds)  # the runtime mounts it there
    if not mounted and not os.path.isdir(job.cwd):
        raise StagingError("working directory {} is not a directory on this worker{}".format(job.cwd, hint))
    for bind in job.binds:
        if not os.path.exists(bind.source):
            raise StagingError("bind source {} does not exist on this worker{}".format(bind.source, hint))
    for path in job.inputs + [p for p in (job.stdin,) if p]:
        if not os.path.exists(path):
            raise StagingError("input {} does not exist on this worker{}".format(path, hint))


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


# Tools the transfer modes use on a worker: (program, version arguments, extra places to look).
TRANSFER_TOOLS = {
    "parrot_run": (["-v"], ["/opt/cctools/bin"]),
    "chirp": (["-v"], ["/opt/cctools/bin"]),
    "condor_chirp": (None, ["/usr/libexec/condor"]),
}


def detect_transfer_tools(environ) -> List[str]:
    """One line per tool: where it is and its version, or why it is not usable."""
    lines = []
    for program, (version_args, extra) in TRANSFER_TOOLS.items():
        search = os.pathsep.join([environ.get("PATH", os.defpath)] + extra)
        path = shutil.which(program, path=search)
        if path is None:
            lines.append("{}: not on PATH or in {}".format(program, ", ".join(extra)))
            continue
        version = ""
        if version_args:
            out = procs.run([path] + version_args, timeout=20)
            match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out.text)
            version = match.group(1) if match else "(version unknown)"
        lines.append("{}: found {} ({})".format(program, version, path).replace("found  (", "found ("))
    return lines
