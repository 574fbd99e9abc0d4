# The keeper: runs a step's container command so that nothing the step starts outlives it and
# nothing it should only read is writable. It is forked from the shim into its own session, is
# told by the kernel when the shim dies (even by SIGKILL), and then stops the step itself.
# Standard library only (worker side), Linux.
#
# How a step is held depends on the runtime (its adapter says which):
#   namespace  the keeper makes user, mount and PID namespaces of its own (Charliecloud has no PID
#              namespace and cannot bind read-only): read-only binds are read-only mounts made
#              here, mount points a read-only image lacks are made on a private layer over it, and
#              the step's PID 1 is ours, so every process of the step ends with it
#   subreaper  processes the step leaves behind come back to the keeper, which ends them
#              (Apptainer with its own PID namespace, Shifter, Sarus)
#   runtime    the container has its own PID namespace, and a container left behind by a killed
#              client is removed with the runtime's own command (Podman, Docker)
# Stopping (a signal to the shim, the walltime, the shim's death) is SIGTERM to the step, then
# SIGKILL after a grace period.

import json
import os
import signal
import subprocess
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from . import namespaces

GRACE_S = 10  # between SIGTERM and SIGKILL
LEFTOVER_GRACE_S = 2  # for processes a step left behind when it ended by itself
MAX_TIMER_S = 10 ** 9  # a walltime beyond this is no limit (setitimer cannot hold much more)
CLEANUP_TIMEOUT_S = 60



class KeeperError(Exception):
    """The step could not be held as its runtime needs (no namespaces, no private layer), or
    its runtime could not be started (kind "start")."""

    def __init__(self, message: str, kind: str = "contain"):
        super().__init__(message)
        self.kind = kind


class Plan(NamedTuple):
    argv: List[str]
    env: Dict[str, str]
    contain: str = "subreaper"  # "namespace", "subreaper" or "runtime"
    # namespace: (source, mount point, writable): source mounted at the mount point (read-only
    # unless writable), which the runtime binds from, so the step sees it that way
    binds: List[Tuple[str, str, bool]] = []
    # namespace: (root, path under it, is a directory): mount points the runtime binds onto, made
    # where missing: in a directory of the keeper's own, or on a private layer over a read-only
    # image (root = image)
    mount_points: List[Tuple[str, str, bool]] = []
    image: Optional[str] = None
    area: Optional[str] = None  # namespace: an empty directory for the keeper's own mounts
    cleanup: List[List[str]] = []  # runtime: commands removing what a stopped container left
    walltime_s: Optional[int] = None
    grace_s: float = GRACE_S


class Outcome(NamedTuple):
    code: int  # the payload's exit code (128 + N when it died of signal N)
    stopped: Optional[str]  # None, "walltime" or "signal" (cancelled, evicted, the shim died)
    notes: List[str]


def run(plan: Plan, stdin, stdout, stderr) -> Outcome:
    """Run plan.argv with these stdio file descriptors (None: /dev/null, or the shim's own
    output) under a keeper, forwarding SIGTERM, SIGINT and SIGHUP to it; KeeperError if the
    step could not be held as the plan says."""
    read_end, write_end = os.pipe()
    shim = os.getpid()
    pid = os.fork()
    if pid == 0:  # the keeper
        os.close(read_end)
        report = {}
        try:
            report = _keep(plan, (stdin, stdout, stderr), shim, write_end)._asdict()
        except KeeperError as e:
            report = {"error": str(e), "kind": e.kind}
        except BaseException as e:  # noqa: B902  (a bug: the shim reports it)
            report = {"bug": "{}: {}".format(type(e).__name__, e)}
        finally:
            _write_all(write_end, json.dumps(report).encode())
            os._exit(0)
    os.close(write_end)

    def forward(signum, frame):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        chunks = []
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.waitpid(pid, 0)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(read_end)
    try:
        report = json.loads(b"".join(chunks).decode())
    except ValueError:
        report = {"bug": "the keeper ended without a report"}
    if "error" in report:
        raise KeeperError(report["error"], report["kind"])
    if "bug" in report:
        raise RuntimeError("keeper: " + report["bug"])
    return Outcome(report["code"], report["stopped"], report["notes"])


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError:
            return


# -- the keeper process -------------------------------------------------------------------------

class _Stop:
    """Why the step is being stopped, and how to reach it (set once the step has started)."""

    def __init__(self, grace_s: float):
        self.reason = None  # type: Optional[str]
        self.grace_s = grace_s
        self.target = None  # type: Optional[int]
        self.group = False  # target is a process group (its leader's pid)

    def send(self, signum: int) -> None:
        if self.target is None:
            return
        try:
            if self.group:
                os.killpg(self.target, signum)
            else:
                os.kill(self.target, signum)
        except ProcessLookupError:
            pass

    def begin(self, reason: str) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        self.send(signal.SIGTERM)
        signal.setitimer(signal.ITIMER_REAL, self.grace_s)

    def on_signal(self, signum, frame) -> None:
        if signum != signal.SIGALRM:
            self.begin("signal")
        elif self.reason is None:
            self.begin("walltime")
        else:  # the grace period is over
            self.send(signal.SIGKILL)


