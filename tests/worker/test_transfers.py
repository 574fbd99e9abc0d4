# The transfer modes' halves as functions on files (no batch system, no container): shared mode's
# private copy and what comes back of it; htcondor mode's outputs archive and how the submit side
# moves it into place; a link leaving the workspace refused on both sides; a killed attempt's
# leftovers cleared.
import os
import stat

import pytest

from scailfin_exec import transfers
from scailfin_exec.job import Bind, Job, validated
from scailfin_exec.worker import transfers as worker_transfers
from scailfin_exec.worker.transfers import StagingError, escaping_link, shared

pytestmark = pytest.mark.fast


def job_in(workspace, **over):
    fields = dict(id="t", image="alpine", argv=["true"], workspace=str(workspace))
    fields.update(over)
    return validated(Job(**fields))


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    (ws / "out").mkdir(parents=True)
    (ws / "out" / "old.txt").write_text("old\n")
    (ws / "out" / "gone.txt").write_text("to delete\n")
    (ws / "notes.txt").write_text("not declared\n")
    return ws


def test_shared_mode_brings_back_what_the_step_changed_under_its_declared_outputs_only(workspace):
    job = job_in(workspace, outputs=["out"])
    placement = worker_transfers.stage_in(job, str(workspace.parent), {})
    work = placement.workspace
    assert os.path.dirname(work) == str(workspace) and os.path.basename(work).startswith(".scailfin-work-t+")
    with open(os.path.join(work, "out", "old.txt"), "w") as f:
        f.write("new\n")
    os.unlink(os.path.join(work, "out", "gone.txt"))
    open(os.path.join(work, "out", "added.txt"), "w").write("added\n")
    open(os.path.join(work, "notes.txt"), "w").write("changed\n")
    assert (workspace / "out" / "old.txt").read_text() == "old\n"  # nothing moves before the step ends
    record = worker_transfers.stage_out(job, placement, str(workspace.parent))
    assert sorted(os.listdir(workspace / "out")) == ["added.txt", "old.txt"]
    assert (workspace / "out" / "old.txt").read_text() == "new\n"
    assert (workspace / "notes.txt").read_text() == "not declared\n"
    assert (record["files"], record["method"]) == (2, "shared") and sorted(os.listdir(workspace)) == ["notes.txt", "out"]


def test_what_another_step_changed_meanwhile_is_left_alone(workspace):
    job = job_in(workspace)
    placement = worker_transfers.stage_in(job, str(workspace.parent), {})
    (workspace / "out" / "old.txt").write_text("another step's\n")  # in the real workspace, meanwhile
    worker_transfers.stage_out(job, placement, str(workspace.parent))
    assert (workspace / "out" / "old.txt").read_text() == "another step's\n"


def test_a_link_leaving_the_workspace_refuses_all_that_would_come_back(workspace):
    job = job_in(workspace)
    placement = worker_transfers.stage_in(job, str(workspace.parent), {})
    os.symlink("/etc/passwd", os.path.join(placement.workspace, "escape"))
    open(os.path.join(placement.workspace, "out", "new.txt"), "w").write("new\n")
    with pytest.raises(StagingError, match="is a symbolic link leaving the workspace \\(to /etc/passwd\\): refused"):
        worker_transfers.stage_out(job, placement, str(workspace.parent))
    assert not os.path.lexists(workspace / "escape") and not (workspace / "out" / "new.txt").exists()


def test_a_killed_attempts_private_copy_is_cleared_by_the_submit_side(workspace):
    job = job_in(workspace)
    worker_transfers.stage_in(job, str(workspace.parent), {})  # and never staged out: killed
    other = job_in(workspace, id="t.other")
    worker_transfers.stage_in(other, str(workspace.parent), {})
    assert transfers.mode("shared").bring_back(job, str(workspace.parent), str(workspace.parent)) is None
    left = sorted(n for n in os.listdir(workspace) if n.startswith(shared.WORK_MARK))
    assert left and all(n.startswith(shared.WORK_MARK + "t.other+") for n in left)  # another job's is not ours


def test_htcondor_mode_outputs_travel_as_one_archive_and_are_moved_into_place(tmp_path, workspace):
    scratch = tmp_path / "scratch"
    (scratch / "copy" / "out").mkdir(parents=True)
    (scratch / "copy" / "out" / "result.txt").write_text("from the worker\n")
    outbox = tmp_path / "back"
    outbox.mkdir()
    job = job_in(workspace, transfer="htcondor", outputs=["out"])
    from scailfin_exec.worker.transfers.htcondor import OUTPUTS_TAR, pack_outputs

    pack_outputs(job, str(scratch / "copy"), str(outbox / OUTPUTS_TAR))
    assert transfers.mode("htcondor").bring_back(job, str(tmp_path), str(outbox)) is None
    assert (workspace / "out" / "result.txt").read_text() == "from the worker\n"
    assert (workspace / "out" / "old.txt").read_text() == "old\n"


def test_htcondor_mode_sends_odd_paths_through_links_of_plain_names(tmp_path, workspace):
    odd = tmp_path / "in $(x),y.txt"
    odd.write_text("odd\n")
    job = transfers.mode("htcondor").ship(job_in(workspace, transfer="htcondor", inputs=[str(odd)]), str(tmp_path / "j"))
    assert job.staged[str(odd)] == "send/0/file" and os.readlink(tmp_path / "j" / "send" / "0" / "file") == str(odd)
    assert job.staged[str(workspace)] == "send/1.tar"
    assert transfers.mode("htcondor").inputs(job, str(tmp_path / "j")) == [str(tmp_path / "j" / "send")]
    assert stat.S_IMODE(os.stat(tmp_path / "j").st_mode) == 0o700  # the job's directory, made for what it sends


