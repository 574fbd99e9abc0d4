# Moving a job's workspace to the worker and its declared outputs back: one module per transfer
# mode (shared, htcondor, chirp), each with stage_in, stage_out, discard and leftovers; the
# submit side's halves are in scailfin_exec/transfers/. In every mode the step works on a private
# copy of its workspace and only its declared outputs come back, each file whole (renamed into
# place): a killed step leaves the old file or the new one, never part of one, and an output that
# is a symbolic link leaving the workspace is refused. Standard library only (worker side).

import importlib
import os
import re
import shutil
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from .. import procs
from ..jobspec import Bind, Job, inside, normalise, updated_in_place

MODES = ("shared", "htcondor", "chirp")  # the modules here, one per transfer mode


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
    copies: Dict[str, str] = {}  # submit-side path -> its copy on this worker (modes that copy)


def mode(name: str):
    """The worker half of a transfer mode (its module)."""
    if name not in MODES:
        raise StagingError("unknown transfer mode {!r}".format(name))
    return importlib.import_module("." + name, __name__)


def stage_in(job: Job, scratch: str, environ) -> Placement:
    started = time.monotonic()
    for bind in job.binds:
        if bind.on_worker and not os.path.exists(bind.source):
            raise StagingError("this step needs {} from the worker, which has none".format(bind.source))
    placement = mode(job.transfer).stage_in(job, scratch, environ)
    placement.record["seconds"] = round(time.monotonic() - started, 6)
    return placement


def stage_out(job: Job, placement: Placement, outbox: str) -> Dict:
    started = time.monotonic()
    record = {"method": job.transfer, "files": 0, "bytes": 0}
    record.update(mode(job.transfer).stage_out(job, placement, outbox))
    record["seconds"] = round(time.monotonic() - started, 6)
    return record


def discard(job: Job, placement: Placement) -> None:
    """Nothing comes back (the step failed to start, or was stopped)."""
    mode(job.transfer).discard(job, placement)


def remove_leftovers(job: Job) -> None:
    """What a killed attempt of the job may have left in its workspace (never a partial output,
    but litter). The submit side calls this once the job has ended, however it ended."""
    for path in mode(job.transfer).leftovers(job):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def temporary_name(name: str, job_id: str) -> str:
    """Where an output is written before it is renamed into place: named after the job, and
    after this attempt (an evicted attempt's leftover is not ours to reuse); '+' is not in a job
    id, so one job's mark is never the start of another's."""
    return ".{}{}+{}-{}".format(name[:100], temporary_mark(job_id), os.uname().nodename[:40], os.getpid())


def temporary_mark(job_id: str) -> str:
    return ".scailfin-" + job_id


def escaping_link(path: str, local_root: str, container_root: Optional[str] = None) -> Optional[str]:
    """If path (under local_root, which the step saw at container_root) is a symbolic link whose
    chain, followed as the step sees it, leaves the workspace, its target as written; else None.
    Every transfer mode refuses such an output."""
    if not os.path.islink(path):
        return None
    written, container_root = os.readlink(path), container_root or local_root
    pending, resolved, hops = os.path.relpath(path, local_root).split("/"), [], 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return written  # above the workspace
            resolved.pop()
            continue
        here = os.path.join(local_root, *resolved, part)
        if not os.path.islink(here):
            resolved.append(part)
            continue
        hops += 1
        target = os.readlink(here)
        if hops > 40:
            return written
        if target.startswith("/"):
            target = normalise(target)
            if not inside(target, container_root):
                return written
            resolved, target = [], target[len(container_root):]
        pending = target.split("/") + pending
    return None


def needed_paths(job: Job) -> List[str]:
    """What a step needs from the submit side: its workspace, what it binds, its inputs and
    stdin; a path inside another one (a directory) comes with it."""
    paths = {job.workspace} | {b.source for b in job.binds if not b.on_worker} | set(job.inputs) | \
        ({job.stdin} if job.stdin else set())
    return [p for p in sorted(paths) if not any(p != q and inside(p, q) for q in paths)]


