# The worker shim: run one job description on a worker node. Stage in, detect a container
# runtime, resolve the image, run the step, stage out, write a result record, exit with the
# payload's code. Standard library only, Python >= 3.6: it is shipped with every job.
#
# Usage: python3 SHIM job.json [--result FILE] [--runtime NAME[,NAME...]] [--image REF --workspace DIR]
#        python3 SHIM --doctor      (what this node offers: runtimes, transfer tools)

import argparse
import binascii
import json
import os
import shutil
import sys
import time
from typing import Dict, List, Optional

from . import disk, images, keeper, procs, results, transfers
from .results import (EXIT_BAD_JOB, EXIT_BIND, EXIT_CODES, EXIT_IMAGE, EXIT_INTERNAL, EXIT_NO_RUNTIME,  # noqa: F401
                      EXIT_STAGING, EXIT_WALLTIME, ImageUsed, ResultRecord, RuntimeUsed, ShimError, Staged,
                      result_path_for)
from .transfers.htcondor import empty_outbox
from .jobad import load_job_ad
from .jobspec import Job, JobError, check_runtime_names, load_job
from .runtimes import RUNTIMES, BindError, RunSpec, default_order

class ShimFailure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def runtime_order(job: Optional[Job], override: Optional[str], environ) -> List[str]:
    """Command line, then the job, then the worker's SCAILFIN_RUNTIME, then the default."""
    for where, value in (("--runtime", override), ("SCAILFIN_RUNTIME", environ.get("SCAILFIN_RUNTIME"))):
        if value and value != "auto":
            names = [n.strip() for n in value.split(",") if n.strip()]
            if where == "--runtime" or not (job and job.runtime):
                return check_runtime_names(where, names)
    if job and job.runtime:
        return list(job.runtime)
    return default_order()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scailfin-shim", description="Run one scailfin-exec job description in a container.")
    parser.add_argument("job", nargs="?", help="the job description (JSON)")
    parser.add_argument("--job-ad", action="store_true", help="read the job description from this HTCondor job's "
                        "ad ($_CONDOR_JOB_AD), where the htcondor scheduler puts it, instead of a job file")
    parser.add_argument("--result", help="where to write the result record (default: JOB.result.json beside the job)")
    parser.add_argument("--runtime", help="runtime preference, comma-separated (overrides the job and SCAILFIN_RUNTIME)")
    parser.add_argument("--doctor", action="store_true", help="report the runtimes and transfer tools this node has, and exit")
    parser.add_argument("--outbox", help="directory for the result record and the outputs archive, which always gets "
                        "an outputs archive, even an empty one (batch systems bring it back as it is)")
    parser.add_argument("--image", help="the job's image (batch systems show it; must match the job file)")
    parser.add_argument("--workspace", help="the job's workspace (batch systems show it; must match the job file)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # batch jobs often start without PATH: runtimes want one (ch-run warns into the step's stderr);
    # and no tool the shim starts runs under a Python environment's interpreter (procs)
    environ = procs.without_python_environment(os.environ)
    procs.default_environment(environ)
    if args.doctor:
        lines = doctor(environ)
        print("\n".join(lines))
        return 0 if any(line.startswith("usable runtimes: ") and not line.endswith("none") for line in lines) else 1
    if args.job_ad and not args.job:
        args.job = os.path.abspath(environ.get("_CONDOR_JOB_AD") or ".job.ad")  # its directory is the scratch
    elif args.job_ad:
        parser.error("give either a job file or --job-ad")
    if not args.job:
        parser.error("a job file is required (or --job-ad, or --doctor)")
    # the record's fields as they become known; a ResultRecord (results.py) when the job has ended
    record = {"host": _host(), "slot": _slot(environ), "user": _user(), "python": _python_version(),
              "started": time.time(), "timings": {}, "detection": [], "notes": []}
    if args.outbox:
        os.makedirs(args.outbox, exist_ok=True)
    result_file = args.result or (os.path.join(args.outbox, "job.result.json") if args.outbox else result_path_for(args.job))
    started = time.monotonic()
    args.secrets = []  # the job's, once read: kept out of the record and of what is said
    try:
        code = _run(args, environ, record)
    except ShimFailure as e:
        code = e.code
        record["shim_error"] = ShimError(e.code, EXIT_CODES[e.code], str(e))
        _say(redacted("error: " + str(e), args.secrets))
    except Exception as e:  # a bug in the shim: still leave a record behind
        code = EXIT_INTERNAL
        record["shim_error"] = ShimError(code, EXIT_CODES[code], "{}: {}".format(type(e).__name__, e))
        _say(redacted("internal error: {}: {}".format(type(e).__name__, e), args.secrets))
    record["timings"]["total"] = round(time.monotonic() - started, 6)
    # this process and every process it waited for: staging tools, the runtime, the container
    usage = os.times()
    record["cpu_seconds"] = round(usage.user + usage.system + usage.children_user + usage.children_system, 3)
    record["finished"] = time.time()
    record["exit_code"] = code
    if not _write_result(result_file, redacted(results.record_to_dict(ResultRecord(**record)), args.secrets)):
        code = EXIT_STAGING  # never taken for a good step: the submit side has no record of it
    if args.outbox:
        try:
            empty_outbox(args.outbox)
        except transfers.StagingError as e:
            _say("cannot leave an empty outputs archive: {}".format(e))
    return code


def _run(args, environ: Dict[str, str], record: Dict) -> int:
    timings = record["timings"]
    try:
        job = load_job_ad(args.job) if args.job_ad else load_job(args.job)
    except JobError as e:
        raise ShimFailure(EXIT_BAD_JOB, "bad job file: {}".format(e))
    record["job_id"] = job.id
    record["labels"] = job.labels
    args.secrets = job.secrets
    for flag, value, expected in (("--image", args.image, job.image), ("--workspace", args.workspace, job.workspace)):
        if value is not None and value != expected:
            raise ShimFailure(EXIT_BAD_JOB, "{} {} does not match the job file's {}".format(flag, value, expected))

    # the runtime and the image first: a node that cannot run the step costs no data movement
    runtime, found = _detect(job, args, environ, record)
    try:
        runtime.check_binds(job.all_binds())
    except BindError as e:
        raise ShimFailure(EXIT_BIND, str(e))
    scratch = os.path.dirname(os.path.abspath(args.job))
    image = _image(job, runtime, found, scratch, environ, record)

    t = time.monotonic()
    try:
        placement = transfers.stage_in(job, scratch, environ)
    except transfers.StagingError as e:
        raise ShimFailure(EXIT_STAGING, "stage-in failed: {}{}".format(e, disk.full_note(scratch, job.workspace)))
    record["stage_in"] = Staged(**placement.record)
    timings["stage_in"] = round(time.monotonic() - t, 6)
    try:
        code, stopped = _contained(job, runtime, found, image, placement, scratch, environ, record)
    except BaseException:
        transfers.discard(job, placement)
        raise

    _say_if_full(code, job.workspace, record)
    t = time.monotonic()
    if stopped:  # a stopped step's outputs are not whole: none come back
        transfers.discard(job, placement)
        record["notes"].append("the step was stopped ({}): its outputs were not brought back".format(stopped))
    else:
        try:
            outbox = args.outbox or os.path.dirname(os.path.abspath(args.result or result_path_for(args.job)))
            record["stage_out"] = Staged(**transfers.stage_out(job, placement, outbox))
        except transfers.StagingError as e:
            transfers.discard(job, placement)
            raise ShimFailure(EXIT_STAGING, "stage-out failed: {}{}".format(e, disk.full_note(outbox, job.workspace)))
    timings["stage_out"] = round(time.monotonic() - t, 6)
    if stopped == "walltime":
        raise ShimFailure(EXIT_WALLTIME, "walltime of {} s exceeded: the step was killed".format(job.resources.walltime_s))
    return code


def _image(job, runtime, found, scratch: str, environ, record: Dict):
    """The job's image, found or prepared for runtime; the registry credentials the job brought
    (a copy in its scratch directory) removed once it is, whether or not it was pulled."""
    t = time.monotonic()
    credentials, sent = images.credentials_here(job.images.credentials, scratch)
    sources, warning = images.usable_cache(job.images._replace(credentials=credentials), environ)
    if warning:
        _say(warning)
        record["notes"].append(warning)
    try:
        image = images.resolve(runtime, found.path, job.image, sources, environ, job.runtime_options.get(found.name, []))
    except images.ImageError as e:
        full = "" if " is full" in str(e) else disk.full_note(sources.cache or images.default_cache(environ))
        raise ShimFailure(EXIT_IMAGE, "{} on {}: {}{}".format(found.name, record["host"], e, full))
    finally:
        if sent:
            shutil.rmtree(credentials, ignore_errors=True)
    record["timings"]["resolve_image"] = round(time.monotonic() - t, 6)
    record["image"] = ImageUsed(image.reference, image.kind, image.location, image.how)
    return image


def _say_if_full(code: int, workspace: str, record: Dict) -> None:
    """A failed step whose workspace's file system is full: said, as its own message ("write
    error: No space left on device") does not say where."""
    full = disk.full_note(workspace) if code != 0 else ""
    if full:
        _say("the step failed with its workspace's file system full" + full)
        record["notes"].append("the step failed with its workspace's file system full" + full)


def _detect(job: Job, args, environ: Dict[str, str], record: Dict):
    """The first usable runtime in the preference order: (adapter, detection)."""
    t = time.monotonic()
    try:
        order = runtime_order(job, args.runtime, environ)
    except JobError as e:
        raise ShimFailure(EXIT_BAD_JOB, str(e))
    for name in order:
        detection = RUNTIMES[name].detect(environ)
        record["detection"].append(detection.line())
        if detection.usable:
            record["timings"]["detect_runtime"] = round(time.monotonic() - t, 6)
            record["runtime"] = RuntimeUsed(detection.name, detection.version, detection.path)
            return RUNTIMES[name], detection
    raise ShimFailure(EXIT_NO_RUNTIME, "no usable container runtime on {} (tried: {})".format(
        record["host"], "; ".join(record["detection"])))


def _contained(job: Job, runtime, found, image, placement, scratch: str, environ: Dict[str, str], record: Dict):
    """Build the runtime's command and run the step under the keeper; (exit code, stopped)."""
    binds = placement.binds
    try:
        runtime.check_binds(binds)
    except BindError as e:
        raise ShimFailure(EXIT_BIND, str(e))

    env = dict(job.env)
    if job.resources.gpus:
        for key in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
            if key in environ and key not in env:
                env[key] = environ[key]
    spec = RunSpec(image, job.argv, binds, job.cwd, env, job.resources.gpus,
                   job.script is not None or job.stdin is not None, job.network,
                   job.runtime_options.get(found.name, []), job.entrypoint, scratch,
                   "scailfin-{}-{}".format(job.id, binascii.hexlify(os.urandom(4)).decode()))
    try:
        invocation = runtime.command(found.path, found.version, spec, environ)
    except BindError as e:
        raise ShimFailure(EXIT_BIND, str(e))
    record["command"] = invocation.argv
    record["notes"] += invocation.notes
    _say("{} ran {} on {} for job {} ({})".format(
        "{} {}".format(found.name, found.version), image.reference, record["host"], job.id, image.how))

    t = time.monotonic()
    plan = keeper.Plan(invocation.argv, invocation.env, invocation.contain, invocation.binds, invocation.mount_points,
                       invocation.image, invocation.area, invocation.cleanup, job.resources.walltime_s)
    try:
        outcome = _payload(job, placement, plan, scratch)
    except keeper.KeeperError as e:
        raise ShimFailure(EXIT_NO_RUNTIME if e.kind == "start" else EXIT_BIND, "{} on {}: {}".format(
            found.name, record["host"], e))
    finally:
        if invocation.area:
            _remove_empty(invocation.area)
    record["stopped"] = outcome.stopped  # None, "walltime", or "signal" (cancelled, evicted, interrupted)
    record["notes"] += outcome.notes
    record["timings"]["run"] = round(time.monotonic() - t, 6)
    record["payload_exit_code"] = outcome.code
    return outcome.code, outcome.stopped


def doctor(environ) -> List[str]:
    """What this node offers, one line per runtime and transfer tool, for humans."""
    detections = [RUNTIMES[name].detect(environ) for name in default_order()]
    usable = [d.name for d in detections if d.usable]
    lines = ["host: {} (python {}, user {})".format(_host(), _python_version(), _user())]
    lines += ["runtime " + d.line() for d in detections]
    lines += ["transfer " + line for line in transfers.detect_transfer_tools(environ)]
    order = runtime_order(None, None, environ)
    lines.append("preference order: {}{}".format(",".join(order), " (from SCAILFIN_RUNTIME)" if environ.get("SCAILFIN_RUNTIME") else " (default)"))
    lines.append("usable runtimes: " + (", ".join(usable) or "none"))
    return lines


def _payload(job: Job, placement, plan, scratch: str):
    """Run the step under the keeper with the job's stdio (a script is fed on stdin from a file
    of the job's own); the keeper's Outcome."""
    opened = []
    try:
        stdin = stdout = stderr = None
        if job.script is not None:
            path = os.path.join(scratch, "script.stdin")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(job.script.encode("utf-8"))
            stdin = open(path, "rb")
            opened.append(stdin)
        elif placement.stdin is not None:
            stdin = open(placement.stdin, "rb")
            opened.append(stdin)
        if placement.stdout is not None:
            stdout = open(placement.stdout, "wb")
            opened.append(stdout)
        if placement.stderr is not None:
            stderr = open(placement.stderr, "wb")
            opened.append(stderr)
    except OSError as e:
        for f in opened:
            f.close()
        raise ShimFailure(EXIT_STAGING, "cannot open the step's stdio: {}".format(e))
    try:
        return keeper.run(plan, *(f.fileno() if f is not None else None for f in (stdin, stdout, stderr)))
    finally:
        for f in opened:
            f.close()


def _remove_empty(directory: str) -> None:
    try:
        os.rmdir(directory)
    except OSError:
        pass


def redacted(value, secrets: List[str]):
    """value (a record: dicts, lists, strings) with every secret replaced by "(secret)"."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "(secret)")
        return value
    if isinstance(value, list):
        return [redacted(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: redacted(v, secrets) for k, v in value.items()}
    return value


def _write_result(path: str, record: Dict) -> bool:
    """Write the record whole (a temporary file renamed) or not at all; False, said, if it cannot be."""
    try:
        disk.write_whole(path, json.dumps(record, indent=1, sort_keys=True))
        return True
    except OSError as e:
        _say("the step's result record is lost: " + disk.said(e, path))
        return False


def _say(message: str) -> None:
    sys.stderr.write("scailfin-shim: {}\n".format(message.replace("\n", "\\n")))  # one line, always
    sys.stderr.flush()


def _host() -> str:
    return os.uname().nodename


def _slot(environ: Dict[str, str]) -> str:
    """The batch slot the job runs in, where the batch system says (HTCondor: the Name in the
    machine ad the starter writes, e.g. slot1_1@scailfin-pilot-12-0 on a pilot); else ''."""
    path = environ.get("_CONDOR_MACHINE_AD")
    if not path:
        return ""
    try:
        with open(path, errors="replace") as f:
            for line in f:
                name, _, value = line.partition("=")
                if name.strip() == "Name":
                    return value.strip().strip('"')
    except OSError:
        pass
    return ""


def _python_version() -> str:
    return "{}.{}.{}".format(*sys.version_info[:3])


def _user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return str(os.getuid())
