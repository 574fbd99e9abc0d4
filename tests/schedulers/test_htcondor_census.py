# The census's reading of a job gone from a schedd's queue without an event in the run's log
# (census.outcome), and how often it counts; the census itself is proven on the pool by the fault
# tier (tests/faults/test_batch_daemons.py: a wiped queue, a silent schedd).
import pytest

from scailfin_exec.schedulers.htcondor.census import interval, outcome

pytestmark = pytest.mark.fast
WHY = "job 7.0 is gone from the queue of s without a word in the run's event log"


def test_a_job_in_no_history_is_lost_and_says_so():
    status, why = outcome(None, WHY)
    assert status is None and why.startswith(WHY) and "the schedd lost it" in why


def test_a_job_its_history_says_completed_ends_with_its_exit_status():
    assert outcome({"JobStatus": 4, "ExitCode": 3, "ExitBySignal": False}, WHY) == (3, WHY)
    assert outcome({"JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9}, WHY) == (137, WHY)


def test_a_job_its_history_says_removed_fails_with_the_reason():
    status, why = outcome({"JobStatus": 3, "RemoveReason": "via condor_rm (by user admin)"}, WHY)
    assert status is None and why.endswith("removed (via condor_rm (by user admin))")


def test_the_census_counts_every_quarter_of_the_timeout_between_5_s_and_a_minute():
    assert [interval(t) for t in (20, 100, 1800)] == [5.0, 25.0, 60.0]
