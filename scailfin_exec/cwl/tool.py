# The cwltool hook: a CommandLineTool whose container steps become job descriptions run through
# a scailfin-exec scheduler. cwltool keeps doing what it does well (path layout, InitialWorkDir
# staging, stdio redirection, success/failure codes, output collection); only the execution of
# the step itself moves to the scheduler and the worker shim.
#
# Layout: every path a step sees is its host path (outdir, tmpdir, staging dir and the inputs
# those link to), bound at the same absolute path. That is cwltool's own --no-container layout,
# run inside the container; it works on runtimes that cannot create mount points in read-only
# images (Charliecloud < 0.32) or that forbid /var targets (Shifter), and it is what transfer
# modes that copy the workspace to a worker need.

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import tempfile

from cwltool.command_line_tool import CommandLineTool
from cwltool.errors import UnsupportedRequirement
from cwltool.job import CommandLineJob, ContainerCommandLineJob
from cwltool.process import stage_files

from ..config import Settings
from ..job import Bind, Job, Resources
from ..run import Run
from ..schedulers import Scheduler
from ..worker import disk
from ..worker.jobspec import inside
from . import cache

_logger = logging.getLogger("cwltool")
CUDA_REQUIREMENT = "http://commonwl.org/cwltool#CUDARequirement"
# The step's exit code travels to cwltool through this tiny waiter process (see ScailfinJob).
_WAITER = ["/bin/sh", "-c", 'read code < "$0" && exit "$code"']


class CWLBackend:
    """One workflow run's link to cwltool: the Run its steps go through, the FIFOs their exit
    codes travel by, and the job class bound to it."""

    def __init__(self, settings: Settings, scheduler: Scheduler | None = None, workflow: str = "cwl"):
        self.run = Run(settings, name=workflow, scheduler=scheduler, log=_logger)
        self.settings = self.run.settings
        self.workflow = workflow
        self.fifo_dir = tempfile.mkdtemp(prefix="scailfin-cwl-")
        self.job_class = type("ScailfinJob", (ScailfinJob,), {"backend": self})

    @property
    def scheduler(self) -> Scheduler:
        return self.run.scheduler

    @property
    def capacity(self) -> int:
        return self.run.capacity

    @property
    def closed_scheduler(self) -> Scheduler | None:
        return self.run.closed_scheduler

    def close(self) -> None:
        """Cancel what is still running and release the scheduler (the run's close)."""
        self.run.close()
        shutil.rmtree(self.fifo_dir, ignore_errors=True)


class ScailfinCommandLineTool(CommandLineTool):
    """A CommandLineTool whose container steps run through the backend's scheduler."""

    backend: CWLBackend  # set on the per-backend subclass

    def job(self, job_order, output_callbacks, runtimeContext):
        if not runtimeContext.cachedir:
            return self._job(job_order, output_callbacks, runtimeContext)
        if cache.reuse_enabled(self):
            return cache.cached_job(self, job_order, output_callbacks, runtimeContext, self._job)
        runtimeContext = runtimeContext.copy()
        runtimeContext.cachedir = None  # nor cwltool's own cache (its key, see cache.py)
        return self._job(job_order, output_callbacks, runtimeContext)

    def _job(self, job_order, output_callbacks, runtimeContext):
        # Make the container layout the host layout: create the step's directories first and
        # tell cwltool to use those very paths inside the container too.
        rc = runtimeContext.copy()
        rc.outdir = rc.get_outdir()
        rc.tmpdir = rc.get_tmpdir()
        rc.stagedir = rc.create_tmpdir()
        rc.docker_outdir, rc.docker_tmpdir, rc.docker_stagedir = rc.outdir, rc.tmpdir, rc.stagedir
        for job in super().job(job_order, output_callbacks, rc):
            if isinstance(job, ScailfinJob) and job.stagedir != rc.stagedir:
                # cwltool gives a container job a new staging directory, and removes that one when
                # the step ends; the inputs are staged in ours, so ours is the one to remove
                shutil.rmtree(job.stagedir, ignore_errors=True)
                job.stagedir = rc.stagedir
            yield job

    def make_job_runner(self, runtimeContext):
        runner = super().make_job_runner(runtimeContext)
        if isinstance(runner, type) and issubclass(runner, ContainerCommandLineJob):
            return self.backend.job_class
        return runner