def placed(job: Job, scratch: str, mapping: Dict[str, str], record: Dict) -> Placement:
    """The job's binds and stdio on this worker, given where each submit-side path was put."""
    if job.workspace not in mapping:
        raise StagingError("the workspace {} was not transferred".format(job.workspace))

    def here(path: str) -> str:
        for original in sorted(mapping, key=len, reverse=True):
            if inside(path, original):
                return mapping[original] + path[len(original):]
        return path

    binds = []
    for number, bind in enumerate(job.all_binds()):
        if bind.on_worker:
            binds.append(bind)
            continue
        source = here(bind.source)
        if source == bind.source and not os.path.exists(source):
            # not transferred (a scratch or temporary directory): an empty one of our own
            source = os.path.join(scratch, "scailfin-empty", str(number))
            os.makedirs(source, exist_ok=True)
        binds.append(bind._replace(source=source))
    std = [here(p) if p else None for p in (job.stdin, job.stdout, job.stderr)]
    return Placement(mapping[job.workspace], binds, std[0], std[1], std[2], record,
                     {path: here(path) for path in updated_in_place(job)})


def refuse_escaping(job: Job, local: str, workspace_here: str) -> None:
    target = escaping_link(local, workspace_here, job.workspace)
    if target is not None:
        raise StagingError("output {} is a symbolic link leaving the workspace (to {}): refused".format(
            job.workspace + local[len(workspace_here):], target))


def output_files(job: Job, workspace_here: str) -> List[Tuple[str, str]]:
    """(local path, path relative to the workspace) of every file and directory the declared
    outputs hold, parents first. Anything that would leave the workspace is refused: a
    symbolic link pointing out of it (a '..' or an absolute path elsewhere was refused with the
    job file)."""
    found = []

    def add(local: str) -> None:
        refuse_escaping(job, local, workspace_here)
        found.append((local, os.path.relpath(local, workspace_here)))

    for output in job.outputs:
        if not inside(output, job.workspace):
            continue  # updated in place: in_place_files
        start = os.path.join(workspace_here, os.path.relpath(output, job.workspace))
        if not os.path.lexists(start):
            continue
        for path in tree(start):
            if path != workspace_here:
                add(path)
    return sorted(set(found), key=lambda pair: pair[1])


def tree(start: str) -> List[str]:
    """start and, if it is a directory, every directory, file and link under it (links are not
    followed: a link to a directory is an entry, not a tree)."""
    if not os.path.isdir(start) or os.path.islink(start):
        return [start]
    found = []
    for directory, dirs, names in os.walk(start):
        found.append(directory)
        found += [os.path.join(directory, n) for n in sorted(names) + [d for d in sorted(dirs)
                                                                       if os.path.islink(os.path.join(directory, d))]]
    return found


def in_place_files(job: Job, placement: Placement) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """For each output the step updated in place (a writable bind's source outside the workspace,
    copied to this worker): the submit-side path, and (local path, path relative to the submit-side
    path's parent) of it and of everything under it, parents first. A symbolic link leaving it is
    refused, as one leaving the workspace is."""
    found = []
    for original in updated_in_place(job):
        local = placement.copies.get(original)
        if local is None or local == original or not os.path.lexists(local):
            continue  # bound where it is (shared mode): updated there already
        name, files = os.path.basename(original), []
        for path in tree(local):
            target = escaping_link(path, local, original)
            if target is not None:
                raise StagingError("{} is a symbolic link leaving {} (to {}): refused".format(
                    original + path[len(local):], original, target))
            files.append((path, name + path[len(local):]))
        found.append((original, sorted(files, key=lambda pair: pair[1])))
    return found


def quiet(out: procs.Output) -> str:
    """The useful part of a chirp tool's complaint (parrot warns about kernels and rseq)."""
    lines = [line for line in out.text.splitlines() if "rseq" not in line and "not been tested" not in line
             and "kernel" not in line.lower()]
    return " | ".join(lines[-3:]) or "no message"


def tar(args: List[str]) -> None:
    out = procs.run(["tar"] + args, timeout=24 * 3600)
    if out.returncode != 0:
        raise StagingError("tar {} failed: {}".format(" ".join(args[:3]), out.tail()))


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

