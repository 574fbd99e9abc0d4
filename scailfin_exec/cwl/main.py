# `scailfin-cwl`: cwltool's own command line (every cwltool option works), extended with
# scailfin-exec's options; every container step runs as a job description through the chosen
# scheduler. Exit codes are cwltool's: 0 success, 1 failed step or workflow, 33 unsupported
# requirement, 2 bad options.

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import signal
import sys
import threading
from typing import IO

import cwltool.main
from cwltool.argparser import arg_parser as cwltool_arg_parser
from cwltool.context import LoadingContext, RuntimeContext

from ..config import ConfigError, add_arguments, load_settings
from ..schedulers import SchedulerError
from . import CWLBackend, executor, make_tool_factory

DESCRIPTION = """Run a CWL workflow with cwltool, sending every step that has a DockerRequirement (or every
step, with --default-container) through a scailfin-exec scheduler: `local` runs them on this
machine, `htcondor` on a pool. On the worker, the step runs in whichever container runtime is
there (Apptainer, Singularity, Charliecloud, Podman, Shifter, Sarus, Docker), with its files at
the same absolute paths. cwltool's --singularity and --podman choose that runtime; --disable-pull
forbids pulls on the worker. Steps without a container run here, as cwltool runs them."""

_logger = logging.getLogger("cwltool")


def arg_parser() -> argparse.ArgumentParser:
    parser = cwltool_arg_parser()
    parser.prog = "scailfin-cwl"
    parser.description = DESCRIPTION
    add_arguments(parser, "scailfin-exec options (where and how the steps run)")
    return parser


def main(argv: list[str] | None = None, stdout: IO[str] | None = None) -> int:
    """scailfin-cwl in this process: the output object goes to stdout (default sys.stdout)."""
    parser = arg_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as e:
        print(f"scailfin-cwl: error: {e}", file=sys.stderr)
        return 2
    workflow = os.path.basename(args.workflow or "cwl").rsplit(".", 1)[0]
    backend = CWLBackend(settings, workflow=workflow)
    if args.workflow:
        try:  # an unreachable schedd, or submitting as root, fails before anything is submitted
            backend.scheduler
        except SchedulerError as e:
            print(f"scailfin-cwl: error: {e}", file=sys.stderr)
            backend.close()
            return 1
    interrupted = threading.Event()

    def interrupt(signum, frame):
        # Cancel the run's jobs and let cwltool see its steps fail: a KeyboardInterrupt inside
        # cwltool's parallel executor deadlocks it (it waits for its threads holding their lock).
        if interrupted.is_set():
            _logger.error("interrupted again: exiting now")
            os._exit(130)
        interrupted.set()
        _logger.error("interrupted: cancelling this run's jobs")
        threading.Thread(target=backend.close, name="cancel-run").start()

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        loading = LoadingContext(vars(args))
        loading.construct_tool_object = make_tool_factory(backend)
        runtime = RuntimeContext(vars(args))
        run_executor = executor(backend, parallel=bool(args.parallel), limit=getattr(args, "parallel_max", None))
        code = cwltool.main.main(args=args, executor=run_executor, loadingContext=loading, runtimeContext=runtime,
                                  stdout=stdout)
    except KeyboardInterrupt:
        interrupted.set()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        backend.close()
        cwltool.main._terminate_processes()
    code = 130 if interrupted.is_set() else code
    _leave_run_directory(backend.closed_scheduler, settings, code)
    return code


def _settings(args):
    """scailfin-exec's settings, with cwltool's own container options in its terms."""
    settings = load_settings(args)
    if "runtime" not in settings.explicit:
        if getattr(args, "singularity", False):
            settings.runtime = ["apptainer", "singularity"]
        elif getattr(args, "podman", False):
            settings.runtime = ["podman"]
    if not getattr(args, "pull_image", True) and "pull" not in settings.explicit:
        settings.pull = False
    return settings


def _leave_run_directory(scheduler, settings, code: int) -> None:
    """A temporary run directory with nothing to look at goes; otherwise say where it is."""
    if scheduler is None:
        return
    if settings.run_dir is None and (code == 0 or not scheduler.handles):  # --run-dir keeps everything
        shutil.rmtree(scheduler.run_dir, ignore_errors=True)
    elif scheduler.handles:
        print(f"scailfin-cwl: job descriptions, result records and step logs are in {scheduler.run_dir}", file=sys.stderr)


def run() -> None:
    code = main()
    # The process ends now: the collector need not walk cwltool's schemas and the workflow's
    # objects once more on the way out (about 0.13 s of every run's end; exit handlers, closing
    # files and threads are as always; only cycles are left to the end of the process).
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
