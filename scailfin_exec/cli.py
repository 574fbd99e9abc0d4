# `scailfin-exec`: the operator's command. `doctor` says what this node can run; `run-job`
# replays one job description through the local scheduler (how users debug a step by hand);
# `report` makes the HTML report of a run directory; `shim` writes the worker shim zipapp for use
# on a worker without this package.

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading

from . import __version__
from .config import ConfigError, add_arguments, add_group_arguments, load_settings, setting_names
from .job import JOB_RECORDS, Job, JobError, job_records, load_job
from .pilots.settings import PilotSettings
from .shipping import build_shim
from .worker import shim as worker_shim


def _doctor(args) -> int:
    from .schedulers import SCHEDULERS, scheduler_class

    lines = worker_shim.doctor(dict(os.environ))
    print("\n".join(lines + [_credentials_line(os.environ.get("SCAILFIN_REGISTRY_AUTH"))] +
                    [line for name in SCHEDULERS for line in scheduler_class(name).doctor()]))
    return 0 if not lines[-1].endswith(": none") else 1


def _credentials_line(configured: str | None) -> str:
    """Which registries the submit side has credentials for (names only, never a secret)."""
    from .credentials import Credentials, login_files

    credentials = Credentials(configured)
    if credentials.file is None:
        return f"registry credentials: none (no login file in {', '.join(login_files())})"
    return f"registry credentials: {credentials.file} has {', '.join(credentials.registries()) or 'no usable entry'}"


def _job_to_run(path: str, job_id: str | None) -> Job:
    """A job file, or a run directory's job (its job file, or its line in jobs.jsonl)."""
    if job_id is None:
        return load_job(path)
    if not os.path.isdir(path):
        raise JobError(f"{path} is not a run directory (a job id was given)")
    job_file = os.path.join(path, job_id, "job.json")
    if os.path.isfile(job_file):
        return load_job(job_file)
    if job_id in (records := job_records(path)):
        return records[job_id][1]
    raise JobError(f"the run directory {path} has no job {job_id!r} (no {job_id}/job.json, not in {JOB_RECORDS})")


def _run_job(args) -> int:
    try:
        settings = load_settings(args)
        job = _job_to_run(args.job, args.job_id)
    except (ConfigError, JobError) as e:
        print(f"scailfin-exec: error: {e}", file=sys.stderr)
        return 2
    # settings given explicitly (option, environment, config file) override the job's own
    changes = {}
    if "runtime" in settings.explicit:
        changes["runtime"] = settings.runtime
    if "runtime_options" in settings.explicit:
        changes["runtime_options"] = settings.runtime_options
    if settings.explicit & {"image_roots", "image_cache", "pull"}:
        changes["images"] = job.images._replace(
            roots=settings.image_roots if "image_roots" in settings.explicit else job.images.roots,
            cache=settings.image_cache if "image_cache" in settings.explicit else job.images.cache,
            pull=settings.pull if "pull" in settings.explicit else job.images.pull)
    if job.transfer != "shared":  # a job file from a batch system's run: here the files are where they were
        print(f"scailfin-exec: replaying job {job.id} with transfer shared (it was {job.transfer})", file=sys.stderr)
        changes.update(transfer="shared", staged={})
    job = job._replace(**changes)

    from .schedulers.local import LocalScheduler

    with LocalScheduler(settings.run_dir, max_parallel=1, worker_python=settings.worker_python,
                        capture=False) as scheduler:
        handle = scheduler.submit(job)
        stopped = _SignalStop(lambda: scheduler.cancel(handle), f"job {job.id}")
        try:
            result = scheduler.wait(handle)
        finally:
            stopped.restore()
        print(f"scailfin-exec: {result.describe()}", file=sys.stderr)
        print(f"scailfin-exec: result record: {scheduler.run_dir}/{job.id}/job.result.json", file=sys.stderr)
    if stopped.signal:
        return 128 + stopped.signal
    return result.exit_code if result.exit_code is not None else 1


