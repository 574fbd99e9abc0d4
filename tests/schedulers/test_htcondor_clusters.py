# The htcondor scheduler's record of its batches' clusters (no pool): which proc each job of a
# batch will have, so that a process taking the run over finds the jobs a factory has still to make.
import pytest

from scailfin_exec.schedulers.htcondor import clusters

pytestmark = pytest.mark.fast


def test_the_jobs_a_live_factory_has_still_to_make_are_found_at_the_procs_they_will_have(tmp_path):
    assert clusters.unmade(str(tmp_path), {7: 0}) == {}  # nothing noted yet
    clusters.note(str(tmp_path), 7, 0, ["a", "b", "c"])
    clusters.note(str(tmp_path), 8, 0, ["d", "e"])
    clusters.note(str(tmp_path), 9, 0, ["f"])
    # 7's factory has made a (proc 0); 8's is gone (all made and ended); 9's has made nothing
    assert clusters.unmade(str(tmp_path), {7: 1, 9: 0}) == {"b": (7, 1), "c": (7, 2), "f": (9, 0)}
