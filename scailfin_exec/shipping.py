# Packs the worker shim (scailfin_exec/worker) into one zipapp that travels with every job:
# `python3 scailfin-shim-<hash>.pyz job.json` on any worker with Python >= 3.6.

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

WORKER_DIR = Path(__file__).parent / "worker"
# The zipapp's entry point. Python cannot cache compiled code inside a zip, so it would compile
# the shim on every job: unpack it once into a per-user cache (keyed by content) and import from
# there, where __pycache__ works. Any failure to do so just runs it from the zip.
_MAIN = """# scailfin-exec worker shim (zipapp entry point)
import os, sys
DIGEST = %r


def _unpacked(archive):
    import zipfile  # slow to import: only when unpacking
    for base in (os.environ.get("SCAILFIN_SHIM_CACHE"), os.environ.get("XDG_CACHE_HOME"),
                 os.path.join(os.path.expanduser("~"), ".cache")):
        if not base:
            continue
        target = os.path.join(base, "scailfin-exec", "shim", DIGEST)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = "%%s.tmp-%%d" %% (target, os.getpid())
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
            try:
                os.rename(tmp, target)
            except OSError:  # another job unpacked it first
                import shutil
                shutil.rmtree(tmp, ignore_errors=True)
            return target
        except OSError:
            continue
    return None


def _cached():
    for base in (os.environ.get("SCAILFIN_SHIM_CACHE"), os.environ.get("XDG_CACHE_HOME"),
                 os.path.join(os.path.expanduser("~"), ".cache")):
        if base:
            target = os.path.join(base, "scailfin-exec", "shim", DIGEST)
            if os.path.isfile(os.path.join(target, "scailfin_exec", "worker", "shim.py")):
                return target
    return None


_where = (_cached() or _unpacked(sys.path[0])) if os.path.isfile(sys.path[0]) else None
if _where:
    sys.path[0] = _where
from scailfin_exec.worker.shim import main
sys.exit(main())
"""
_PACKAGE_INIT = "# the worker shim's half of scailfin_exec: only the worker package travels\n"


def shim_sources() -> tuple[str, dict[str, bytes]]:
    """The zipapp's files, and a digest of their content."""
    files = {"scailfin_exec/__init__.py": _PACKAGE_INIT.encode()}
    for path in sorted(WORKER_DIR.rglob("*.py")):  # the worker package and its own packages
        if path.name != "__main__.py" or path.parent != WORKER_DIR:
            files[f"scailfin_exec/worker/{path.relative_to(WORKER_DIR).as_posix()}"] = path.read_bytes()
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in files.items())).hexdigest()[:12]
    files["__main__.py"] = (_MAIN % digest).encode()
    return digest, files


def build_shim(directory: str | os.PathLike) -> str:
    """Write the shim zipapp into directory (once per content) and return its path."""
    digest, files = shim_sources()
    target = Path(directory) / f"scailfin-shim-{digest}.pyz"
    if target.exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".shim-")
    with os.fdopen(fd, "wb") as raw:
        raw.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return str(target)


def shim_command(python: str, shim: str, job_file: str) -> list[str]:
    """How a worker runs the shim: -S skips site-packages (the shim needs only the standard
    library, and a worker's site may be slow or broken)."""
    return [python, "-S", shim, job_file]