class _SignalStop:
    """Until restore(): SIGINT (Ctrl-C) and SIGTERM stop the step (stop() on a thread of its own,
    so the signal handler returns at once), with one line and no traceback; a second one exits."""

    def __init__(self, stop, what: str):
        self.signal = 0
        self._stop, self._what = stop, what
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal:
            print(f"scailfin-exec: {name} again: exiting now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signal = signum
        print(f"scailfin-exec: {name}: stopping {self._what}", file=sys.stderr, flush=True)
        threading.Thread(target=self._stop, name="stop-step", daemon=True).start()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _serve(args) -> int:
    import logging

    from .reana.api import DEFAULT_ROOTS, is_loopback, parse_listen, read_token, serve
    from .reana.controller import Controller
    from .schedulers import SchedulerError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        settings = load_settings(args)
        host, port = parse_listen(args.listen)
        token = read_token(args.token_file) if args.token_file else None
        if token is None and not is_loopback(host):
            raise ValueError(f"--listen {args.listen}: an address other than loopback needs --token-file (anyone "
                             "who reaches the service runs commands as this user)")
        if "run_dir" in settings.explicit:
            print("scailfin-exec serve: run_dir is not used: jobs are kept under --state-dir", file=sys.stderr)
        controller = Controller(settings, args.state_dir, args.workspace_root or DEFAULT_ROOTS, args.database)
    except (ConfigError, ValueError, SchedulerError) as e:
        print(f"scailfin-exec serve: error: {e}", file=sys.stderr)
        return 2
    serve(controller, host, port, token)
    return 0


def _report(args) -> int:
    from .report.html import write_report
    from .report.steps import steps_of_run
    from .report.trace import TraceWriter

    if not os.path.isdir(args.run_dir):
        print(f"scailfin-exec report: error: {args.run_dir} is not a directory", file=sys.stderr)
        return 2
    steps = steps_of_run(args.run_dir)
    if not steps:
        print(f"scailfin-exec report: error: {args.run_dir} holds no job (no */job.json, no jobs.jsonl): not a run "
              "directory",
              file=sys.stderr)
        return 2
    write_report(args.run_dir, args.output, steps)
    if args.trace:
        if os.path.exists(args.trace):
            os.unlink(args.trace)
        writer = TraceWriter([args.trace])
        for step in steps:
            writer.write(step)
        writer.close()
    print(f"scailfin-exec: report of {len(steps)} step(s) written to {args.output}", file=sys.stderr)
    return 0


def _pilots(args) -> int:
    import signal

    from .config import load_group
    from .pilots.command import prepare, submit, watch
    from .schedulers import SchedulerError

    def say(line):
        print(f"scailfin-exec pilots: {line}", file=sys.stderr, flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        settings = load_settings(args)
        request = load_group(PilotSettings, settings.pilots, "the config file's pilots", args)
        slurm = settings.of("slurm")
        prepared = prepare(request, slurm, settings.of("htcondor"), settings.worker_python or "python3")
        if args.watch:
            signal.signal(signal.SIGTERM, stop)
            try:
                watch(prepared, request, slurm, say)
            except KeyboardInterrupt:
                say("stopped watching; the pilots leave when idle")
            return 0
        array = submit(prepared, request, slurm, request.count)
    except (ConfigError, SchedulerError, OSError) as e:
        print(f"scailfin-exec pilots: error: {e}", file=sys.stderr)
        return 1
    say(f"{request.count} pilot(s) submitted as Slurm job {array}; their files and logs are in {prepared.directory}")
    print(array)
    return 0


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "scailfin-exec", "serve")


def _shim(args) -> int:
    path = build_shim(args.directory)
    if args.output:
        shutil.copyfile(path, args.output)
        os.chmod(args.output, 0o755)
        path = args.output
    print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scailfin-exec", description="Run containerised workflow steps on HPC/HTC "
                                  "clusters: inspect a node, replay a job description, ship the worker shim.")
    top.add_argument("--version", action="version", version=f"scailfin-exec {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doc = sub.add_parser("doctor", help="which container runtimes, transfer tools and batch systems this node has, "
                         "and why the others are unusable",
                         description="Detect every supported container runtime (with its version, or the reason it "
                         "cannot be used), the transfer tools (parrot_run, chirp, condor_chirp), and the batch "
                         "systems seen from here (Slurm: whether sbatch works, checked with a --test-only "
                         "submission that queues nothing, and the partitions). Exit 1 when no runtime is usable. "
                         "Set SCAILFIN_RUNTIME to see the preference order a job would use.")
    doc.set_defaults(func=_doctor)

    run = sub.add_parser("run-job", help="run one job description (JSON) here, through the local scheduler",
                         description="Run one job description through the local scheduler, streaming the step's "
                         "output, and exit with the step's exit code (or the shim's own code: 250 bad job, "
                         "251 no runtime, 252 image, 253 bind, 254 staging, 249 walltime, 248 internal). "
                         "Options given here override the job's runtime preference and image locations.")
    run.add_argument("job", help="the job description file, or a run directory (with JOB_ID)")
    run.add_argument("job_id", nargs="?", help="the job of the run directory to run: its job file, or for a job the "
                     "htcondor scheduler submitted that has not ended (its description travels in its job ad), its "
                     "line in RUN_DIR/jobs.jsonl")
    add_arguments(run, only=("runtime", "image_roots", "image_cache", "pull", "worker_python", "run_dir"))
    run.set_defaults(func=_run_job)

    srv = sub.add_parser("serve", help="a drop-in REANA job controller: REANA's workflow engines send their steps "
                         "here over HTTP", description="Serve reana-job-controller's REST API (POST /jobs, GET "
                         "/jobs, GET /jobs/ID, GET /jobs/ID/logs, DELETE /jobs/ID/, GET /job_cache, /shutdown), so "
                         "REANA's engines, unmodified, run their steps through scailfin-exec's schedulers. "
                         "compute_backend kubernetes (REANA's default) runs on --scheduler; htcondor and htcondor* "
                         "(e.g. htcondorcern) on the htcondor scheduler. Jobs are kept in SQLite: stopped (SIGTERM) "
                         "and started again on the same --state-dir, it takes over every job that had not ended.")
    srv.add_argument("--listen", default="127.0.0.1:5000", metavar="HOST:PORT",
                     help="address to listen on (default 127.0.0.1:5000, where REANA's engines look; any address "
                     "other than loopback needs --token-file)")
    srv.add_argument("--token-file", metavar="FILE", help="a file (mode 600) holding the token every request must "
                     "carry (Authorization: Bearer TOKEN, or ?access_token=TOKEN); without it, no token is asked")
    srv.add_argument("--workspace-root", action="append", metavar="DIR", help="a directory workflow workspaces must "
                     "be inside (repeatable; default /var/reana, REANA's own); a request for any other is refused "
                     "with 400")
    srv.add_argument("--state-dir", default=_default_state_dir(), metavar="DIR", help="where the job database, the "
                     "schedulers' run directories and each job's logs and result record are kept (default "
                     "$XDG_STATE_HOME/scailfin-exec/serve, i.e. ~/.local/state/scailfin-exec/serve)")
    srv.add_argument("--database", metavar="FILE", help="the SQLite job database (default STATE_DIR/jobs.sqlite)")
    add_arguments(srv, only=tuple(name for name in setting_names() if name not in ("run_dir", "report", "trace",
                                                                                   "progress")))
    srv.set_defaults(func=_serve)

    rep = sub.add_parser("report", help="an HTML report of a run directory (timeline, summary, table of steps)",
                         description="Write one self-contained HTML file (it works offline: no CDN, no network) "
                         "about the run whose job files and result records are in RUN_DIR (scailfin-cwl's and the "
                         "yadage backend's --run-dir / run_dir, or the directory a failed run names): a summary "
                         "(steps by state, wall time, CPU, bytes staged per method, runtimes, hosts, retries, holds), "
                         "a timeline with a row per step and a bar per phase (queued, image preparation, stage-in, "
                         "run, stage-out), and a table of the steps sortable by any column, then the stderr tail of "
                         "every failure. --trace writes the trace file's rows too.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    rep.add_argument("-o", "--output", default="report.html", metavar="FILE",
                     help="where to write the report (default: report.html)")
    rep.add_argument("--trace", metavar="FILE", help="also write the steps as a tab-separated trace file")
    rep.set_defaults(func=_report)

    pil = sub.add_parser("pilots", help="grow the HTCondor pool onto a Slurm allocation: HTCondor startds "
                         "started inside Slurm jobs (the VC3 way)",
                         description="Submit pilots to Slurm as one array: each runs HTCondor's condor_master and "
                         "condor_startd on its node with one partitionable slot the size of its allocation, joins "
                         "the pool with an IDTOKENS token (fetched with condor_token_fetch for your own identity, "
                         "or --token), advertises ScailfinPilot, ScailfinRuntimes (the node's usable container "
                         "runtimes) and HasCVMFS, and leaves when idle or when its allocation ends (its job "
                         "evicted back to the queue). Run steps on pilots only with --requirements "
                         "'ScailfinPilot =?= True' on the htcondor scheduler.")
    pil.add_argument("--watch", action="store_true", help="elastic: keep submitting pilots in proportion to your "
                     "idle jobs in the pool (one pilot per --cpus idle jobs, within --min and --max live pilots) "
                     "until interrupted; idle pilots leave by themselves after --idle-time")
    add_group_arguments(pil, PilotSettings, "pilot options (also the config file's pilots: mapping)")
    add_arguments(pil, only=("worker_python", "partition", "account", "qos", "reservation", "constraint"))
    pil.set_defaults(func=_pilots)

    shp = sub.add_parser("shim", help="write the worker shim zipapp (run it on a worker: python3 SHIM job.json)",
                         description="Build the worker shim as one zipapp file. On a worker: "
                         "`python3 SHIM job.json` runs a job, `python3 SHIM --doctor` reports the node.")
    shp.add_argument("--directory", default=".", help="where to build it (default: the current directory)")
    shp.add_argument("-o", "--output", help="copy it to this file name")
    shp.set_defaults(func=_shim)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