class ScailfinJob(CommandLineJob):
    """cwltool's host-layout job, whose command runs in a container through a scheduler.

    cwltool runs `waiter + command line` with the step's stdio; the waiter only waits for the
    step's exit code on a FIFO. Meanwhile (cwltool's monitor hook) the step is submitted as a job
    description and, when it ends, its exit code is written to the FIFO. So cwltool's own
    handling of stdio files, exit codes and outputs applies unchanged.
    """

    backend: CWLBackend

    def run(self, runtimeContext, tmpdir_lock=None) -> None:
        # cwltool's CommandLineJob.run, except that inputs are bound rather than symlinked
        if tmpdir_lock:
            with tmpdir_lock:
                os.makedirs(self.tmpdir, exist_ok=True)
        else:
            os.makedirs(self.tmpdir, exist_ok=True)
        self._setup(runtimeContext)
        self.input_binds, self.in_place = [], []
        self.secret_store = runtimeContext.secret_store  # cwltool:Secrets: real values go to the step only
        self._take_container_only_entries()
        stage_files(self.pathmapper, stage_func=self._bind_input, ignore_writable=True, symlink=False,
                    secret_store=runtimeContext.secret_store)
        if self.generatemapper is not None:
            stage_files(self.generatemapper, stage_func=self._bind_input, ignore_writable=self.inplace_update,
                        symlink=False, secret_store=runtimeContext.secret_store)
            if self.inplace_update:  # writable entries are updated where they are: bound read-write,
                before = len(self.input_binds)  # and outputs of the step (copying transfer modes bring them back)
                for _, vol in self.generatemapper.items_exclude_children():
                    if vol.staged and vol.type in ("WritableFile", "WritableDirectory") and not vol.resolved.startswith("_:"):
                        self._bind_input(vol.resolved, vol.target, writable=True)
                self.in_place = [b.source for b in self.input_binds[before:] if not inside(b.source, self.outdir)]
        self._execute([], self.environment, runtimeContext)

    def _host_dirs(self) -> list[str]:
        return [self.outdir, self.tmpdir, self.builder.stagedir]

    def _bind_input(self, source: str, target: str, writable: bool = False) -> None:
        """cwltool's stage_func: an input goes where the step expects it by a bind mount onto a
        placeholder of its kind (the mount point then exists, even for runtimes that cannot
        create one in a read-only image). A symlink would show in the container (`find dir`
        does not enter it) and its target would need binding too."""
        if any(inside(target, bind.target) for bind in self.input_binds):
            return  # inside a directory already bound
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        elif not os.path.exists(target):
            open(target, "w").close()
        self.input_binds.append(Bind(source, target, writable))

    def _take_container_only_entries(self) -> None:
        """InitialWorkDir entries named by an absolute path outside the step's directories exist
        only in the container: bind them there instead of staging them on this host."""
        if self.generatemapper is None:
            return
        hosted = self._host_dirs()
        staging = os.path.join(self.builder.stagedir, "container-only")
        for key, vol in list(self.generatemapper.items()):
            if not vol.staged or any(inside(vol.target, d) for d in hosted):
                continue
            self.generatemapper.update(key, vol.resolved, vol.target, vol.type, False)
            if vol.type in ("File", "Directory") and not vol.resolved.startswith("_:"):
                self.input_binds.append(Bind(vol.resolved, vol.target, False))
                continue
            copy = os.path.join(staging, str(len(self.input_binds)), os.path.basename(vol.target))
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            if vol.type.startswith("Create"):
                with open(copy, "w") as f:
                    f.write(self._revealed(vol.resolved))
            elif vol.resolved.startswith("_:"):
                os.makedirs(copy)
            elif os.path.isdir(vol.resolved):
                shutil.copytree(vol.resolved, copy)
            else:
                shutil.copy2(vol.resolved, copy)
            self.input_binds.append(Bind(copy, vol.target, vol.type.startswith(("Writable", "CreateWritable"))))

    def _setup(self, runtimeContext) -> None:
        # cwltool checks CUDARequirement with nvidia-smi here, on the submit host; the GPUs are
        # on the worker, which the scheduler asks for. Hide the requirement during the check.
        requirements, hints = self.builder.requirements, self.builder.hints
        self.builder.requirements = [r for r in requirements if r.get("class") != CUDA_REQUIREMENT]
        self.builder.hints = [r for r in hints if r.get("class") != CUDA_REQUIREMENT]
        try:
            super()._setup(runtimeContext)
        finally:
            self.builder.requirements, self.builder.hints = requirements, hints

    def _revealed(self, value):
        """value with cwltool's placeholders for secrets replaced by the secrets themselves."""
        return self.secret_store.retrieve(value) if self.secret_store is not None else value

    def _required_env(self) -> dict[str, str]:
        # the container's PATH is the image's, not the submit host's
        return {"HOME": self.builder.outdir, "TMPDIR": self.builder.tmpdir}

    def _execute(self, runtime, env, runtimeContext, monitor_function=None) -> None:
        walltime, self.timelimit = self.timelimit, None  # the shim enforces it, on the worker
        job_id = self.job_id = self.backend.run.job_id(self.name)
        fifo = os.path.join(self.backend.fifo_dir, job_id + ".exit-code")
        os.mkfifo(fifo, 0o600)
        # Held open (not inherited) until the waiter has ended: if this process dies, the
        # waiter reads end-of-file and exits instead of waiting forever.
        hold = os.open(fifo, os.O_RDWR)
        try:
            image = self._image()
            monitor = functools.partial(self._run_step, job_id, image, walltime, hold)
            super()._execute(_WAITER + [fifo], {}, runtimeContext, monitor)
        finally:
            os.close(hold)
            if os.path.exists(fifo):  # gone if the run was cancelled meanwhile
                os.unlink(fifo)

    def _image(self) -> str:
        req, _ = self.get_requirement("DockerRequirement")
        if req is None:
            raise UnsupportedRequirement(f"[job {self.name}] no DockerRequirement and no --default-container")
        image = req.get("dockerImageId") or req.get("dockerPull")
        if not image:
            kinds = ", ".join(k for k in ("dockerLoad", "dockerFile", "dockerImport") if k in req)
            raise UnsupportedRequirement(
                f"[job {self.name}] DockerRequirement with only {kinds}: scailfin-exec runs images by reference "
                f"(scheduler {self.backend.settings.scheduler}); build or load the image into a registry or an "
                f"image tree (--image-roots) and use dockerPull")
        return str(image)

    def _run_step(self, job_id: str, image: str, walltime, hold: int, waiter) -> None:
        """cwltool's monitor hook: run the step through the scheduler, report its exit code."""
        code = 1
        try:
            job = self._describe(job_id, image, walltime)
            scheduler = self.backend.scheduler
            handle = self.backend.run.submit(job)
            _logger.info("[job %s] submitted to the %s scheduler as %s (%s)", self.name, scheduler.name, job.id,
                         handle.job.image)
            result = scheduler.wait(handle)
            code = self._report(result, scheduler.name)
        except Exception as e:  # noqa: BLE001  (reported to cwltool as the step's failure)
            said = disk.said(e, self.backend.run.scheduler.run_dir) if isinstance(e, OSError) else e
            _logger.error("[job %s] could not be run through the %s scheduler: %s", self.name,
                          self.backend.settings.scheduler, said)
        finally:
            os.write(hold, f"{code}\n".encode())  # the waiter exits with it

    def _report(self, result, scheduler_name: str) -> int:
        where = f"{result.runtime} on {result.host}"
        if result.error:
            _logger.error("[job %s] %s scheduler: %s", self.name, scheduler_name, result.error)
            return 1
        if result.shim_error:
            _logger.error("[job %s] %s (%s scheduler, %s)", self.name, result.shim_error.message, scheduler_name, where)
            return result.exit_code
        _logger.info("[job %s] %s ran %s: exit %s (%s)", self.name, where, result.image, result.exit_code,
                     result.record.image.how if result.record and result.record.image else "")
        if result.exit_code != 0 and result.stderr_log:
            tail = result.stderr_tail(5)
            if tail:
                _logger.warning("[job %s] last lines of the shim's stderr:\n%s", self.name, tail)
        return result.exit_code

    def _describe(self, job_id: str, image: str, walltime) -> Job:
        resources = self.builder.resources
        stdin = self.pathmapper.reversemap(self.stdin)[1] if self.stdin else None
        binds, inputs = self._binds()
        return self.backend.run.job(
            job_id, image, self._revealed([str(a) for a in self.command_line]), self.outdir,
            workdir=self.builder.outdir,
            stdin=stdin,
            stdout=os.path.join(self.base_path_logs, self.stdout) if self.stdout else None,
            stderr=os.path.join(self.base_path_logs, self.stderr) if self.stderr else None,
            binds=binds,
            env=self._revealed({k: str(v) for k, v in self.environment.items()}),
            inputs=inputs,
            outputs=[self.outdir] + self.in_place,
            resources=Resources(
                cores=max(1, math.ceil(resources.get("cores", 1))),
                memory_mb=int(resources.get("ram", 256)),
                disk_mb=int(resources.get("outdirSize", 1024) + resources.get("tmpdirSize", 1024)),
                gpus=math.ceil(resources.get("cudaDeviceCount", 0)),
                walltime_s=walltime if walltime else None,
            ),
            network=bool(self.networkaccess),
            entrypoint=True,  # docker semantics, as cwltool's own Docker and Podman jobs
            labels={"workflow": self.backend.workflow, "step": self.name},
            secrets=sorted(self.secret_store.secrets.values()) if self.secret_store is not None else [],
        )

    def _binds(self) -> tuple[list[Bind], list[str]]:
        """What the step sees besides its outdir: its tmpdir and staging dir at their own
        paths, and the inputs bound where it expects them."""
        binds = [Bind(self.tmpdir, self.builder.tmpdir, True)]
        if self.builder.outdir != self.outdir:  # --cachedir runs the step in a cache directory
            binds.append(Bind(self.outdir, self.builder.outdir, True))
        if os.path.isdir(self.builder.stagedir):
            binds.append(Bind(self.builder.stagedir, self.builder.stagedir, False))
        binds += sorted(self.input_binds, key=lambda bind: bind.target)
        return binds, sorted({bind.source for bind in self.input_binds})


def tool_class(backend: CWLBackend) -> type[ScailfinCommandLineTool]:
    return type("ScailfinCommandLineTool", (ScailfinCommandLineTool,), {"backend": backend})

