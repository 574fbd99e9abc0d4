# The scheduler registry (schedulers/__init__.py): every scheduler is found through it, declares
# its transfer modes and its own settings, and refuses a job whose transfer mode it does not take
# before anything runs.
import dataclasses

import pytest

from scailfin_exec.config import Settings
from scailfin_exec.job import Job
from scailfin_exec.schedulers import SCHEDULERS, SchedulerError, make_scheduler, scheduler_class
from scailfin_exec.schedulers.local import LocalScheduler
from scailfin_exec.worker.transfers import MODES

pytestmark = pytest.mark.fast


def test_every_scheduler_declares_its_name_help_transfer_modes_and_settings():
    for name in SCHEDULERS:
        cls = scheduler_class(name)
        assert cls.name == name and len(cls.help) > 10 and set(cls.transfers) <= set(MODES)
        assert cls.options_class is None or dataclasses.is_dataclass(cls.options_class)
    assert scheduler_class("local").transfers == ("shared",)
    assert scheduler_class("htcondor").transfers == ("shared", "htcondor", "chirp")


def test_an_unknown_scheduler_names_the_known_ones():
    with pytest.raises(SchedulerError, match="unknown scheduler 'pbs' \\(known: local, htcondor, slurm\\)"):
        scheduler_class("pbs")


def test_make_scheduler_builds_the_one_the_settings_name(tmp_path):
    with make_scheduler(Settings(run_dir=str(tmp_path / "run"), max_parallel=3)) as scheduler:
        assert isinstance(scheduler, LocalScheduler) and scheduler.capacity == 3


def test_a_job_whose_transfer_mode_the_scheduler_does_not_take_is_refused_before_anything_runs(tmp_path):
    job = Job(id="j", image="alpine", argv=["true"], workspace=str(tmp_path), transfer="htcondor")
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        with pytest.raises(SchedulerError, match="the local scheduler cannot use transfer mode 'htcondor'"):
            scheduler.submit(job)
        assert not (tmp_path / "run" / "j").exists()
