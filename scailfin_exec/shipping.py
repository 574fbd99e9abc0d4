# Packs the worker shim (scailfin_exec/worker) into one zipapp that travels with every job:
# `python3 scailfin-shim-<hash>.pyz job.json` on any worker with Python >= 3.6.

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

WORKER_DIR = Path(__file__).parent / "worker"
_MAIN = "# scailfin-exec worker shim (zipapp entry point)\nimport sys\nfrom scailfin_exec.worker.shim import main\nsys.exit(main())\n"
_PACKAGE_INIT = "# the worker shim's half of scailfin_exec: only the worker package travels\n"


def shim_sources() -> dict[str, bytes]:
    files = {"__main__.py": _MAIN.encode(), "scailfin_exec/__init__.py": _PACKAGE_INIT.encode()}
    for path in sorted(WORKER_DIR.glob("*.py")):
        if path.name != "__main__.py":
            files[f"scailfin_exec/worker/{path.name}"] = path.read_bytes()
    return files


def build_shim(directory: str | os.PathLike) -> str:
    """Write the shim zipapp into directory (once per content) and return its path."""
    files = shim_sources()
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in files.items())).hexdigest()[:12]
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
