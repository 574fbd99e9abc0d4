# Moving a job's workspace to the worker and its declared outputs back, per transfer mode.
# shared:   the workspace is visible at the same absolute path; we only check that it is.
# htcondor: HTCondor's file transfer put what the step needs in the job's scratch directory
#           (job.staged says where: directories as .tar, files as they are); each is bound at
#           its original absolute path, and the declared outputs go back as one outputs.tar.
# Standard library only (worker side).

import os
import re
import shutil
import time
from typing import Dict, List, NamedTuple, Optional

from . import procs
from .jobspec import Bind, Job

OUTPUTS_TAR = "outputs.tar"


class StagingError(Exception):
    """The workspace or an input is not where the transfer mode says it should be."""


class Placement(NamedTuple):
    """Where the job's files are on this worker."""
    workspace: str
    binds: List[Bind]  # sources on this worker, targets as the step expects them
    stdin: Optional[str]
    stdout: Optional[str]
    stderr: Optional[str]
    record: Dict


def stage_in(job: Job, scratch: str, environ) -> Placement:
    started = time.monotonic()
    if job.transfer == "shared":
        _check_visible(job)
        placement = Placement(job.workspace, job.all_binds(), job.stdin, job.stdout, job.stderr,
                              {"method": "shared", "files": 0, "bytes": 0})
    elif job.transfer == "htcondor":
        placement = _place_transferred(job, scratch)
    else:
        raise StagingError("transfer mode {!r} is not supported by this shim yet".format(job.transfer))
    placement.record["seconds"] = round(time.monotonic() - started, 6)
    return placement


def stage_out(job: Job, placement: Placement, outbox: str) -> Dict:
    started = time.monotonic()
    record = {"method": job.transfer, "files": 0, "bytes": 0}
    if job.transfer == "htcondor":
        record.update(pack_outputs(job, placement.workspace, os.path.join(outbox, OUTPUTS_TAR)))
    record["seconds"] = round(time.monotonic() - started, 6)
    return record


def empty_outbox(outbox: str) -> None:
    """HTCondor brings the outbox back even when the shim failed early: leave an empty tar there."""
    path = os.path.join(outbox, OUTPUTS_TAR)
    if os.path.isdir(outbox) and not os.path.exists(path):
        _tar(["-cf", path, "--files-from", "/dev/null"])


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


def _place_transferred(job: Job, scratch: str) -> Placement:
    """Find (and unpack) what HTCondor transferred; map each submit-side path to its copy."""
    mapping = {}
    files = size = 0
    for original, relative in sorted(job.staged.items()):
        local = os.path.normpath(os.path.join(scratch, relative))
        if not _inside(local, scratch):
            raise StagingError("staged path {!r} leaves the job's scratch directory".format(relative))
        if not os.path.lexists(local):
            raise StagingError("{} was to be transferred as {} but is not in the scratch directory {}".format(
                original, relative, scratch))
        size += os.path.getsize(local)
        if relative.endswith(".tar"):
            unpacked = local[:-len(".tar")]
            os.makedirs(unpacked, exist_ok=True)
            _tar(["-xf", local, "-C", unpacked, "--no-same-owner"])
            os.unlink(local)
            local = os.path.join(unpacked, os.path.basename(original))
            files += sum(len(f) + len(d) for _, d, f in os.walk(local)) + 1
        else:
            files += 1
        mapping[original] = local
    if job.workspace not in mapping:
        raise StagingError("the workspace {} was not transferred".format(job.workspace))

    def here(path: str) -> str:
        for original in sorted(mapping, key=len, reverse=True):
            if _inside(path, original):
                return mapping[original] + path[len(original):]
        return path

    binds = []
    for number, bind in enumerate(job.all_binds()):
        source = here(bind.source)
        if source == bind.source and not os.path.exists(source):
            # not transferred (a scratch or temporary directory): an empty one of our own
            source = os.path.join(scratch, "scailfin-empty", str(number))
            os.makedirs(source, exist_ok=True)
        binds.append(Bind(source, bind.target, bind.writable))
    std = [here(p) if p else None for p in (job.stdin, job.stdout, job.stderr)]
    return Placement(mapping[job.workspace], binds, std[0], std[1], std[2],
                     {"method": "htcondor", "files": files, "bytes": size})


def pack_outputs(job: Job, workspace_here: str, tar_path: str) -> Dict:
    """The declared outputs (all of the workspace when they include it) into one tar."""
    members = []
    for output in job.outputs:
        relative = os.path.relpath(output, job.workspace)
        if os.path.lexists(os.path.join(workspace_here, relative)):
            members.append(relative)
    tmp = tar_path + ".tmp"
    if members:
        _tar(["-cf", tmp, "-C", workspace_here, "--"] + members)
    else:
        _tar(["-cf", tmp, "--files-from", "/dev/null"])
    os.replace(tmp, tar_path)
    return {"files": len(members), "bytes": os.path.getsize(tar_path)}


def _tar(args: List[str]) -> None:
    out = procs.run(["tar"] + args, timeout=24 * 3600)
    if out.returncode != 0:
        raise StagingError("tar {} failed: {}".format(" ".join(args[:3]), out.tail()))


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
            version = match.group(1) + " " if match else "(version unknown) "
        lines.append("{}: found {}({})".format(program, version, path))
    return lines