def test_an_output_link_is_followed_as_the_step_saw_it_to_tell_whether_it_leaves_the_workspace(tmp_path):
    (tmp_path / "sub").mkdir()
    links = {"abs_in": "/data/ws/sub", "abs_out": "/etc/passwd", "rel_out": "../x", "rel_in": "sub/../sub",
             "chain": "esc", "esc": "/etc", "loop": "loop", "prefix": "/data/wsx", "dangling_in": "/data/ws/none"}
    for name, target in links.items():
        (tmp_path / name).symlink_to(target)
    leaving = {name for name in links if escaping_link(str(tmp_path / name), str(tmp_path), "/data/ws")}
    assert leaving == {"abs_out", "rel_out", "chain", "esc", "loop", "prefix"}
    assert escaping_link(str(tmp_path / "sub"), str(tmp_path), "/data/ws") is None  # not a link


def _htcondor_carries(job, job_dir, scratch):
    """What HTCondor's file transfer does with the job's inputs: each file (links followed) and each
    directory (whole) into the scratch directory, by its base name."""
    import shutil
    scratch.mkdir()
    for path in transfers.mode("htcondor").inputs(job, str(job_dir)):
        target = scratch / os.path.basename(path)
        if os.path.isdir(path):
            shutil.copytree(path, target, symlinks=False)
        else:
            shutil.copy(path, target)


@pytest.mark.parametrize("name", ["hello.tar", "data.tar.gz", "outputs.tar", "scailfin-shim-0123abcd.pyz", "send",
                                  "job.json"])
def test_htcondor_mode_brings_a_users_file_named_like_an_archive_or_a_shim_file_as_itself(tmp_path, workspace, name):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / name).write_bytes(b"the user's own bytes, not an archive\n")
    directory = inputs / "a-directory.tar"  # a directory whose name looks like an archive
    directory.mkdir()
    (directory / "inside.txt").write_text("inside\n")
    job = transfers.mode("htcondor").ship(
        job_in(workspace, transfer="htcondor", inputs=[str(inputs / name), str(directory)]), str(tmp_path / "j"),
        frozenset({"job.json", "back", "send"}))
    assert set(job.archives) == {str(directory), str(workspace)}  # the job says what is an archive
    scratch = tmp_path / "scratch"
    _htcondor_carries(job, tmp_path / "j", scratch)
    placement = worker_transfers.stage_in(job_from_json(job), str(scratch), {})
    where = {b.target: b.source for b in placement.binds}
    assert open(where[str(inputs / name)], "rb").read() == b"the user's own bytes, not an archive\n"
    assert open(os.path.join(where[str(directory)], "inside.txt")).read() == "inside\n"
    assert sorted(os.listdir(placement.workspace)) == ["notes.txt", "out"]


def job_from_json(job):
    """The job as the worker reads it: through its JSON form."""
    from scailfin_exec.worker.jobspec import dumps, job_from_dict, loads
    return job_from_dict(loads(dumps(job)))


def test_htcondor_mode_brings_an_in_place_update_of_a_writable_bind_back_where_it_was(tmp_path, workspace):
    elsewhere = tmp_path / "upstream"  # an earlier step's outputs, outside this step's workspace
    (elsewhere / "dir").mkdir(parents=True)
    (elsewhere / "count").write_text("3")
    (elsewhere / "dir" / "kept.txt").write_text("kept\n")
    binds = [Bind(str(elsewhere / "count"), str(workspace / "count"), True),
             Bind(str(elsewhere / "dir"), str(workspace / "inp"), True)]
    job = job_in(workspace, transfer="htcondor", binds=binds, inputs=[b.source for b in binds],
                 outputs=[".", str(elsewhere / "count"), str(elsewhere / "dir")])
    job = transfers.mode("htcondor").ship(job, str(tmp_path / "j"), frozenset())
    scratch = tmp_path / "scratch"
    _htcondor_carries(job, tmp_path / "j", scratch)
    placement = worker_transfers.stage_in(job_from_json(job), str(scratch), {})
    where = {b.target: b.source for b in placement.binds}
    open(where[str(workspace / "count")], "w").write("4")  # the step, through its writable binds
    open(os.path.join(where[str(workspace / "inp")], "blurb"), "w").close()
    outbox = tmp_path / "back"
    outbox.mkdir()
    worker_transfers.stage_out(job_from_json(job), placement, str(outbox))
    assert (elsewhere / "count").read_text() == "3"  # nothing moves before the job has ended
    assert transfers.mode("htcondor").bring_back(job, str(tmp_path / "j"), str(outbox)) is None
    assert (elsewhere / "count").read_text() == "4"
    assert sorted(os.listdir(elsewhere / "dir")) == ["blurb", "kept.txt"]
    assert sorted(os.listdir(elsewhere)) == ["count", "dir"]  # no temporaries left beside them


def test_an_output_outside_the_workspace_must_be_a_writable_binds_source(tmp_path, workspace):
    from scailfin_exec.job import JobError
    with pytest.raises(JobError, match=r"job.outputs\[0\]: .* is outside the workspace .* no writable bind's source"):
        job_in(workspace, outputs=[str(tmp_path / "elsewhere")],
               binds=[Bind(str(tmp_path / "elsewhere"), str(workspace / "x"), False)])
