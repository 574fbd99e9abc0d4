# Running short helper commands (version probes, image preparation) with a timeout, and the
# per-user state directory where the shim remembers what does not change between jobs.
# Standard library only (worker side).

import hashlib
import json
import os
import subprocess
from typing import Dict, List, NamedTuple, Optional

from . import disk


class Output(NamedTuple):
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return (self.stdout + self.stderr).strip()

    def tail(self, lines: int = 3) -> str:
        return " | ".join(self.text.splitlines()[-lines:])


_DEFAULT_ENV = None  # type: Optional[Dict[str, str]]


def default_environment(environ: Optional[Dict[str, str]]) -> None:
    """The environment run() gives a tool when the caller names none (the shim's, cleaned)."""
    global _DEFAULT_ENV
    _DEFAULT_ENV = dict(environ) if environ is not None else None


def run(argv: List[str], timeout: float = 30, env: Optional[dict] = None, stdin=None, cwd: Optional[str] = None,
        input: Optional[str] = None) -> Output:
    """Run argv (input: what its standard input reads, else stdin, else nothing); a missing
    program or a timeout is reported as a failed Output, never raised."""
    streams = {"input": input} if input is not None else {"stdin": stdin if stdin is not None else subprocess.DEVNULL}
    try:
        proc = subprocess.run(
            argv,
            **streams,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=env if env is not None else _DEFAULT_ENV,
            cwd=cwd,
            universal_newlines=True,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        return Output(124, "", "{} timed out after {:.0f} s".format(argv[0], timeout))
    except OSError as e:
        return Output(127, "", "{}: {}".format(argv[0], e.strerror or e))
    return Output(proc.returncode, proc.stdout, proc.stderr)


PYTHON_VARIABLES = ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONNOUSERSITE", "CONDA_PREFIX")


def without_python_environment(environ) -> Dict[str, str]:
    """environ for the tools the shim runs (runtimes, their image tools, transfer tools): without a
    Python environment that is the shim's own or the user's (a virtualenv's bin/ on PATH, its
    variables). Tools written in Python start with `#!/usr/bin/env python3` (Charliecloud's ch-image)
    and must get the system's Python with its modules, not the project's."""
    kept = [d for d in environ.get("PATH", "").split(os.pathsep)
            if d and not os.path.isfile(os.path.join(os.path.dirname(d.rstrip("/")) or "/", "pyvenv.cfg"))]
    cleaned = {k: v for k, v in environ.items() if k not in PYTHON_VARIABLES}
    cleaned["PATH"] = os.pathsep.join(kept) or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return cleaned


def state_dir(environ, *parts: str) -> str:
    """~/.cache/scailfin-exec/... (or $XDG_CACHE_HOME, or the job's scratch space)."""
    base = environ.get("XDG_CACHE_HOME")
    if not base and environ.get("HOME") and os.path.isdir(environ["HOME"]):
        base = os.path.join(environ["HOME"], ".cache")
    if not base:
        base = environ.get("_CONDOR_SCRATCH_DIR") or environ.get("TMPDIR") or "/tmp"
    return os.path.join(base, "scailfin-exec", *parts)


def version_output(exe: str, args: List[str], environ) -> Output:
    """`exe args` (a version probe), remembered while the executable file stays the same."""
    try:
        st = os.stat(exe)
    except OSError as e:
        return Output(127, "", "{}: {}".format(exe, e.strerror))
    identity = json.dumps([exe, args, st.st_ino, st.st_size, st.st_mtime_ns])
    path = os.path.join(state_dir(environ, "versions"), hashlib.sha256(identity.encode()).hexdigest()[:20] + ".json")
    try:
        with open(path) as f:
            return Output(*json.load(f))
    except (OSError, ValueError, TypeError):
        pass
    out = run([exe] + list(args), timeout=20, env=dict(environ))
    if out.returncode == 0:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            disk.write_whole(path, json.dumps(list(out)), 0o644)
        except OSError:
            pass
    return out
