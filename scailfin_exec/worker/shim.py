# The worker shim: run one job description on a worker node. Stage in, detect a container
# runtime, resolve the image, run the step, stage out, write a result record, exit with the
# payload's code. Standard library only, Python >= 3.6: it is shipped with every job.
#
# Usage: python3 SHIM job.json [--result FILE] [--runtime NAME[,NAME...]] [--image REF --workspace DIR]
#        python3 SHIM --doctor      (what this node offers: runtimes, transfer tools)

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from . import images, staging
from .jobspec import DEFAULT_RUNTIME_ORDER, FORMAT_VERSION, Job, JobError, check_runtime_names, load_job
from .runtimes import RUNTIMES, BindError, ImagePathError, RunSpec

# The shim's own failures use these exit codes (payload codes pass through unchanged; the
# result record's "shim_error" says which one it was when in doubt).
EXIT_INTERNAL = 248
EXIT_WALLTIME = 249
EXIT_BAD_JOB = 250  # malformed or invalid job file, or a newer format than this shim knows
EXIT_NO_RUNTIME = 251  # no container runtime in the preference list is usable here
EXIT_IMAGE = 252  # the image was not found or could not be prepared
EXIT_BIND = 253  # the runtime cannot bind a path the job needs (forbidden target, syntax)
EXIT_STAGING = 254  # stage-in or stage-out failed
EXIT_CODES = {
    EXIT_INTERNAL: "internal-error",
    EXIT_WALLTIME: "walltime-exceeded",
    EXIT_BAD_JOB: "bad-job",
    EXIT_NO_RUNTIME: "no-runtime",
    EXIT_IMAGE: "image",
    EXIT_BIND: "bind",
    EXIT_STAGING: "staging",
}
RESULT_VERSION = 1
KILL_GRACE_S = 10


class ShimFailure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def result_path_for(job_path: str) -> str:
    base = job_path[:-5] if job_path.endswith(".json") else job_path
    return base + ".result.json"


def runtime_order(job: Optional[Job], override: Optional[str], environ) -> List[str]:
    """Command line, then the job, then the worker's SCAILFIN_RUNTIME, then the default."""
    for where, value in (("--runtime", override), ("SCAILFIN_RUNTIME", environ.get("SCAILFIN_RUNTIME"))):
        if value and value != "auto":
            names = [n.strip() for n in value.split(",") if n.strip()]
            if where == "--runtime" or not (job and job.runtime):
                return check_runtime_names(where, names)
    if job and job.runtime:
        return list(job.runtime)
    return list(DEFAULT_RUNTIME_ORDER)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="scailfin-shim", description="Run one scailfin-exec job description in a container.")
    parser.add_argument("job", nargs="?", help="the job description (JSON)")
    parser.add_argument("--result", help="where to write the result record (default: JOB.result.json beside the job)")
    parser.add_argument("--runtime", help="runtime preference, comma-separated (overrides the job and SCAILFIN_RUNTIME)")
    parser.add_argument("--doctor", action="store_true", help="report the runtimes and transfer tools this node has, and exit")
    parser.add_argument("--outbox", help="directory for the result record and the outputs archive, which always gets "
                        "an outputs archive, even an empty one (batch systems bring it back as it is)")
    parser.add_argument("--image", help="the job's image (batch systems show it; must match the job file)")
    parser.add_argument("--workspace", help="the job's workspace (batch systems show it; must match the job file)")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    # batch jobs often start without PATH: runtimes want one (ch-run warns into the step's stderr)
    environ.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if args.doctor:
        lines = doctor(environ)
        print("\n".join(lines))
        return 0 if any(line.startswith("usable runtimes: ") and not line.endswith("none") for line in lines) else 1
    if not args.job:
        parser.error("a job file is required (or --doctor)")
    record = {
        "version": RESULT_VERSION,
        "job_format": FORMAT_VERSION,
        "job_id": None,
        "host": _host(),
        "user": _user(),
        "python": _python_version(),
        "started": time.time(),
        "timings": {},
        "detection": [],
        "notes": [],
        "runtime": None,
        "image": None,
        "command": None,
        "payload_exit_code": None,
        "shim_error": None,
    }
    if args.outbox:
        os.makedirs(args.outbox, exist_ok=True)
    result_file = args.result or (os.path.join(args.outbox, "job.result.json") if args.outbox else result_path_for(args.job))
    started = time.monotonic()
    try:
        code = _run(args, environ, record)
    except ShimFailure as e:
        code = e.code
        record["shim_error"] = {"code": e.code, "kind": EXIT_CODES[e.code], "message": str(e)}
        _say("error: " + str(e))
    except Exception as e:  # a bug in the shim: still leave a record behind
        code = EXIT_INTERNAL
        record["shim_error"] = {"code": code, "kind": EXIT_CODES[code], "message": "{}: {}".format(type(e).__name__, e)}
        _say("internal error: {}: {}".format(type(e).__name__, e))
    record["timings"]["total"] = round(time.monotonic() - started, 6)
    # this process and every process it waited for: staging tools, the runtime, the container
    usage = os.times()
    record["cpu_seconds"] = round(usage.user + usage.system + usage.children_user + usage.children_system, 3)
    record["finished"] = time.time()
    record["exit_code"] = code
    _write_result(result_file, record)
    if args.outbox:
        try:
            staging.empty_outbox(args.outbox)
        except staging.StagingError as e:
            _say("cannot leave an empty outputs archive: {}".format(e))
    return code


