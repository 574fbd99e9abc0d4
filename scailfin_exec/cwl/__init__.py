# CWL through scailfin-exec: cwltool's own machinery, with every container step run as a job
# description through a scheduler. For engines that embed cwltool (REANA-style):
#
#     from cwltool.context import LoadingContext
#     import cwltool.main, scailfin_exec.cwl
#     cwltool.main.main(argsl, loadingContext=LoadingContext({"construct_tool_object": scailfin_exec.cwl.make_tool}))
#
# make_tool uses a backend configured from the environment (SCAILFIN_CONFIG, SCAILFIN_SCHEDULER,
# SCAILFIN_RUNTIME, ...); make_tool_factory(CWLBackend(settings)) binds one explicitly, and
# executor(backend) gives a parallel executor sized on the scheduler rather than this host.

from __future__ import annotations

import atexit
import collections
import functools
import logging
import threading

from cwltool.executors import TMPDIR_LOCK, JobExecutor, MultithreadedJobExecutor
from cwltool.job import JobBase
from cwltool.workflow import default_make_tool

from ..config import load_settings
from . import yamlcopy
from .tool import CWLBackend, ScailfinCommandLineTool, ScailfinJob, tool_class

__all__ = ["CWLBackend", "ScailfinCommandLineTool", "ScailfinJob", "make_tool", "make_tool_factory", "executor",
           "default_backend"]

_logger = logging.getLogger("cwltool")
yamlcopy.install()  # cwltool copies job orders: a long input list must not cost N^2 each time
_default: CWLBackend | None = None
_default_lock = threading.Lock()


def default_backend() -> CWLBackend:
    """The process-wide backend make_tool uses, configured from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = CWLBackend(load_settings(None))
            atexit.register(_default.close)
        return _default


def make_tool_factory(backend: CWLBackend):
    """A construct_tool_object for LoadingContext that sends container steps to backend."""
    tool = tool_class(backend)

    def make_tool(toolpath_object, loadingContext):
        if toolpath_object.get("class") == "CommandLineTool":
            return tool(toolpath_object, loadingContext)
        return default_make_tool(toolpath_object, loadingContext)
    return make_tool


def make_tool(toolpath_object, loadingContext):
    """construct_tool_object for cwltool's LoadingContext, using default_backend()."""
    return make_tool_factory(default_backend())(toolpath_object, loadingContext)


class ScaledExecutor(MultithreadedJobExecutor):
    """cwltool's multithreaded executor, sized on the scheduler's capacity instead of this host's
    cores, memory and GPUs (a 200-way scatter on a pool must not be throttled to the submit
    host's 2 cores), and without probing this host's GPUs with nvidia-smi.

    Steps beyond the capacity wait their turn in order, in a deque: cwltool's own executor looks
    through every waiting step each time one is added or one ends, and frees a place by removing
    from a list, so a 5,000-step scatter beyond a capacity of 1,000 spent ~10 s of CPU there
    (N^2; measured with the executor alone). A step that does not fit yet holds back those after
    it (no backfill by smaller steps: the pool does the matching)."""

    def __init__(self, capacity: int, memory_mb: int = 2**40):
        JobExecutor.__init__(self)
        self.exceptions = []
        self.pending_jobs = collections.deque()
        self.pending_jobs_lock = threading.Lock()
        self.max_cores = float(max(1, capacity))  # also the number of threads: keep it finite
        self.max_ram = memory_mb
        self.max_cuda = max(1, capacity)
        self.allocated_ram = 0.0
        self.allocated_cores = 0.0
        self.allocated_cuda = 0

    def run_job(self, job, runtime_context) -> None:
        """Queue job (None: nothing new) and start the waiting steps that fit, in order."""
        with self.pending_jobs_lock:
            if job is not None:
                self.pending_jobs.append(job)
            while self.pending_jobs:
                job = self.pending_jobs[0]
                if isinstance(job, JobBase):
                    res = job.builder.resources
                    ram, cores, cuda = res["ram"], res["cores"], res.get("cudaDeviceCount", 0)
                    if ram > self.max_ram or cores > self.max_cores or cuda > self.max_cuda:
                        _logger.error('Job "%s" cannot be run: it asks for %s, more than the scheduler runs at '
                                      "once (%d cores, %d MiB, %d GPUs)", job.name, res, self.max_cores,
                                      self.max_ram, self.max_cuda)
                        self.pending_jobs.popleft()
                        continue
                    if (self.allocated_ram + ram > self.max_ram or self.allocated_cores + cores > self.max_cores
                            or self.allocated_cuda + cuda > self.max_cuda):
                        return  # its turn comes when a step ends (cwltool's _runner frees its share)
                    self.allocated_ram += ram
                    self.allocated_cores += cores
                    self.allocated_cuda += cuda
                self.pending_jobs.popleft()
                self.taskqueue.add(functools.partial(self._runner, job, runtime_context, TMPDIR_LOCK),
                                   runtime_context.workflow_eval_lock)


FILES_PER_STEP = 4  # open files a step in flight holds here: its exit-code FIFO, its waiter's pipes
FILES_SPARE = 128  # for everything else the run opens (logs, the event log, libraries, sockets)


def executor(backend: CWLBackend, parallel: bool = True, limit: int | None = None) -> JobExecutor:
    """The executor for a run: parallel up to the scheduler's capacity (or limit), and as many
    steps in flight as this process may open files for, else serial."""
    from cwltool.executors import SingleJobExecutor

    if not parallel:
        return SingleJobExecutor()
    capacity = backend.capacity if not limit else min(limit, backend.capacity)
    files = open_files_limit()
    if capacity * FILES_PER_STEP + FILES_SPARE > files:
        capacity = max(1, (files - FILES_SPARE) // FILES_PER_STEP)
        _logger.warning("at most %d steps in flight: this process may open %d files (ulimit -n; the hard limit "
                        "is the most it may raise itself to)", capacity, files)
    return ScaledExecutor(capacity)


def open_files_limit() -> int:
    """This process's limit on open files, raised to the most it may (its hard limit): a
    1000-step scatter in flight holds thousands (Debian's default soft limit is 1024)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft
