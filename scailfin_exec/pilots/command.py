# `scailfin-exec pilots`: grows an HTCondor pool onto a Slurm allocation, the VC3 way. Obtains a
# token for the pool (condor_token_fetch: the user's own identity, allowed to advertise a startd
# and a master and to read) or takes the one given, lays out a pilot directory on a file system the
# nodes see (the token 0600, the shim, the pilots' HTCondor configuration and batch script), and
# submits the pilots as one Slurm array. Each pilot's log is PILOT_DIR/pilot-ARRAY-TASK.log.

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from ..schedulers import SchedulerError
from ..schedulers.slurm import submit as slurm_submit
from ..schedulers.slurm.scheduler import TOOLS, check_cluster, run, tool
from ..shipping import build_shim
from .script import SIGNAL_BEFORE_END_S, Pilot, batch_script, condor_config
from .settings import PilotSettings

TOKEN_AUTHZ = ("ADVERTISE_STARTD", "ADVERTISE_MASTER", "READ")


def private_file(path: str, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)


def fetch_token(pool: str, lifetime_s: int) -> str:
    """A token of the user's own identity from the pool's collector (condor_token_fetch), limited
    to what a pilot needs; it never reaches a log or a job ad."""
    fetch = shutil.which("condor_token_fetch")
    if fetch is None:
        raise SchedulerError("no condor_token_fetch on PATH to obtain a token for the pilots (or give one: --token)")
    argv = [fetch, "-type", "COLLECTOR", "-pool", pool, "-lifetime", str(lifetime_s)] + \
        [a for authz in TOKEN_AUTHZ for a in ("-authz", authz)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    token = proc.stdout.strip()
    if proc.returncode != 0 or not token:
        said = (proc.stderr.strip() or f"exit {proc.returncode}").splitlines()[-1]
        raise SchedulerError(f"the pool refused a token for the pilots: {said}")
    return token


def default_pool(htcondor_options) -> str:
    if htcondor_options is not None and htcondor_options.pool:
        return htcondor_options.pool
    try:
        import htcondor2

        return str(htcondor2.param["COLLECTOR_HOST"])
    except Exception:  # noqa: BLE001  (no bindings, no configuration)
        raise SchedulerError("which pool should the pilots join? (--pool HOST[:PORT])") from None


@dataclass
class Prepared:
    """A pilot directory ready for submissions: its token, shim, configuration and batch script."""
    directory: str
    script: str
    comment: str
    tools: dict


def prepare(request: PilotSettings, slurm_options, htcondor_options=None, python: str = "python3") -> Prepared:
    """Check the cluster, lay out the pilot directory (token 0600) on a file system the nodes see."""
    if os.geteuid() == 0:
        raise SchedulerError("refusing to start pilots as root: they run the user's jobs")
    tools = {name: tool(name) for name in TOOLS}
    check_cluster(tools, slurm_options.partition)
    pool = request.pool or default_pool(htcondor_options)
    base = request.directory or os.path.join(os.path.expanduser("~"), ".local", "state", "scailfin-exec", "pilots")
    directory = os.path.join(base, time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    os.makedirs(directory, mode=0o700)
    token_file = os.path.join(directory, "token")
    if request.token:
        with open(request.token) as f:
            private_file(token_file, f.read())
    else:
        private_file(token_file, fetch_token(pool, request.walltime * 60 + SIGNAL_BEFORE_END_S) + "\n")
    pilot = Pilot(pool=pool, directory=directory, token_file=token_file, shim=build_shim(directory),
                  condor_sbin=request.condor_sbin or _sbin(), idle_s=request.idle_time,
                  condor_tarball=os.path.abspath(request.condor_tarball) if request.condor_tarball else None,
                  network_interface=request.network_interface, python=python)
    config = os.path.join(directory, "condor_config")
    private_file(config, condor_config(pilot))
    script = os.path.join(directory, "pilot.sh")
    private_file(script, batch_script(pilot, config))
    return Prepared(directory, script, f"scailfin-pilots-{os.path.basename(directory)}", tools)


def submit(prepared: Prepared, request: PilotSettings, slurm_options, count: int) -> str:
    """count more pilots, as one Slurm array: its id."""
    argv = slurm_submit.sbatch_argv(slurm_options, "scailfin-pilot", prepared.comment, count,
                                    (request.cpus, request.memory, request.gpus, request.walltime), prepared.script,
                                    os.path.join(prepared.directory, "pilot-%A-%a.log"), prepared.tools["sbatch"])
    # not the submitter's TMPDIR: a pilot's scratch is the node's (Slurm's, or what the site's prolog sets)
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    return run(argv, f"sbatch of {count} pilot(s)", env=env).stdout.strip().split(";")[0]


def live_pilots(prepared: Prepared) -> int:
    """This directory's pilots Slurm still has, pending or running (one squeue)."""
    out = run([prepared.tools["squeue"], "--noheader", "--array", "--me", "--format=%k|%T"], "reading the queue").stdout
    return sum(1 for line in out.splitlines() if line.split("|")[0] == prepared.comment)


def idle_jobs() -> int:
    """The user's idle jobs in the pool's schedds (what pilots are for)."""
    import getpass

    import htcondor2

    collector, count = htcondor2.Collector(), 0
    for ad in collector.query(htcondor2.AdType.Schedd):
        schedd = htcondor2.Schedd(ad)
        count += len(schedd.query(constraint=f'JobStatus == 1 && Owner == "{getpass.getuser()}"',
                                  projection=["ClusterId"]))
    return count


def wanted(idle: int, live: int, request: PilotSettings) -> int:
    """How many pilots to add: enough for the idle jobs (one per request.cpus of them), within
    [request.min, request.max] live pilots. Pilots are never cancelled here: idle ones leave by themselves."""
    target = max(request.min, min(request.max, -(-idle // max(1, request.cpus))))
    return max(0, target - live)


def watch(prepared: Prepared, request: PilotSettings, slurm_options, say) -> None:
    """Keep pilots in proportion to the idle jobs until interrupted (Ctrl-C, SIGTERM)."""
    say(f"watching: pilots of {request.cpus} CPU(s) between {request.min} and {request.max}; files in "
        f"{prepared.directory}")
    while True:
        idle, live = idle_jobs(), live_pilots(prepared)
        more = wanted(idle, live, request)
        if more:
            array = submit(prepared, request, slurm_options, more)
            say(f"{idle} idle job(s), {live} pilot(s): {more} more submitted as Slurm job {array}")
        time.sleep(request.interval)


def _sbin() -> str:
    found = shutil.which("condor_master")
    return os.path.dirname(found) if found else "/usr/sbin"
