# The pilots' own settings (`scailfin-exec pilots`): how big each pilot is, how long it lives, where
# HTCondor is on the nodes, and the elastic bounds. Read like every setting (config.py), from the
# YAML config file's `pilots:` mapping, SCAILFIN_PILOT_* environment variables and the command line.

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import setting


@dataclass
class PilotSettings:
    count: int = setting(1, "pilots to submit (default 1; with --watch, see --min and --max)",
                         env="SCAILFIN_PILOT_COUNT", metavar="N")
    cpus: int = setting(1, "CPUs per pilot: its one partitionable slot's size (default 1)",
                        env="SCAILFIN_PILOT_CPUS", metavar="N")
    memory: int = setting(1024, "memory per pilot in MiB (default 1024)", env="SCAILFIN_PILOT_MEMORY", metavar="MB")
    gpus: int = setting(0, "GPUs per pilot (sbatch --gres=gpu:N; HTCondor's GPU discovery advertises those Slurm "
                        "gave it, for steps that ask for GPUs) (default 0)", env="SCAILFIN_PILOT_GPUS", metavar="N")
    walltime: int = setting(60, "each pilot's Slurm time limit in minutes (default 60); it drains two minutes "
                            "before, its running jobs going back to the queue", env="SCAILFIN_PILOT_WALLTIME",
                            metavar="MIN")
    idle_time: int = setting(300, "a pilot with no job for this long leaves (default 300)",
                             env="SCAILFIN_PILOT_IDLE_TIME", metavar="S")
    pool: str | None = setting(None, "the collector to join (default: the htcondor scheduler's pool setting, else "
                               "the HTCondor configuration's COLLECTOR_HOST)", env="SCAILFIN_PILOT_POOL",
                               metavar="HOST[:PORT]")
    token: str | None = setting(None, "an IDTOKEN file for the pilots (default: condor_token_fetch one of your "
                                "identity, limited to ADVERTISE_STARTD, ADVERTISE_MASTER and READ)",
                                env="SCAILFIN_PILOT_TOKEN", metavar="FILE")
    condor_sbin: str | None = setting(None, "where condor_master is on the nodes (default: as here, else /usr/sbin)",
                                      env="SCAILFIN_PILOT_CONDOR_SBIN", metavar="DIR")
    condor_tarball: str | None = setting(None, "an HTCondor release tarball (as htcondor.org ships them: "
                                         "sbin/condor_master inside) on a file system the nodes see, unpacked by "
                                         "each pilot into its scratch: for nodes without HTCondor",
                                         env="SCAILFIN_PILOT_CONDOR_TARBALL", metavar="FILE")
    network_interface: str | None = setting(None, "the address the pilots' daemons use",
                                            env="SCAILFIN_PILOT_NETWORK_INTERFACE", metavar="ADDR")
    directory: str | None = setting(None, "where the pilots' files go, on a file system the nodes see (default "
                                    "~/.local/state/scailfin-exec/pilots)", env="SCAILFIN_PILOT_DIRECTORY",
                                    metavar="DIR")
    min: int = setting(0, "with --watch: pilots kept even with no idle job (default 0)", env="SCAILFIN_PILOT_MIN",
                       metavar="N")
    max: int = setting(10, "with --watch: at most this many pilots pending or running (default 10)",
                       env="SCAILFIN_PILOT_MAX", metavar="N")
    interval: float = setting(5.0, "with --watch: seconds between two looks at the queues (default 5)",
                              env="SCAILFIN_PILOT_INTERVAL", metavar="S")

    def validate(self) -> "PilotSettings":
        for name in ("count", "cpus", "memory", "walltime"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.gpus < 0:
            raise ValueError(f"gpus: must be at least 0, got {self.gpus}")
        if self.idle_time < 1:
            raise ValueError(f"idle_time: must be at least 1 second, got {self.idle_time}")
        if not 0 <= self.min <= self.max:
            raise ValueError(f"min {self.min} and max {self.max}: need 0 <= min <= max")
        if not 0.5 <= self.interval <= 3600:
            raise ValueError(f"interval: must be between 0.5 and 3600 seconds, got {self.interval}")
        if self.condor_sbin and self.condor_tarball:
            raise ValueError("condor_sbin and condor_tarball: give one (HTCondor on the nodes, or unpacked from it)")
        for name in ("token", "condor_tarball"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{name}: no such file {path!r}")
        return self
