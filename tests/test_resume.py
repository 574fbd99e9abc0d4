# The cache of finished steps (resume.py) on its own: keys that depend on content and not on order,
# times or paths; an entry that is finished only once its status says so, written last; a step
# killed half-way (its process gone, its lock with it) leaves an entry the next run takes over and
# empties; two runs after the same entry: the second waits, then takes the first one's outputs.
import os
import subprocess
import sys
import textwrap
import time

import pytest

from scailfin_exec import resume

pytestmark = pytest.mark.fast


def test_a_key_depends_on_the_parts_and_not_on_their_order():
    assert resume.step_key({"a": 1, "b": [1, 2]}) == resume.step_key({"b": [1, 2], "a": 1})
    assert resume.step_key({"a": 1, "b": [1, 2]}) != resume.step_key({"a": 1, "b": [2, 1]})
    assert len(resume.step_key({})) == 32


def test_a_directory_is_known_by_its_names_and_contents_not_its_times_or_place(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "data.txt").write_text("x\n")
        os.symlink("sub/data.txt", tmp_path / name / "link")
    os.utime(tmp_path / "two" / "sub" / "data.txt", (0, 0))
    assert resume.tree_identity(str(tmp_path / "one")) == resume.tree_identity(str(tmp_path / "two"))
    (tmp_path / "two" / "sub" / "data.txt").write_text("y\n")
    assert resume.tree_identity(str(tmp_path / "one")) != resume.tree_identity(str(tmp_path / "two"))


def test_an_entry_is_finished_only_once_its_status_is_written_after_its_outputs(tmp_path):
    entry = resume.Entry(str(tmp_path), "k" * 32)
    assert not entry.finished and entry.claim()
    (tmp_path / ("k" * 32) / "out.txt").write_text("whole\n")
    entry.finish("success", resume.origin_here("wf", "", "step-1"))
    again = resume.Entry(str(tmp_path), "k" * 32)
    assert again.finished and again.origin().job_id == "step-1"
    assert (tmp_path / ("k" * 32) / "out.txt").read_text() == "whole\n"
    again.close()


def test_a_failed_step_leaves_an_entry_the_next_run_takes_over_and_empties(tmp_path):
    entry = resume.Entry(str(tmp_path), "f" * 32)
    entry.claim()
    (tmp_path / ("f" * 32) / "half.txt").write_text("hal")
    entry.finish("permanentFail")
    retry = resume.Entry(str(tmp_path), "f" * 32)
    assert not retry.finished and retry.claim()
    assert os.listdir(tmp_path / ("f" * 32)) == []
    retry.close()


def test_a_step_killed_half_way_leaves_no_finished_entry_and_its_lock_goes_with_it(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        from scailfin_exec import resume
        entry = resume.Entry({str(tmp_path)!r}, "h" * 32)
        entry.claim()
        open(os.path.join(entry.path, "half.txt"), "w").write("hal")
        print("claimed", flush=True)
        time.sleep(300)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "claimed"
        writer.kill()
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    entry = resume.Entry(str(tmp_path), "h" * 32)
    assert not entry.finished and entry.claim()  # the lock was the killed process's: not held any more
    assert os.listdir(tmp_path / ("h" * 32)) == []
    entry.close()


def test_a_second_run_after_the_same_entry_waits_for_the_first_and_takes_its_outputs(tmp_path):
    first = resume.Entry(str(tmp_path), "w" * 32)
    assert first.claim()
    looker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from scailfin_exec import resume
        entry = resume.Entry({str(tmp_path)!r}, "w" * 32)
        print("hit" if entry.finished or not entry.claim() else "claimed", flush=True)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        assert looker.poll() is None  # waiting for the first run's lock
        (tmp_path / ("w" * 32) / "out.txt").write_text("done\n")
        first.finish("success", resume.origin_here("wf", "", "step-1"))
        out, _ = looker.communicate(timeout=30)
    finally:
        if looker.poll() is None:
            looker.kill()
            looker.wait()
    assert out.strip() == "hit"