def _run(args, environ: Dict[str, str], record: Dict) -> int:
    timings = record["timings"]
    try:
        job = load_job(args.job)
    except JobError as e:
        raise ShimFailure(EXIT_BAD_JOB, "bad job file: {}".format(e))
    record["job_id"] = job.id
    record["labels"] = job.labels
    for flag, value, expected in (("--image", args.image, job.image), ("--workspace", args.workspace, job.workspace)):
        if value is not None and value != expected:
            raise ShimFailure(EXIT_BAD_JOB, "{} {} does not match the job file's {}".format(flag, value, expected))

    t = time.monotonic()
    scratch = os.path.dirname(os.path.abspath(args.job))
    try:
        placement = staging.stage_in(job, scratch, environ)
    except staging.StagingError as e:
        raise ShimFailure(EXIT_STAGING, "stage-in failed: {}".format(e))
    record["stage_in"] = placement.record
    timings["stage_in"] = round(time.monotonic() - t, 6)

    t = time.monotonic()
    try:
        order = runtime_order(job, args.runtime, environ)
    except JobError as e:
        raise ShimFailure(EXIT_BAD_JOB, str(e))
    runtime = found = None
    for name in order:
        detection = RUNTIMES[name].detect(environ)
        record["detection"].append(detection.line())
        if detection.usable:
            runtime, found = RUNTIMES[name], detection
            break
    timings["detect_runtime"] = round(time.monotonic() - t, 6)
    if runtime is None:
        raise ShimFailure(EXIT_NO_RUNTIME, "no usable container runtime on {} (tried: {})".format(
            record["host"], "; ".join(record["detection"])))
    record["runtime"] = {"name": found.name, "version": found.version, "path": found.path}

    binds = placement.binds
    try:
        runtime.check_binds(binds)
    except BindError as e:
        raise ShimFailure(EXIT_BIND, str(e))

    t = time.monotonic()
    try:
        image = images.resolve(found.name, found.path, job.image, job.images, environ, job.runtime_options.get(found.name, []))
    except images.ImageError as e:
        raise ShimFailure(EXIT_IMAGE, "{} on {}: {}".format(found.name, record["host"], e))
    timings["resolve_image"] = round(time.monotonic() - t, 6)
    record["image"] = {"reference": image.reference, "kind": image.kind, "location": image.location, "how": image.how}

    env = dict(job.env)
    if job.resources.gpus:
        for key in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
            if key in environ and key not in env:
                env[key] = environ[key]
    spec = RunSpec(image, job.argv, binds, job.cwd, env, job.resources.gpus,
                   job.script is not None or job.stdin is not None, job.network,
                   job.runtime_options.get(found.name, []), job.entrypoint)
    try:
        try:
            invocation = runtime.command(found.path, found.version, spec, environ)
        except ImagePathError:
            image = images.plain_copy(image, job.images, environ)
            record["image"].update(location=image.location, how=image.how)
            spec = spec._replace(image=image)
            invocation = runtime.command(found.path, found.version, spec, environ)
    except BindError as e:
        raise ShimFailure(EXIT_BIND, str(e))
    except images.ImageError as e:
        raise ShimFailure(EXIT_IMAGE, "{} on {}: {}".format(found.name, record["host"], e))
    record["command"] = invocation.argv
    record["notes"] += invocation.notes
    _say("{} ran {} on {} for job {} ({})".format(
        "{} {}".format(found.name, found.version), image.reference, record["host"], job.id, image.how))

    t = time.monotonic()
    code, stopped = _payload(job, placement, invocation)
    record["stopped"] = stopped  # None, "walltime", or "signal" (cancelled, evicted, interrupted)
    timings["run"] = round(time.monotonic() - t, 6)
    record["payload_exit_code"] = code

    t = time.monotonic()
    try:
        outbox = args.outbox or os.path.dirname(os.path.abspath(args.result or result_path_for(args.job)))
        record["stage_out"] = staging.stage_out(job, placement, outbox)
    except staging.StagingError as e:
        raise ShimFailure(EXIT_STAGING, "stage-out failed: {}".format(e))
    timings["stage_out"] = round(time.monotonic() - t, 6)
    if stopped == "walltime":
        raise ShimFailure(EXIT_WALLTIME, "walltime of {} s exceeded: the step was killed".format(job.resources.walltime_s))
    return code


