# Moving a job's workspace to the worker and its declared outputs back, per transfer mode. In
# every mode the step works on a private copy of its workspace and only its declared outputs come
# back, each file whole (renamed into place): a killed step leaves the old file or the new one,
# never part of one, and an output that is a symbolic link leaving the workspace is refused.
# shared:   the workspace is visible at the same absolute path; the copy is made inside it (same
#           file system, so a file comes back by one rename), and what the step changed under its
#           declared outputs is moved back.
# htcondor: HTCondor's file transfer put what the step needs in the job's scratch directory
#           (job.staged says where: directories as .tar, files as they are); each is bound at
#           its original absolute path, and the declared outputs go back as one outputs.tar.
# chirp:    the shim fetches what the step needs through HTCondor's I/O proxy (parrot_run, or
#           condor_chirp when parrot is missing), binds each copy at its original absolute path,
#           and writes the declared outputs back, each under a temporary name then renamed.
# Standard library only (worker side).

import errno
import json
import os
import re
import shutil
import stat
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from . import procs
from .jobspec import Bind, Job, escaping_link, inside

OUTPUTS_TAR = "outputs.tar"
WORK_MARK = ".scailfin-work-"  # shared mode: the step's private copy, inside its workspace
CHIRP_TIMEOUT_S = 3600  # one remote operation (a whole tree through parrot)
CHIRP_ATTEMPTS = 3  # with 2 s, then 4 s between them
CONDOR_CHIRP_MAX_BYTES = 2 ** 31 - 1  # condor_chirp holds a file in one buffer sized by a C int


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
    for bind in job.binds:
        if bind.on_worker and not os.path.exists(bind.source):
            raise StagingError("this step needs {} from the worker, which has none".format(bind.source))
    if job.transfer == "shared":
        _check_visible(job)
        work = private_copy(job)
        placement = _placed(job, scratch, {job.workspace: work}, {"method": "shared", "files": 0, "bytes": 0})
    elif job.transfer == "htcondor":
        placement = _place_transferred(job, scratch)
    elif job.transfer == "chirp":
        chirp = Chirp(scratch, environ)
        mapping = {path: os.path.join(scratch, "scailfin-in", str(number), os.path.basename(path))
                   for number, path in enumerate(needed_paths(job))}
        files, size = chirp.fetch(mapping)
        placement = _placed(job, scratch, mapping, {"method": "chirp ({})".format(chirp.method), "files": files,
                                                    "bytes": size, "notes": chirp.notes})
    else:
        raise StagingError("unknown transfer mode {!r}".format(job.transfer))
    placement.record["seconds"] = round(time.monotonic() - started, 6)
    return placement


def stage_out(job: Job, placement: Placement, outbox: str) -> Dict:
    started = time.monotonic()
    record = {"method": job.transfer, "files": 0, "bytes": 0}
    if job.transfer == "shared":
        record["files"], record["bytes"] = write_back(job, placement.workspace)
    elif job.transfer == "htcondor":
        output_files(job, placement.workspace)  # refuses a link leaving the workspace
        record.update(pack_outputs(job, placement.workspace, os.path.join(outbox, OUTPUTS_TAR)))
    elif job.transfer == "chirp":
        chirp = Chirp(os.path.dirname(os.path.abspath(outbox)), dict(os.environ))
        files = output_files(job, placement.workspace)
        record.update(method="chirp ({})".format(chirp.method), notes=chirp.notes)
        record["files"], record["bytes"] = chirp.put(placement.workspace, job.workspace, files, job.id)
    record["seconds"] = round(time.monotonic() - started, 6)
    return record


def discard(job: Job, placement: Placement) -> None:
    """Nothing comes back (the step failed to start, or was stopped): drop the private copy."""
    if job.transfer == "shared":
        discard_private_copy(placement.workspace)


def empty_outbox(outbox: str) -> None:
    """HTCondor brings the outbox back even when the shim failed early: leave an empty tar there."""
    path = os.path.join(outbox, OUTPUTS_TAR)
    if os.path.isdir(outbox) and not os.path.exists(path):
        _tar(["-cf", path, "--files-from", "/dev/null"])


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
    return _placed(job, scratch, mapping, {"method": "htcondor", "files": files, "bytes": size})


def needed_paths(job: Job) -> List[str]:
    """What a step needs from the submit side: its workspace, what it binds, its inputs and
    stdin; a path inside another one (a directory) comes with it."""
    paths = {job.workspace} | {b.source for b in job.binds if not b.on_worker} | set(job.inputs) | \
        ({job.stdin} if job.stdin else set())
    return [p for p in sorted(paths) if not any(p != q and inside(p, q) for q in paths)]


def _placed(job: Job, scratch: str, mapping: Dict[str, str], record: Dict) -> Placement:
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
    return Placement(mapping[job.workspace], binds, std[0], std[1], std[2], record)


def _refuse_escaping(job: Job, local: str, workspace_here: str) -> None:
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
        _refuse_escaping(job, local, workspace_here)
        found.append((local, os.path.relpath(local, workspace_here)))

    for output in job.outputs:
        start = os.path.join(workspace_here, os.path.relpath(output, job.workspace))
        if not os.path.lexists(start):
            continue
        if os.path.isdir(start) and not os.path.islink(start):
            for directory, dirs, names in os.walk(start):
                if directory != workspace_here:
                    add(directory)
                for name in sorted(names) + [d for d in sorted(dirs) if os.path.islink(os.path.join(directory, d))]:
                    add(os.path.join(directory, name))
        else:
            add(start)
    return sorted(set(found), key=lambda pair: pair[1])


def work_name(job: Job) -> str:
    # '+' is not in a job id: one job's mark is never the start of another's
    return "{}{}+{}-{}".format(WORK_MARK, job.id, os.uname().nodename[:40], os.getpid())


def remove_leftovers(job: Job) -> None:
    """What a killed attempt of the job may have left in its workspace (never a partial output,
    but litter): its private copy (shared) or its temporaries beside the outputs (chirp). The
    submit side calls this once the job has ended, however it ended."""
    marks = (WORK_MARK + job.id + "+", ".scailfin-" + job.id + "+")
    places = {job.workspace}
    if job.transfer == "chirp":  # temporaries sit beside the outputs they become
        for output in job.outputs:
            places.add(os.path.dirname(output))
            if os.path.isdir(output) and not os.path.islink(output):
                places.update(directory for directory, _, _ in os.walk(output))
    for directory in places:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.startswith(marks[0]) or (name.startswith(".") and marks[1] in name):
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass


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
    wanted = [os.path.relpath(o, job.workspace) for o in job.outputs]

    def declared(relative):
        return any(w == "." or inside(relative, w) for w in wanted)
    changed = sorted(r for r, ident in after.items() if declared(r) and before.get(r) != ident)
    deleted = sorted((r for r in before if r not in after and declared(r)), reverse=True)
    for relative in changed:
        _refuse_escaping(job, os.path.join(work, relative), work)
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


