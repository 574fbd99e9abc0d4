# The htcondor transfer mode, worker half: HTCondor's file transfer put what the step needs in the
# job's scratch directory (job.staged says where; job.archives which are directories sent as one
# archive each, files arrive as they are); each
# is bound at its original absolute path, and the declared outputs go back as one outputs.tar, and
# each one updated in place outside the workspace as one in-place-N.tar (the submit half,
# scailfin_exec/transfers/htcondor.py, moves them into place). Standard library
# only (worker side).

import os
import tarfile
from typing import Dict, List

from ..jobspec import Job, inside
from . import Placement, StagingError, in_place_files, output_files, placed, tar

OUTPUTS_TAR = "outputs.tar"
IN_PLACE_TAR = "in-place-{}.tar"  # the job's outputs outside its workspace, numbered as updated_in_place()


def stage_in(job: Job, scratch: str, environ) -> Placement:
    return _place_transferred(job, scratch)


def stage_out(job: Job, placement: Placement, outbox: str) -> Dict:
    output_files(job, placement.workspace)  # refuses a link leaving the workspace
    record = pack_outputs(job, placement.workspace, os.path.join(outbox, OUTPUTS_TAR))
    for number, (original, files) in enumerate(in_place_files(job, placement)):
        path = os.path.join(outbox, IN_PLACE_TAR.format(number))
        with tarfile.open(path + ".tmp", "w", format=tarfile.PAX_FORMAT) as archive:
            for local, relative in files:
                archive.add(local, arcname=relative, recursive=False)
        os.replace(path + ".tmp", path)
        record["files"] += len(files)
        record["bytes"] += os.path.getsize(path)
    return record


def discard(job: Job, placement: Placement) -> None:
    pass  # the copy is in the job's scratch directory, which HTCondor removes


def leftovers(job: Job) -> List[str]:
    return []  # nothing is written into the workspace but by the submit side


def empty_outbox(outbox: str) -> None:
    """HTCondor brings the outbox back even when the shim failed early: leave an empty tar there."""
    path = os.path.join(outbox, OUTPUTS_TAR)
    if os.path.isdir(outbox) and not os.path.exists(path):
        tar(["-cf", path, "--files-from", "/dev/null"])


def _place_transferred(job: Job, scratch: str) -> Placement:
    """Find (and unpack) what HTCondor transferred; map each submit-side path to its copy."""
    mapping = {}
    files = size = 0
    for original, relative in sorted(job.staged.items()):
        local = os.path.normpath(os.path.join(scratch, relative))
        if not inside(local, scratch):
            raise StagingError("staged path {!r} leaves the job's scratch directory".format(relative))
        if not os.path.lexists(local):
            raise StagingError("{} was to be transferred as {} but is not in the scratch directory {}".format(
                original, relative, scratch))
        size += os.path.getsize(local)
        if original in job.archives:  # a directory, sent as one archive (never guessed from a name)
            unpacked = local + ".d"
            os.makedirs(unpacked, exist_ok=True)
            tar(["-xf", local, "-C", unpacked, "--no-same-owner"])
            os.unlink(local)
            local = os.path.join(unpacked, os.path.basename(original))
            files += sum(len(f) + len(d) for _, d, f in os.walk(local)) + 1
        else:
            files += 1
        mapping[original] = local
    return placed(job, scratch, mapping, {"method": "htcondor", "files": files, "bytes": size})


def pack_outputs(job: Job, workspace_here: str, tar_path: str) -> Dict:
    """The declared outputs (all of the workspace when they include it) into one tar."""
    members = []
    for output in job.outputs:
        relative = os.path.relpath(output, job.workspace)
        if inside(output, job.workspace) and os.path.lexists(os.path.join(workspace_here, relative)):
            members.append(relative)
    tmp = tar_path + ".tmp"
    if members:
        tar(["-cf", tmp, "-C", workspace_here, "--"] + members)
    else:
        tar(["-cf", tmp, "--files-from", "/dev/null"])
    os.replace(tmp, tar_path)
    return {"files": len(members), "bytes": os.path.getsize(tar_path)}
