# What the benchmarks share: a scratch directory removed at exit, timing a command, the stand-in
# image trees, and putting an image into Podman's storage before the timed runs.
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scailfin_exec.job import ImageSources  # noqa: E402
from scailfin_exec.worker import images  # noqa: E402
from scailfin_exec.worker.runtimes import RUNTIMES  # noqa: E402


def work_dir(prefix, parent=None):
    """A new scratch directory, removed when the benchmark exits (it may hold hundreds of MiB)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    atexit.register(shutil.rmtree, path, True)
    return path


def timed(argv, cwd, env=None, stderr_to=None):
    """Wall seconds of one run of argv; the benchmark stops, with the command's stderr, if it fails.
    stderr_to: a file that keeps the command's stderr."""
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if stderr_to:
        with open(stderr_to, "w") as f:
            f.write(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{proc.stderr[-3000:]}")
    return seconds


def image_roots():
    """The stand-in image trees dev/setup built (SCAILFIN_TEST_IMAGE_ROOTS, as the tests use)."""
    return [r for r in os.environ["SCAILFIN_TEST_IMAGE_ROOTS"].split(os.pathsep) if r]


def into_podman(reference, roots):
    """Put the image in Podman's storage, so that neither side of a comparison pays for it."""
    images.resolve(RUNTIMES["podman"], shutil.which("podman"), reference, ImageSources(roots, None, False), dict(os.environ))
