# A pilot's batch script, as a pure function of its settings: a Slurm job that runs HTCondor's own
# condor_master and condor_startd on its node, one partitionable slot the size of the allocation,
# joining the pool with an IDTOKENS token (never host trust), advertising what the shim needs to
# know (the node's usable container runtimes, /cvmfs, the GPUs Slurm gave it) and ScailfinPilot.
# It leaves when idle (STARTD_NOCLAIM_SHUTDOWN) and when the allocation ends: Slurm's TERM
# (--signal, two minutes before the end) reaches condor_master as a fast shutdown (SIGQUIT), which
# evicts the running job back to the queue at once; a plain scancel TERMs every process at once,
# and the pilot then takes its slots out of the collector itself.

from __future__ import annotations

import shlex
from dataclasses import dataclass

SIGNAL_BEFORE_END_S = 120


@dataclass
class Pilot:
    pool: str  # the collector: HOST[:PORT]
    directory: str  # the pilot directory, on a file system the nodes see
    token_file: str  # in it, readable by the user alone
    shim: str  # the worker shim zipapp (its --doctor says which runtimes the node has)
    condor_sbin: str = "/usr/sbin"  # where condor_master is on the node
    condor_tarball: str | None = None  # else: an HTCondor release unpacked into the pilot's scratch
    idle_s: int = 300
    network_interface: str | None = None
    python: str = "python3"
    name: str = "scailfin-pilot"


def condor_config(p: Pilot) -> str:
    """The pilot's HTCondor configuration: $(PILOT_DIR) and the $ENV() values are filled in on the
    node. No line carries the token (it is a file in the pilot's own token directory)."""
    lines = [
        "# a scailfin-exec pilot (written on the node by its batch script)",
        f"CONDOR_HOST = {p.pool}",
        "COLLECTOR_HOST = $(CONDOR_HOST)",
        "LOCAL_DIR = $ENV(PILOT_DIR)",
        "LOG = $(LOCAL_DIR)/log",
        "SPOOL = $(LOCAL_DIR)/spool",
        "EXECUTE = $(LOCAL_DIR)/execute",
        "LOCK = $(LOCAL_DIR)/lock",
        "RUN = $(LOCAL_DIR)/run",
        "SBIN = $ENV(PILOT_SBIN)",
        "RELEASE_DIR = $(SBIN)/..",
        "BIN = $(RELEASE_DIR)/bin",
        "LIB = $(RELEASE_DIR)/lib/condor",
        "LIBEXEC = $(RELEASE_DIR)/libexec/condor",
        "MAIL = /bin/true",
        "RUNBENCHMARKS = False",
        "CONDOR_ADMIN =",
        "MASTER = $(SBIN)/condor_master",
        "STARTD = $(SBIN)/condor_startd",
        "STARTER = $(SBIN)/condor_starter",
        "DAEMON_LIST = MASTER, STARTD",
        "USE_SHARED_PORT = False",
        "MASTER_NAME = $ENV(PILOT_NAME)",
        "STARTD_NAME = $ENV(PILOT_NAME)",
        "NUM_CPUS = $ENV(PILOT_CPUS)",
        "MEMORY = $ENV(PILOT_MEMORY)",
        "NUM_SLOTS = 1",
        "NUM_SLOTS_TYPE_1 = 1",
        "SLOT_TYPE_1 = 100%",
        "SLOT_TYPE_1_PARTITIONABLE = True",
        # the GPUs the job was given (Slurm sets CUDA_VISIBLE_DEVICES, which condor_gpu_discovery honours)
        "use feature : GPUs",
        "SUSPEND = False",
        "PREEMPT = False",
        "KILL = False",
        "RANK = 0",
        f"STARTD_NOCLAIM_SHUTDOWN = {int(p.idle_s)}",
        "MASTER_UPDATE_INTERVAL = 5",
        "UPDATE_INTERVAL = 5",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS",
        "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
        "SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/tokens.d",
        "SEC_PASSWORD_DIRECTORY = $(LOCAL_DIR)/passwords.d",
        "SEC_USE_FAMILY_SESSION = False",  # a pilot on the central manager's host is not of its family
        "ALLOW_WRITE = *",  # who may claim: the pool's schedds, authenticated by the collector's say
        "ALLOW_DAEMON = *",
        "ALLOW_ADMINISTRATOR = $(CONDOR_HOST) $ENV(USER)@*",
        "ScailfinPilot = True",
        'ScailfinPilotJob = "$ENV(PILOT_JOB)"',
        'ScailfinRuntimes = "$ENV(PILOT_RUNTIMES)"',
        "HasCVMFS = $ENV(PILOT_CVMFS)",
        "STARTD_ATTRS = $(STARTD_ATTRS) ScailfinPilot ScailfinPilotJob ScailfinRuntimes HasCVMFS",
        "MASTER_ATTRS = $(MASTER_ATTRS) ScailfinPilot ScailfinPilotJob",
        # a node without a usable runtime takes no step
        'START = ScailfinRuntimes =!= ""',
    ]
    if p.network_interface:
        lines.append(f"NETWORK_INTERFACE = {p.network_interface}")
    return "\n".join(lines) + "\n"


def batch_script(p: Pilot, config_template: str) -> str:
    """The Slurm batch script of a pilot (an array task): lays out its directory in the job's
    scratch, copies the token in (0600), asks the shim which runtimes the node has, runs
    condor_master in the foreground of a shell that turns Slurm's TERM into a fast shutdown."""
    q = shlex.quote
    if p.condor_tarball:
        unpack = f"""mkdir "$PILOT_DIR/condor" && tar -xf {q(p.condor_tarball)} -C "$PILOT_DIR/condor" || exit 1
PILOT_SBIN=$(dirname "$(find "$PILOT_DIR/condor" -maxdepth 3 -path '*/sbin/condor_master' | head -n 1)")
if [ ! -x "$PILOT_SBIN/condor_master" ]; then
    echo "scailfin-exec pilot: no sbin/condor_master in "{q(p.condor_tarball)}
    exit 1
fi
echo "scailfin-exec pilot $PILOT_NAME: HTCondor unpacked from "{q(p.condor_tarball)}" into $PILOT_SBIN/.."
"""
    else:
        unpack = ""
    return f"""#!/bin/sh
#SBATCH --signal=B:TERM@{SIGNAL_BEFORE_END_S}
#SBATCH --chdir={q(p.directory)}
# a scailfin-exec pilot: HTCondor's master and startd on this node, joining {p.pool}
set -u
umask 077
exec 1>&2  # all of it to the pilot's log (sbatch --error)
PILOT_JOB="${{SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}}_${{SLURM_ARRAY_TASK_ID:-0}}"  # what scancel takes
PILOT_NAME="{p.name}-$SLURM_JOB_ID"
PILOT_DIR="${{SLURM_TMPDIR:-${{TMPDIR:-/tmp}}}}/$PILOT_NAME"
PILOT_CPUS="${{SLURM_CPUS_ON_NODE:-1}}"
PILOT_MEMORY="${{SLURM_MEM_PER_NODE:-1024}}"
PILOT_RUNTIMES=$({q(p.python)} -S {q(p.shim)} --doctor 2>/dev/null |
    sed -n 's/^usable runtimes: //p' | sed 's/^none$//; s/, /,/g')
PILOT_CVMFS=$([ -d /cvmfs ] && echo True || echo False)
PILOT_SBIN={q(p.condor_sbin)}
export PILOT_SBIN PILOT_JOB PILOT_NAME PILOT_DIR PILOT_CPUS PILOT_MEMORY PILOT_RUNTIMES PILOT_CVMFS
mkdir -p "$PILOT_DIR/log" "$PILOT_DIR/spool" "$PILOT_DIR/execute" "$PILOT_DIR/lock" "$PILOT_DIR/run" \\
    "$PILOT_DIR/tokens.d" "$PILOT_DIR/passwords.d" || exit 1
cp {q(p.token_file)} "$PILOT_DIR/tokens.d/pilot" || exit 1
cp {q(config_template)} "$PILOT_DIR/condor_config" || exit 1
{unpack}export CONDOR_CONFIG="$PILOT_DIR/condor_config"
echo "scailfin-exec pilot $PILOT_NAME (Slurm job $PILOT_JOB) on $(hostname): $PILOT_CPUS CPUs," \\
    "$PILOT_MEMORY MB, runtimes '$PILOT_RUNTIMES'"
"$PILOT_SBIN/condor_master" -f &
master=$!
trap 'kill -QUIT $master 2>/dev/null' TERM INT
wait $master
wait $master
status=$?
# a startd killed on its way out (a plain scancel TERMs every process of the job, HTCondor's procd
# too) leaves its slots in the collector, claimed by no one: the pilot takes its ads away itself
gone() {{  # DAEMON TARGETTYPE
    printf 'MyType = "Query"\\nTargetType = "%s"\\nRequirements = ScailfinPilotJob == "%s"\\n' \\
        "$2" "$PILOT_JOB" > "$PILOT_DIR/gone.ad"
    "$PILOT_SBIN/condor_advertise" "INVALIDATE_$1_ADS" "$PILOT_DIR/gone.ad" >/dev/null ||
        echo "scailfin-exec pilot $PILOT_NAME: could not take its $1 ads out of the collector"
}}
gone STARTD Machine
gone MASTER DaemonMaster
echo "scailfin-exec pilot $PILOT_NAME: condor_master ended ($status); its log:"
if grep -Eqs "SECMAN:20|AUTHENTICATE" "$PILOT_DIR/log/MasterLog" "$PILOT_DIR/log/StartLog"; then
    echo "scailfin-exec pilot $PILOT_NAME: the pool refused this pilot's updates" \\
        "(authentication failed: check its token)"
fi
for log in MasterLog StartLog; do  # its start (which binaries ran) and its end (why it stopped)
    [ -f "$PILOT_DIR/log/$log" ] || continue
    echo "==> $log <=="
    awk -v n="$(wc -l < "$PILOT_DIR/log/$log")" 'NR <= 30 || NR > n - 20 {{ print }} NR == 31 && n > 50 {{ print "[...]" }}' \
        "$PILOT_DIR/log/$log"
done
rm -rf "$PILOT_DIR"
exit 0
"""