def doctor(environ) -> List[str]:
    """What this node offers, one line per runtime and transfer tool, for humans."""
    detections = [RUNTIMES[name].detect(environ) for name in DEFAULT_RUNTIME_ORDER]
    usable = [d.name for d in detections if d.usable]
    lines = ["host: {} (python {}, user {})".format(_host(), _python_version(), _user())]
    lines += ["runtime " + d.line() for d in detections]
    lines += ["transfer " + line for line in staging.detect_transfer_tools(environ)]
    order = runtime_order(None, None, environ)
    lines.append("preference order: {}{}".format(",".join(order), " (from SCAILFIN_RUNTIME)" if environ.get("SCAILFIN_RUNTIME") else " (default)"))
    lines.append("usable runtimes: " + (", ".join(usable) or "none"))
    return lines


def _payload(job: Job, placement, invocation) -> (int, Optional[str]):
    """Run the container command with the job's stdio; return (exit code, why it was stopped)."""
    opened = []
    try:
        if job.script is not None:
            stdin = subprocess.PIPE
        elif placement.stdin is not None:
            stdin = open(placement.stdin, "rb")
            opened.append(stdin)
        else:
            stdin = subprocess.DEVNULL
        stdout = stderr = None
        if placement.stdout is not None:
            stdout = open(placement.stdout, "wb")
            opened.append(stdout)
        if placement.stderr is not None:
            stderr = open(placement.stderr, "wb")
            opened.append(stderr)
        try:
            proc = subprocess.Popen(invocation.argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                    env=invocation.env)
        except OSError as e:
            raise ShimFailure(EXIT_NO_RUNTIME, "cannot start {}: {}".format(invocation.argv[0], e.strerror or e))
        stopping = []  # why the step is being stopped: "signal" or "walltime"
        previous = _forward_signals(proc, stopping)
        try:
            if job.script is not None:
                try:
                    proc.stdin.write(job.script.encode("utf-8"))
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            code = _wait(proc, job.resources.walltime_s, stopping)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return (128 - code if code < 0 else code), (stopping[0] if stopping else None)
    except OSError as e:
        raise ShimFailure(EXIT_STAGING, "cannot open the step's stdio: {}".format(e))
    finally:
        for f in opened:
            f.close()


def _forward_signals(proc, stopping):
    """SIGTERM/SIGINT/SIGHUP to the shim (cancel, eviction) are passed on to the runtime, which
    stops its container cleanly; if it has not stopped KILL_GRACE_S later, it is killed."""
    def handler(signum, frame):
        if signum == signal.SIGALRM:
            if stopping:  # the grace period is over
                _signal(proc, signal.SIGKILL)
                return
            stopping.append("walltime")
            signum = signal.SIGTERM
        elif not stopping:
            stopping.append("signal")
        _signal(proc, signum)
        signal.setitimer(signal.ITIMER_REAL, KILL_GRACE_S)
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _signal(proc, signum):
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass


def _wait(proc, walltime_s, stopping) -> int:
    """Wait for the runtime (a blocking wait: no polling delay), enforcing the walltime."""
    if walltime_s:
        signal.setitimer(signal.ITIMER_REAL, walltime_s)
    try:
        return proc.wait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _write_result(path: str, record: Dict) -> None:
    tmp = "{}.tmp-{}".format(path, os.getpid())
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as e:
        _say("cannot write the result record {}: {}".format(path, e))


def _say(message: str) -> None:
    sys.stderr.write("scailfin-shim: {}\n".format(message))
    sys.stderr.flush()


def _host() -> str:
    return os.uname().nodename


def _python_version() -> str:
    return "{}.{}.{}".format(*sys.version_info[:3])


def _user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return str(os.getuid())
