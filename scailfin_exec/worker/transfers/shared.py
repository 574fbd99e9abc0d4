# The shared transfer mode: the worker sees the workspace at the same absolute path. The step works
# on a private copy made inside it (same file system, so a file comes back by one rename); when it
# ends, what it changed under its declared outputs is moved into the workspace, judged against a
# manifest of the copy (what another step changed meanwhile is left alone), and the copy goes.
# Standard library only (worker side).

import errno
import json
import os
import shutil
import stat
from typing import Dict, List, Tuple

from .. import procs
from ..jobspec import Job, inside
from . import Placement, StagingError, placed, refuse_escaping, temporary_name

WORK_MARK = ".scailfin-work-"  # the step's private copy, inside its workspace


def stage_in(job: Job, scratch: str, environ) -> Placement:
    _check_visible(job)
    return placed(job, scratch, {job.workspace: private_copy(job)}, {"method": "shared", "files": 0, "bytes": 0})


def stage_out(job: Job, placement: Placement, outbox: str) -> Dict:
    files, size = write_back(job, placement.workspace)
    return {"files": files, "bytes": size}


def discard(job: Job, placement: Placement) -> None:
    discard_private_copy(placement.workspace)


def leftovers(job: Job) -> List[str]:
    """A killed attempt's private copy (and its manifest)."""
    mark = WORK_MARK + job.id + "+"
    try:
        return [os.path.join(job.workspace, n) for n in os.listdir(job.workspace) if n.startswith(mark)]
    except OSError:
        return []


def _check_visible(job: Job) -> None:
    hint = " (transfer: shared assumes this worker sees the submit side's file system at the same paths)"
    if not os.path.isdir(job.workspace):
        raise StagingError("workspace {} is not a directory on this worker{}".format(job.workspace, hint))
    mounted = any(inside(job.cwd, b.target) for b in job.binds)  # the runtime mounts it there
    if not mounted and not os.path.isdir(job.cwd):
        raise StagingError("working directory {} is not a directory on this worker{}".format(job.cwd, hint))
    for bind in job.binds:
        if not os.path.exists(bind.source):
            raise StagingError("bind source {} does not exist on this worker{}".format(bind.source, hint))
    for path in job.inputs + [p for p in (job.stdin,) if p]:
        if not os.path.exists(path):
            raise StagingError("input {} does not exist on this worker{}".format(path, hint))


def work_name(job: Job) -> str:
    # '+' is not in a job id: one job's mark is never the start of another's
    return "{}{}+{}-{}".format(WORK_MARK, job.id, os.uname().nodename[:40], os.getpid())


def private_copy(job: Job) -> str:
    """shared mode: a copy of the workspace inside it, which the step gets at the workspace's
    path. Copies share storage where the file system can (cp --reflink=auto). What the copy held
    is remembered (manifest), so that only what the step changed goes back."""
    work = os.path.join(job.workspace, work_name(job))
    try:
        os.mkdir(work, stat.S_IMODE(os.stat(job.workspace).st_mode) | stat.S_IRWXU)
        entries = [os.path.join(job.workspace, n) for n in sorted(os.listdir(job.workspace)) if not n.startswith(WORK_MARK)]
        cp = shutil.which("cp", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin"]))
        if entries and cp:
            copied = procs.run([cp, "-a", "--reflink=auto", "--"] + entries + [work], timeout=24 * 3600)
            if copied.returncode != 0:
                raise StagingError("copying the workspace for the step failed: {}".format(copied.tail()))
        for entry in entries if not cp else ():
            target = os.path.join(work, os.path.basename(entry))
            if os.path.isdir(entry) and not os.path.islink(entry):
                shutil.copytree(entry, target, symlinks=True)
            else:
                shutil.copy2(entry, target, follow_symlinks=False)
        with open(os.path.join(work + ".manifest"), "w") as f:
            json.dump(_manifest(work), f)
    except OSError as e:
        shutil.rmtree(work, ignore_errors=True)
        raise StagingError("cannot make the step's private copy of its workspace {}: {}".format(
            job.workspace, e.strerror or e))
    return work


def _identity(info: os.stat_result) -> List[int]:
    return [info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def _manifest(root: str) -> Dict[str, List[int]]:
    found = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = _identity(os.lstat(path))
    return found


def write_back(job: Job, work: str) -> Tuple[int, int]:
    """shared mode: move what the step changed under its declared outputs from its private copy
    into the workspace, each file by one rename (a reader sees the old file or the new one), and
    remove what it deleted there; then drop the copy. A link leaving the workspace refuses all of it."""
    with open(work + ".manifest") as f:
        before = json.load(f)
    after = _manifest(work)
    wanted = [os.path.relpath(o, job.workspace) for o in job.outputs if inside(o, job.workspace)]

    def declared(relative):
        return any(w == "." or inside(relative, w) for w in wanted)
    changed = sorted(r for r, ident in after.items() if declared(r) and before.get(r) != ident)
    deleted = sorted((r for r in before if r not in after and declared(r)), reverse=True)
    for relative in changed:
        refuse_escaping(job, os.path.join(work, relative), work)
    files = size = 0
    for relative in changed:  # parents first (sorted), so a new directory exists before its files
        source, target = os.path.join(work, relative), os.path.join(job.workspace, relative)
        if stat.S_ISDIR(after[relative][0]):
            if os.path.islink(target) or (os.path.lexists(target) and not os.path.isdir(target)):
                os.unlink(target)
            os.makedirs(target, exist_ok=True)
            continue
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        _move(source, target, job.id)
        files, size = files + 1, size + after[relative][1]
    for relative in deleted:  # children first
        target = os.path.join(job.workspace, relative)
        try:
            if os.path.isdir(target) and not os.path.islink(target):
                os.rmdir(target)  # only if the step emptied it and nobody filled it since
            else:
                os.unlink(target)
        except OSError:
            pass
    discard_private_copy(work)
    return files, size


def _move(source: str, target: str, job_id: str) -> None:
    try:
        os.replace(source, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise StagingError("cannot move {} into place: {}".format(target, e.strerror))
        temporary = os.path.join(os.path.dirname(target), temporary_name(os.path.basename(target), job_id))
        if os.path.islink(source):
            os.symlink(os.readlink(source), temporary)
        else:
            shutil.copy2(source, temporary)
        os.replace(temporary, target)


def discard_private_copy(work: str) -> None:
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.unlink(work + ".manifest")
    except OSError:
        pass
