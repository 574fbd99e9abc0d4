# The slurm scheduler's own settings: where jobs go (site policy) and how often the queue is read.
# Read like every setting (config.py): the YAML config file, the environment, the command line.

from __future__ import annotations

from dataclasses import dataclass

from ...config import setting


@dataclass
class SlurmSettings:
    partition: str | None = setting(None, "the partition every job goes to (default: the cluster's default one)",
                                    env="SCAILFIN_PARTITION", metavar="NAME")
    account: str | None = setting(None, "the account jobs are charged to (sbatch --account)",
                                  env="SCAILFIN_ACCOUNT", metavar="NAME")
    qos: str | None = setting(None, "the quality of service (sbatch --qos)", env="SCAILFIN_QOS", metavar="NAME")
    reservation: str | None = setting(None, "a reservation to run in (sbatch --reservation)",
                                      env="SCAILFIN_RESERVATION", metavar="NAME")
    constraint: str | None = setting(None, "node features jobs need (sbatch --constraint, e.g. 'haswell&ib')",
                                     env="SCAILFIN_CONSTRAINT", metavar="EXPR")
    sbatch_lines: list[str] = setting([], "extra #SBATCH lines for every job, e.g. ['--licenses=fs:1'] (config "
                                      "file only; site policy, taken as written)", cli=False)
    poll_interval: float = setting(0.5, "seconds between two reads of the queue (one squeue for the whole run)",
                                   env="SCAILFIN_POLL_INTERVAL", metavar="S")

    def validate(self) -> "SlurmSettings":
        for name in ("partition", "account", "qos", "reservation", "constraint"):
            value = getattr(self, name)
            if value is not None and (not value or any(c.isspace() or c in "\0" for c in value)):
                raise ValueError(f"{name}: {value!r} is not a Slurm name (no spaces or line breaks)")
        for line in self.sbatch_lines:
            if "\n" in line or "\r" in line or not line.startswith("-"):
                raise ValueError(f"sbatch_lines: {line!r} must be one sbatch option (starting with '-', one line)")
        if not 0.05 <= self.poll_interval <= 600:
            raise ValueError(f"poll_interval: must be between 0.05 and 600 seconds, got {self.poll_interval}")
        return self