def _keep(plan: Plan, stdio, shim: int, report_fd: int) -> Outcome:
    os.setsid()  # a kill of the shim's process group leaves the keeper to finish stopping the step
    namespaces.prctl(namespaces.PR_SET_PDEATHSIG, signal.SIGTERM)  # the shim's death, even by SIGKILL, stops the step
    stop = _Stop(plan.grace_s)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, stop.on_signal)
    if os.getppid() != shim:
        stop.begin("signal")  # the shim died before the keeper could watch it
    notes = []  # type: List[str]
    step = None
    if plan.contain == "namespace":
        try:
            notes += namespaces.enter(plan.binds, plan.mount_points, plan.image, plan.area)
        except namespaces.NamespaceError as e:
            raise KeeperError(str(e))
        init = os.fork()
        if init == 0:
            code = 255
            try:
                os.close(report_fd)
                code = _init(plan, stdio, os.getppid())
            finally:
                os._exit(code)
        stop.target = init
    else:
        if plan.contain == "subreaper":
            namespaces.prctl(namespaces.PR_SET_CHILD_SUBREAPER, 1)
        try:
            # the Popen object stays referenced until the step is reaped below: were it dropped, its
            # __del__ would poll the child, and reap a step that has already exited (a fast `exit 3`
            # on a busy machine), and the wait below would then wait for what the step left behind
            step = _spawn(plan, stdio)
        except OSError as e:
            raise KeeperError("cannot start {}: {}".format(plan.argv[0], e.strerror or e), "start")
        stop.target, stop.group = step.pid, True
    if stop.reason is not None:
        stop.send(signal.SIGTERM)
    elif plan.walltime_s:
        if plan.walltime_s > MAX_TIMER_S:
            notes.append("walltime of {} s is beyond any timer: the step ran without one".format(plan.walltime_s))
        else:
            signal.setitimer(signal.ITIMER_REAL, plan.walltime_s)
    status = _wait_for(stop.target)
    signal.setitimer(signal.ITIMER_REAL, 0)
    if step is not None:
        step.returncode = _exit_code(status)  # reaped here: its Popen must not poll it again
    code = _exit_code(status)
    if plan.contain == "subreaper":
        ended = _end_children()
        if ended:
            notes.append("ended {} process(es) the step left behind".format(ended))
    if plan.contain == "runtime" and (stop.reason is not None or os.WIFSIGNALED(status)):
        for argv in plan.cleanup:
            out = _quiet_run(argv)
            notes.append("{} (exit {})".format(" ".join(argv), out))
    return Outcome(code, stop.reason, notes)


def _init(plan: Plan, stdio, keeper: int) -> int:
    """PID 1 of the step's PID namespace: start the runtime, pass SIGTERM on to it, reap orphans,
    and end with the runtime's exit code; the kernel then kills whatever is left."""
    namespaces.prctl(namespaces.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != keeper:
        return 137
    try:  # the step's /proc shows the step's processes (and ch-run binds this one)
        namespaces.mount("proc", "/proc", "proc", 0)
    except namespaces.NamespaceError:
        pass
    child = {}

    def forward(signum, frame):
        if "pid" in child:
            try:
                os.killpg(child["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    try:
        child["proc"] = _spawn(plan, stdio)  # kept referenced until reaped (see _keep)
        child["pid"] = child["proc"].pid
    except OSError as e:
        os.write(2, "scailfin-shim: error: cannot start {}: {}\n".format(plan.argv[0], e.strerror or e).encode())
        return 127
    code = _exit_code(_wait_for(child["pid"]))
    child["proc"].returncode = code
    return code


def _spawn(plan: Plan, stdio) -> subprocess.Popen:
    stdin, stdout, stderr = stdio
    return subprocess.Popen(plan.argv, env=plan.env, stdin=subprocess.DEVNULL if stdin is None else stdin,
                            stdout=stdout, stderr=stderr, start_new_session=True)


def _wait_for(pid: int) -> int:
    """Wait for pid, reaping any other child that ends meanwhile (orphans come to a subreaper
    and to PID 1); returns pid's wait status."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if done == pid:
            return status


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _children() -> List[int]:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/{}/stat".format(entry), "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me and fields[0] != b"Z":
                found.append(int(entry))
    return found


def _end_children() -> int:
    """End whatever the step left behind (its orphans came to us): SIGTERM, then SIGKILL."""
    ended, signum = set(), signal.SIGTERM
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while True:
        while True:  # reap what has ended
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        left = _children()
        if not left:
            return len(ended)
        if time.monotonic() > deadline:
            signum = signal.SIGKILL
        for pid in left:
            ended.add(pid)
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _quiet_run(argv: List[str]) -> int:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=CLEANUP_TIMEOUT_S).returncode
    except (OSError, subprocess.TimeoutExpired):
        return -1
