# The htcondor scheduler's own settings: where to submit, and site policy. Read like every
# setting (config.py): the YAML config file, the environment, the command line.

from __future__ import annotations

from dataclasses import dataclass

from ...config import setting


@dataclass
class HTCondorSettings:
    pool: str | None = setting(None, "the collector to ask for the schedd (default: the HTCondor configuration's "
                               "COLLECTOR_HOST)", env="SCAILFIN_POOL", metavar="HOST[:PORT]")
    schedd: str | None = setting(None, "the schedd to submit to, by name (default: the pool's only or first schedd)",
                                 env="SCAILFIN_SCHEDD", metavar="NAME")
    accounting_group: str | None = setting(None, "accounting_group of every job", env="SCAILFIN_ACCOUNTING_GROUP",
                                           metavar="GROUP")
    requirements: str | None = setting(None, "a requirements expression every job gets (e.g. 'HasSingularity'; "
                                       "site policy, taken as written)", env="SCAILFIN_REQUIREMENTS", metavar="EXPR")
    submit_commands: dict[str, str] = setting({}, "extra submit commands for every job, e.g. "
                                              "{periodic_remove: 'JobStatus == 5'} (config file only; site policy, "
                                              "taken as written)", cli=False)
    job_attributes: dict[str, str] = setting({}, "extra job ClassAd attributes (+Name = value), values as ClassAd "
                                             "expressions (config file only; site policy, taken as written)", cli=False)
    max_retries: int = setting(3, "how often an evicted job, or one held for a transient reason (e.g. a failed "
                               "transfer), is run again before its step fails", env="SCAILFIN_MAX_RETRIES", metavar="N")

    job_lease: int = setting(2400, "seconds a running step whose node went silent (its startd killed, its network "
                             "gone) is waited for before it runs elsewhere; a restarted schedd must reconnect to "
                             "its running steps within it (HTCondor's job_lease_duration, default its own: 2400)",
                             env="SCAILFIN_JOB_LEASE", metavar="S")

    run_lease: int = setting(1200, "seconds a run's queued jobs outlive the process that submitted them once it "
                             "stops renewing their lease (killed with SIGKILL, its host down): the schedd then "
                             "removes them (running ones run to their end); a restarted `serve` must come back "
                             "within it", env="SCAILFIN_RUN_LEASE", metavar="S")

    schedd_timeout: int = setting(1800, "seconds the run waits for a schedd that does not answer (its host down, the "
                                  "network cut) before its steps there fail; shorter outages are ridden out. Jobs a "
                                  "schedd lost (gone from its queue and history) fail within a minute or two",
                                  env="SCAILFIN_SCHEDD_TIMEOUT", metavar="S")

    def validate(self) -> "HTCondorSettings":
        if self.run_lease < 20:
            raise ValueError(f"run_lease: must be at least 20 s, got {self.run_lease}")
        if self.job_lease < 20:
            raise ValueError(f"job_lease: must be at least 20 s (the pool's own heartbeats), got {self.job_lease}")
        if self.schedd_timeout < 20:
            raise ValueError(f"schedd_timeout: must be at least 20 s, got {self.schedd_timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries: must be at least 0, got {self.max_retries}")
        if self.accounting_group and not all(c.isalnum() or c in "_.-@" for c in self.accounting_group):
            raise ValueError(f"accounting_group: {self.accounting_group!r} is not a group name (letters, digits, "
                             "'_', '.', '-', '@')")
        return self
