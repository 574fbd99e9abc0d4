# The htcondor transfer mode, submit half: HTCondor's file transfer carries only what the step
# needs (its workspace and each bind source: directories as one .tar each, files as they are);
# the worker half (scailfin_exec/worker/transfers/htcondor.py) binds each copy at its original
# path and packs the declared outputs into outputs.tar, which is moved into the workspace here,
# one rename per file.

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from ..job import Job
from ..worker.transfers import escaping_link, needed_paths
from ..worker.jobspec import updated_in_place
from ..worker.transfers.htcondor import IN_PLACE_TAR, OUTPUTS_TAR

IO_PROXY = False
SEND = "send"  # in the job's directory: what travels that is not a plain file of its own


def plain_path(path: str) -> bool:
    """Whether transfer_input_files can carry path as it is (a comma-separated list whose
    values are expanded)."""
    return all(c.isalnum() or c in "/_.+-@%=" for c in path)


def ship(job: Job, directory: str, taken: frozenset = frozenset()) -> Job:
    """The job, with what the step needs ready for HTCondor's file transfer in directory:
    job.staged says where each submit-side path lands, relative to the job's scratch directory.

    Files are listed as they are (HTCondor reads them itself, and holds the job saying why when it
    cannot), or, when two share a name (or one of taken, the scheduler's own names) or a path has
    characters the file list cannot carry, through a link of a plain name in send/N/ (the
    transfer follows links to files). Directories travel as send/N.tar: HTCondor cannot follow
    links to directories, and one archive moves many small files faster than the files themselves;
    job.archives names them, so that the worker unpacks those and no file of the step's own."""
    send = os.path.join(directory, SEND)  # (the job's directory is made when it first needs one: private)
    staged, archives, taken = {}, {}, set(taken)
    for number, path in enumerate(needed_paths(job)):
        name = os.path.basename(path)
        if os.path.isdir(path):
            _private(directory, send)
            archives[path] = os.path.join(send, f"{number}.tar")
            subprocess.run(["tar", "-cf", archives[path], "-C", os.path.dirname(path) or "/", name],
                           check=True, capture_output=True)
            staged[path] = f"{SEND}/{number}.tar"
        elif name not in taken and plain_path(path) and not name.startswith("scailfin-shim-"):
            taken.add(name)
            staged[path] = name  # listed in transfer_input_files as it is
        else:  # through a link of a plain name (the transfer follows links to files)
            _private(directory, send, os.path.join(send, str(number)))
            os.symlink(path, os.path.join(send, str(number), "file"))
            staged[path] = f"send/{number}/file"
    return job._replace(staged=staged, archives=archives)


def _private(*directories: str) -> None:
    for directory in directories:
        os.makedirs(directory, 0o700, exist_ok=True)


def inputs(job: Job, directory: str) -> list[str]:
    """What HTCondor must carry for the step: the send/ directory (in the job's directory), and the
    files listed as they are."""
    direct = [path for path, relative in sorted(job.staged.items()) if "/" not in relative]
    sent = any(r.startswith(SEND + "/") for r in job.staged.values())
    return ([os.path.join(directory, SEND)] if sent else []) + direct


def bring_back(job: Job, directory: str, returned: str) -> str | None:
    """Move the outputs HTCondor brought back (returned/outputs.tar) into the workspace, and each
    one updated in place (returned/in-place-N.tar) where it was; drop what was sent; the error, if
    the outputs could not be moved."""
    places = [(os.path.join(returned, OUTPUTS_TAR), job.workspace)] + [
        (os.path.join(returned, IN_PLACE_TAR.format(n)), os.path.dirname(p)) for n, p in enumerate(updated_in_place(job))]
    try:
        for archive, target in places:
            if os.path.exists(archive):
                _merge_outputs(archive, target)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return f"outputs could not be brought back into {target}: {e}"
    finally:
        shutil.rmtree(os.path.join(directory, SEND), ignore_errors=True)
    return None


def _merge_outputs(archive: str, workspace: str) -> None:
    """Unpack the step's outputs beside the workspace, then move each file into place: a file
    is either the old one or the whole new one, never a partial copy."""
    unpacked = tempfile.mkdtemp(prefix=".scailfin-outputs-", dir=workspace)
    try:
        subprocess.run(["tar", "-xf", archive, "-C", unpacked, "--no-same-owner"], check=True, capture_output=True)
        for directory, dirs, names in os.walk(unpacked):  # the worker refuses these already: so do we
            for name in dirs + names:
                target = escaping_link(os.path.join(directory, name), unpacked, workspace)
                if target is not None:
                    raise ValueError(f"output {os.path.relpath(os.path.join(directory, name), unpacked)} is a "
                                         f"symbolic link leaving the workspace (to {target}): refused")
        _move_into(unpacked, workspace, skip=os.path.basename(unpacked))
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _move_into(source: str, target: str, skip: str | None = None) -> None:
    for name in os.listdir(source):
        if name == skip:
            continue
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if os.path.isdir(src) and not os.path.islink(src) and os.path.isdir(dst) and not os.path.islink(dst):
            _move_into(src, dst)
            continue
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        os.replace(src, dst)
