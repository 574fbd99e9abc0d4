# One workflow run, whoever drives it (scailfin-cwl, the yadage backend, `scailfin-exec serve`, a
# user's own Python): its settings and the one place they become each Job's fields, its scheduler
# (made when the first job comes), unique job ids in its run directory, image tags pinned to digests
# once per run, the watch that writes the trace, progress and report, cancellation and close.
# Embedding scailfin-exec is making a Run.

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
from typing import Any

from .config import Settings
from .credentials import Credentials
from .job import ImageSources, Job, Result
from .pinning import Pins
from .report.watch import RunWatch
from .schedulers import JobHandle, Scheduler, SchedulerError, make_scheduler


class Run:
    """A run of jobs through one scheduler.

        with Run(Settings(runtime=["podman"])) as run:
            result = run.run(run.job("hello", "docker.io/library/alpine", ["echo", "hi"], workspace="/data/ws"))

    settings: config.Settings (load_settings() reads them from a config file, the environment and
    options; Settings() are the defaults). name: the workflow's name (HTCondor's JobBatchName).
    scheduler: one already made, to use instead of the settings' (the Run closes it all the same).
    watch: whether to write the trace, progress and report (RunWatch) while the run goes on.
    log: where the run says what it decided for all its jobs (an image pinned, or why not)."""

    def __init__(self, settings: Settings | None = None, name: str = "scailfin", scheduler: Scheduler | None = None,
                 watch: bool = True, log: logging.Logger | None = None):
        self.settings = (settings or Settings()).validate()
        self.pins = Pins(log, auth_file=self.settings.registry_auth)
        self.credentials = Credentials(self.settings.registry_auth, log)
        self.name = name
        self._scheduler = scheduler
        self._watch: RunWatch | None = None
        self._wants_watch = watch
        self._closed = False
        self.closed_scheduler: Scheduler | None = None  # the scheduler once the run is closed (its run_dir)
        self._lock = threading.Lock()
        self._ending = threading.Lock()
        self._counter = itertools.count(1)
        self._ids: set[str] = set()
        self._caches: set[str] = set()  # image caches made (or tried) for this run's jobs
        if scheduler is not None and watch:
            self._watch = RunWatch(scheduler, self.settings)

    @property
    def scheduler(self) -> Scheduler:
        """The run's scheduler, made from the settings on first use."""
        with self._lock:
            if self._closed:
                raise SchedulerError("this run has ended: no more jobs are submitted")
            if self._scheduler is None:
                self._scheduler = make_scheduler(self.settings, batch_name=self.name)
                if self._wants_watch:
                    self._watch = RunWatch(self._scheduler, self.settings)
            return self._scheduler

    @property
    def capacity(self) -> int:
        """How many jobs the scheduler runs at once (engines size their parallelism on it)."""
        return self.scheduler.capacity

    def job(self, id: str, image: str, argv: list[str], workspace: str, **fields: Any) -> Job:
        """A job description with this run's settings (transfer mode, runtime preference and options,
        where images come from); fields given here (any of Job's) win."""
        defaults = {**job_fields(self.settings), "labels": {"workflow": self.name}}
        return Job(id=id, image=image, argv=argv, workspace=workspace, **{**defaults, **fields})

    def job_id(self, name: str) -> str:
        """A job id made from a step's name: unique in this run, and beside the jobs an earlier run
        left in the same run directory (whose directories are kept)."""
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80].strip("._-") or "step"
        run_dir = self.settings.run_dir
        with self._lock:
            while True:
                candidate = f"{stem}-{next(self._counter)}"
                if candidate not in self._ids and not (run_dir and os.path.lexists(os.path.join(run_dir, candidate))):
                    self._ids.add(candidate)
                    return candidate

    def submit(self, job: Job) -> JobHandle:
        """Hand the job to the scheduler, its image pinned to the digest its tag had when this run
        first asked (pinning.py), with the credentials for its registry where the user has some
        (credentials.py)."""
        scheduler = self.scheduler
        images = job.images
        if images.cache and images.cache not in self._caches:
            self._caches.add(images.cache)
            self._make_cache(images.cache)
        if images.pull and images.credentials is None and not os.path.isabs(job.image):
            images = images._replace(credentials=self.credentials.for_image(job.image, scheduler.run_dir))
        return scheduler.submit(job._replace(image=self.pins.pin(job.image, job.images), images=images))

    def _make_cache(self, cache: str) -> None:
        """A shared image cache exists before its jobs start (the nodes take one that does not
        exist for a directory they cannot see, and use their own: worker/images.usable_cache)."""
        try:
            os.makedirs(cache, exist_ok=True)
        except OSError as e:
            self.pins.log.warning("image cache %s could not be made here (%s): only nodes where it exists use it",
                                  cache, e.strerror or e)

    def image_identity(self, image: str) -> list:
        """What a step's key (resume.py) takes for image in this run: its digest once pinned."""
        return self.pins.identity(image, job_fields(self.settings)["images"])

    def cached(self, name: str, origin: str) -> None:
        """A step of this run was taken from the cache (from origin): it shows as cached in the
        trace, the progress and the report."""
        self.scheduler  # noqa: B018  (made, so that the run has its run directory and its watch)
        if self._watch is not None:
            self._watch.cached(name, origin)

    def wait(self, handle: JobHandle, timeout: float | None = None) -> Result:
        return self.scheduler.wait(handle, timeout)

    def poll(self, handle: JobHandle) -> Result | None:
        return self.scheduler.poll(handle)

    def run(self, job: Job) -> Result:
        """Submit the job and wait for its result."""
        return self.wait(self.submit(job))

    def close(self) -> None:
        """Cancel what is still running, release the scheduler, and write the last trace rows,
        progress and the report. A second call (from another thread: Ctrl-C) waits for the first."""
        self._end(lambda scheduler: scheduler.close(), jobs_end=True)

    def detach(self) -> None:
        """Stop following the jobs without stopping them (a later Run on the same run directory,
        through its scheduler's adopt(), finds them again)."""
        self._end(lambda scheduler: scheduler.detach(), jobs_end=False)

    def _end(self, how, jobs_end: bool) -> None:
        with self._ending:
            with self._lock:
                scheduler, self._closed, self._scheduler = self._scheduler, True, None
                watch, self._watch = self._watch, None
            if scheduler is None:
                return
            try:
                how(scheduler)
            finally:
                if jobs_end:  # (a detached run's jobs go on, and may pull yet)
                    self.credentials.remove(scheduler.run_dir)
                if watch is not None:
                    watch.finish()  # the last trace rows and progress, the report
                self.closed_scheduler = scheduler

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def job_fields(settings: Settings) -> dict[str, Any]:
    """The fields of every Job that the settings decide: the transfer mode, the runtime preference
    and options, and where images come from."""
    return {"transfer": settings.transfer, "runtime": settings.runtime, "runtime_options": settings.runtime_options,
            "images": ImageSources(settings.image_roots, settings.image_cache, settings.pull)}
