# The chirp transfer mode (the SCAILFIN paper's way), worker half: the shim fetches what the step
# needs through HTCondor's I/O proxy (parrot_run, or condor_chirp when parrot is missing; a
# directory as the one archive the submit side made of it, unpacked here), binds each copy at its
# original absolute path, and writes the declared outputs back, each under a temporary name then
# renamed. Standard library only (worker side).

import json
import os
import re
import shutil
import stat
import sys
import time
from typing import Dict, List, Tuple

from .. import procs
from ..jobspec import Job
from . import (Placement, StagingError, in_place_files, needed_paths, output_files, placed, quiet, tar,
               temporary_mark, temporary_name)

CHIRP_TIMEOUT_S = 3600  # one remote operation (a whole tree through parrot)
CHIRP_ATTEMPTS = 3  # with 2 s, then 4 s between them
CONDOR_CHIRP_MAX_BYTES = 2 ** 31 - 1  # condor_chirp holds a file in one buffer sized by a C int


def stage_in(job: Job, scratch: str, environ) -> Placement:
    """Fetch what the step needs: a directory the submit side archived (job.archives) as that one
    file, unpacked here; anything else entry by entry."""
    chirp = Chirp(scratch, environ)
    mapping = {path: os.path.join(scratch, "scailfin-in", str(number), os.path.basename(path))
               for number, path in enumerate(needed_paths(job))}
    wanted = {job.archives.get(path, path): local + ".tar" if path in job.archives else local
              for path, local in mapping.items()}
    _, size = chirp.fetch(wanted)
    for path in job.archives:
        if path in mapping:
            archive = mapping[path] + ".tar"
            tar(["-xf", archive, "-C", os.path.dirname(archive), "--no-same-owner"])
            os.unlink(archive)
            if not os.path.isdir(mapping[path]):
                raise StagingError("the archive of {} did not hold it".format(path))
    if job.archives:
        chirp.notes.append("1 directory fetched as one archive" if len(job.archives) == 1 else
                           "{} directories fetched as one archive each".format(len(job.archives)))
    files = sum(_count(local)[0] for local in mapping.values())
    return placed(job, scratch, mapping, {"method": "chirp ({})".format(chirp.method), "files": files,
                                          "bytes": size, "notes": chirp.notes})


def stage_out(job: Job, placement: Placement, outbox: str) -> Dict:
    chirp = Chirp(os.path.dirname(os.path.abspath(outbox)), dict(os.environ))
    files = output_files(job, placement.workspace)
    moved, size = chirp.put(placement.workspace, job.workspace, files, job.id)
    for original, updated in in_place_files(job, placement):  # writable binds' sources, where they are
        more = chirp.put(placement.copies[original], os.path.dirname(original), updated, job.id)
        moved, size = moved + more[0], size + more[1]
    return {"method": "chirp ({})".format(chirp.method), "notes": chirp.notes, "files": moved, "bytes": size}


def discard(job: Job, placement: Placement) -> None:
    pass  # the copy is in the job's scratch directory, which HTCondor removes


def leftovers(job: Job) -> List[str]:
    """Temporaries a killed or evicted attempt left beside the outputs they were to become."""
    mark, places, found = temporary_mark(job.id) + "+", set(), []
    for output in job.outputs:
        places.add(os.path.dirname(output))
        if os.path.isdir(output) and not os.path.islink(output):
            places.update(directory for directory, _, _ in os.walk(output))
    for directory in places:
        try:
            found += [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(".") and mark in n]
        except OSError:
            continue
    return found


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
            what, CHIRP_ATTEMPTS, self.method, out.returncode, quiet(out)))

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
        raise StagingError("listing {} failed {} times through condor_chirp: {}".format(remote, CHIRP_ATTEMPTS, quiet(out)))

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