class Chirp:
    """Files on the submit side, through HTCondor's I/O proxy: parrot_run when the worker has
    it, else condor_chirp (file by file, no larger than 2 GiB, and unable to create directories).
    Every remote operation has a timeout and is retried, with a growing pause."""

    def __init__(self, scratch: str, environ):
        config = environ.get("_CONDOR_CHIRP_CONFIG")
        if not config or not os.path.isfile(config) or not _wants_io_proxy(environ):
            raise StagingError("the HTCondor I/O proxy is not available to this job (no _CONDOR_CHIRP_CONFIG): "
                               "transfer: chirp needs the job submitted with +WantIOProxy = true")
        self.notes = []  # type: List[str]
        # parrot reads the chirp configuration only from its working directory
        self.workdir = os.path.join(scratch, "scailfin-chirp")
        os.makedirs(self.workdir, exist_ok=True)
        link = os.path.join(self.workdir, ".chirp.config")
        if not os.path.lexists(link):
            os.symlink(config, link)
        search = os.pathsep.join([environ.get("PATH", os.defpath), "/opt/cctools/bin", "/usr/libexec/condor"])
        configured = environ.get("SCAILFIN_PARROT")  # a site's own parrot_run
        if configured:
            self.parrot = configured if os.access(configured, os.X_OK) else None
            where = "SCAILFIN_PARROT={}".format(configured)
        else:
            self.parrot = shutil.which("parrot_run", path=search)
            where = "PATH or /opt/cctools/bin"
        self.condor_chirp = shutil.which("condor_chirp", path=search)
        if self.parrot:
            self.method = "parrot"
        elif self.condor_chirp:
            self.method = "condor_chirp"
            self.notes.append("no parrot_run on this worker ({}): fell back to condor_chirp".format(where))
        else:
            raise StagingError("neither parrot_run nor condor_chirp is on this worker")

    def _run(self, argv: List[str], what: str) -> procs.Output:
        for attempt in range(CHIRP_ATTEMPTS):
            out = procs.run(argv, timeout=CHIRP_TIMEOUT_S, env=dict(os.environ, PWD=self.workdir), cwd=self.workdir)
            if out.returncode == 0:
                return out
            if attempt + 1 < CHIRP_ATTEMPTS:
                time.sleep(2 * 2 ** attempt)
        raise StagingError("{} failed {} times through {} (last: exit {}: {})".format(
            what, CHIRP_ATTEMPTS, self.method, out.returncode, _quiet(out)))

    def _parrot(self, argv: List[str], what: str) -> procs.Output:
        # -f: a symbolic link on the submit side is a link here too; -Q: never ask the catalog server;
        # -b: a 4 MiB block size hint, which cp takes as its read size (fewer round trips)
        return self._run([self.parrot, "-f", "-Q", "-T", "60", "-b", str(4 << 20)] + argv, what)

    def fetch(self, wanted: Dict[str, str]) -> Tuple[int, int]:
        """Copy each submit-side file or tree to its local path (links kept); (files, bytes)."""
        for local in wanted.values():
            os.makedirs(os.path.dirname(local), exist_ok=True)
        if self.parrot:
            # one process under parrot, looking at each entry itself: GNU cp trusts the directory
            # listing's entry types, which parrot reports with links followed
            plan = [["/chirp/CONDOR" + remote, local] for remote, local in sorted(wanted.items())]
            self._python(_FETCH, plan, "fetching {} from the submit side".format(", ".join(sorted(wanted))))
        else:
            for remote, local in sorted(wanted.items()):
                self._fetch_each(remote, local)
        counts = [_count(local) for local in wanted.values()]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def _python(self, script: str, plan: list, what: str) -> None:
        path = os.path.join(self.workdir, "plan-{}.json".format(len(os.listdir(self.workdir))))
        with open(path, "w") as f:
            json.dump(plan, f)
        python = sys.executable or shutil.which("python3", path=os.environ.get("PATH") or "/usr/bin:/bin")
        self._parrot([python, "-S", "-c", script, path], what)

    def _fetch_each(self, remote: str, local: str) -> None:
        kind, size = self._stat(remote)
        if kind == "dir":
            os.makedirs(local, exist_ok=True)
            listing = self._listing(remote)
            for name in listing:
                if name not in (".", ".."):
                    self._fetch_each(remote.rstrip("/") + "/" + name, os.path.join(local, name))
            return
        if size > CONDOR_CHIRP_MAX_BYTES:
            raise StagingError("{} is {} bytes: condor_chirp cannot move a file over {} bytes (install parrot_run "
                               "on the workers, or use transfer: htcondor)".format(remote, size, CONDOR_CHIRP_MAX_BYTES))
        self._run([self.condor_chirp, "fetch", remote, local], "fetching " + remote)
        if os.path.getsize(local) != size:
            raise StagingError("{} arrived with {} bytes instead of {}".format(remote, os.path.getsize(local), size))

    def _listing(self, remote: str) -> List[str]:
        # condor_chirp getdir exits with the listing's length, not 0: success is no complaint
        for attempt in range(CHIRP_ATTEMPTS):
            out = procs.run([self.condor_chirp, "getdir", remote], timeout=CHIRP_TIMEOUT_S, cwd=self.workdir)
            if not out.stderr.strip() and out.returncode >= 0:
                return [name for name in out.stdout.splitlines() if name]
            if attempt + 1 < CHIRP_ATTEMPTS:
                time.sleep(2 * 2 ** attempt)
        raise StagingError("listing {} failed {} times through condor_chirp: {}".format(remote, CHIRP_ATTEMPTS, _quiet(out)))

    def _stat(self, remote: str) -> Tuple[str, int]:
        fields = self._run([self.condor_chirp, "stat", remote], "looking at " + remote).stdout
        values = dict(re.findall(r"(\w+):\s*(-?\d+)", fields))
        mode, size = int(values.get("mode", "0")), int(values.get("size", "0"))
        return ("dir" if stat.S_ISDIR(mode) else "file"), size

    def put(self, local_root: str, remote_root: str, files: List[Tuple[str, str]], tag: str) -> Tuple[int, int]:
        """Write files back under remote_root: each to a temporary name, then renamed, so a
        killed or evicted job leaves the old file or none, never a partial one."""
        size = sum(os.lstat(local).st_size for local, _ in files if not os.path.isdir(local))
        if not files:
            return 0, 0
        if self.parrot:
            # one process under parrot does it all (a process per file would cost more than the copy)
            plan = []
            for local, relative in files:
                final = "/chirp/CONDOR" + os.path.join(remote_root, relative)
                kind = "link" if os.path.islink(local) else "dir" if os.path.isdir(local) else "file"
                plan.append([local, final, os.path.join(os.path.dirname(final), temporary_name(os.path.basename(final), tag)), kind])
            self._python(_WRITE_BACK, plan, "writing {} outputs back".format(len(files)))
        else:
            for local, relative in files:
                if os.path.islink(local):
                    raise StagingError("condor_chirp cannot write back the symbolic link {}".format(relative))
                final = os.path.join(remote_root, relative)
                if os.path.isdir(local):
                    if self._stat(final)[0] != "dir":
                        raise StagingError("condor_chirp cannot create the directory {} on the submit side".format(final))
                    continue
                temporary = os.path.join(os.path.dirname(final), temporary_name(os.path.basename(final), tag))
                mode = "{:o}".format(stat.S_IMODE(os.stat(local).st_mode))
                self._run([self.condor_chirp, "put", "-perm", mode, local, temporary], "writing {} back".format(relative))
                # condor_chirp has no rename: link the whole file in place of the old one
                procs.run([self.condor_chirp, "remove", final], timeout=CHIRP_TIMEOUT_S, cwd=self.workdir)
                self._run([self.condor_chirp, "link", temporary, final], "renaming {} into place".format(relative))
                self._run([self.condor_chirp, "remove", temporary], "removing the temporary of " + relative)
        return len([f for f in files if not os.path.isdir(f[0]) or os.path.islink(f[0])]), size


