# Running short helper commands (version probes, image preparation) with a timeout, and the
# per-user state directory where the shim remembers what does not change between jobs.
# Standard library only (worker side).

import hashlib
import json
import os
import subprocess
from typing import List, NamedTuple, Optional


class Output(NamedTuple):
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return (self.stdout + self.stderr).strip()

    def tail(self, lines: int = 3) -> str:
        return " | ".join(self.text.splitlines()[-lines:])


def run(argv: List[str], timeout: float = 30, env: Optional[dict] = None, stdin=None, cwd: Optional[str] = None) -> Output:
    """Run argv; a missing program or a timeout is reported as a failed Output, never raised."""
    try:
        proc = subprocess.run(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=env,
            cwd=cwd,
            universal_newlines=True,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        return Output(124, "", "{} timed out after {:.0f} s".format(argv[0], timeout))
    except OSError as e:
        return Output(127, "", "{}: {}".format(argv[0], e.strerror or e))
    return Output(proc.returncode, proc.stdout, proc.stderr)


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
            tmp = "{}.tmp-{}".format(path, os.getpid())
            with open(tmp, "w") as f:
                json.dump(list(out), f)
            os.replace(tmp, path)
        except OSError:
            pass
    return out
