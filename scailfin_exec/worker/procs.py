# Running short helper commands (version probes, image preparation) with a timeout.
# Standard library only (worker side).

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


def run(argv: List[str], timeout: float = 30, env: Optional[dict] = None, stdin=None) -> Output:
    """Run argv; a missing program or a timeout is reported as a failed Output, never raised."""
    try:
        proc = subprocess.run(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=env,
            universal_newlines=True,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        return Output(124, "", "{} timed out after {:.0f} s".format(argv[0], timeout))
    except OSError as e:
        return Output(127, "", "{}: {}".format(argv[0], e.strerror or e))
    return Output(proc.returncode, proc.stdout, proc.stderr)