def _wants_io_proxy(environ) -> bool:
    """HTCondor gives every job a chirp configuration, but file access only with WantIOProxy."""
    job_ad = environ.get("_CONDOR_JOB_AD")
    if not job_ad or not os.path.isfile(job_ad):
        return True  # not an HTCondor job ad to ask: let the first transfer say
    with open(job_ad, errors="replace") as f:
        return any(re.match(r"(?i)^\s*WantIOProxy\s*=\s*true\s*$", line) for line in f)


def temporary_name(name: str, job_id: str) -> str:
    """Where an output is written before it is renamed into place: named after the job, and
    after this attempt (an evicted attempt's leftover is not ours to reuse)."""
    return ".{}.scailfin-{}+{}-{}".format(name[:100], job_id, os.uname().nodename[:40], os.getpid())


# Run under parrot, where /chirp/CONDOR/... is the submit side: each tree copied entry by entry
# (what each entry is comes from lstat; links stay links; permissions kept).
_FETCH = """
import json, os, shutil, stat, subprocess, sys
def copyfile(source, target, size):
    # parrot moves large files fastest through cp's own reads; small ones in-process
    if size > (8 << 20):
        subprocess.check_call(["cp", source, target])
    else:
        shutil.copyfile(source, target)
def copy(source, target):
    info = os.lstat(source)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISDIR(info.st_mode):
        os.mkdir(target)
        for name in os.listdir(source):
            copy(os.path.join(source, name), os.path.join(target, name))
        os.chmod(target, stat.S_IMODE(info.st_mode) | stat.S_IWUSR | stat.S_IXUSR)
    else:
        copyfile(source, target, info.st_size)
        os.chmod(target, stat.S_IMODE(info.st_mode) | stat.S_IWUSR)
for source, target in json.load(open(sys.argv[1])):
    if os.path.isdir(target) and not os.path.islink(target):  # an earlier try's: start again
        shutil.rmtree(target)
    elif os.path.lexists(target):
        os.unlink(target)
    copy(source, target)
"""

# Run under parrot, where /chirp/CONDOR/... is the submit side: each file to its temporary name,
# then renamed into place (a link recreated as a link, a directory created).
_WRITE_BACK = """
import json, os, shutil, subprocess, sys
for local, final, temporary, kind in json.load(open(sys.argv[1])):
    if kind == "dir":
        os.makedirs(final, exist_ok=True)
        continue
    os.makedirs(os.path.dirname(final), exist_ok=True)
    if kind == "link":
        os.symlink(os.readlink(local), temporary)
    else:
        if os.path.getsize(local) > (8 << 20):  # parrot moves large files fastest through cp
            subprocess.check_call(["cp", local, temporary])
        else:
            shutil.copyfile(local, temporary)
        shutil.copymode(local, temporary)
    os.replace(temporary, final)
"""


def _count(path: str) -> Tuple[int, int]:
    if not os.path.isdir(path) or os.path.islink(path):
        return 1, os.lstat(path).st_size
    files = size = 0
    for directory, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(directory, name)).st_size
    return files, size


def _quiet(out: procs.Output) -> str:
    """The useful part of a chirp tool's complaint (parrot warns about kernels and rseq)."""
    lines = [line for line in out.text.splitlines() if "rseq" not in line and "not been tested" not in line
             and "kernel" not in line.lower()]
    return " | ".join(lines[-3:]) or "no message"


def _tar(args: List[str]) -> None:
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

