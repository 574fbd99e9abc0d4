# The chirp transfer mode's submit half, without a pool: each directory a step needs becomes one
# archive in the run directory, shared by the jobs that need the same content, made anew when the
# directory changes, removed when no job needs it; a large directory, or one of a few entries, is
# left to travel entry by entry; a directory that cannot be read is refused with its name.
import os
import tarfile

import pytest

from scailfin_exec.job import Job
from scailfin_exec.transfers import chirp

pytestmark = pytest.mark.fast


def job(tmp_path, name, data):
    return Job(id=name, image="alpine", argv=["true"], workspace=str(tmp_path / "ws"), transfer="chirp",
               inputs=[str(data)])


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "ws").mkdir()
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for i in range(50):
        (data / "sub" / f"f{i}.txt").write_text(f"{i}\n")
    (data / "read-only").mkdir()
    (data / "read-only" / "x").write_text("x\n")
    (data / "read-only").chmod(0o555)
    os.symlink("sub/f1.txt", data / "link")
    run = tmp_path / "run"
    (run / "a").mkdir(parents=True)
    (run / "b").mkdir()
    yield data, run
    (data / "read-only").chmod(0o755)


def test_jobs_needing_the_same_directory_share_one_archive_removed_after_the_last(tmp_path, setup):
    data, run = setup
    a = chirp.ship(job(tmp_path, "a", data), str(run / "a"))
    b = chirp.ship(job(tmp_path, "b", data), str(run / "b"))
    assert set(a.archives) == {str(data)} and a.archives == b.archives  # not the empty workspace: a few entries
    archive = a.archives[str(data)]
    assert os.path.dirname(archive) == str(run / chirp.ARCHIVES)
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["data/link"].issym() and members["data/link"].linkname == "sub/f1.txt"
    assert members["data/read-only"].mode & 0o700 == 0o700  # the step's copy is its own to write
    assert len([n for n in members if n.startswith("data/sub/")]) == 50
    chirp.bring_back(a, str(run / "a"), "/nonexistent")
    assert os.path.exists(archive)  # b still needs it
    chirp.bring_back(b, str(run / "b"), "/nonexistent")
    assert not os.path.exists(archive)


def test_a_changed_directory_gets_a_new_archive(tmp_path, setup):
    data, run = setup
    a = chirp.ship(job(tmp_path, "a", data), str(run / "a"))
    (data / "sub" / "f1.txt").write_text("changed, longer\n")
    b = chirp.ship(job(tmp_path, "b", data), str(run / "b"))
    assert a.archives[str(data)] != b.archives[str(data)]
    with tarfile.open(b.archives[str(data)]) as tar:
        assert tar.extractfile("data/sub/f1.txt").read() == b"changed, longer\n"


def test_a_directory_over_the_limit_travels_entry_by_entry(tmp_path, setup, monkeypatch):
    data, run = setup
    monkeypatch.setattr(chirp, "ARCHIVE_LIMIT", 100)
    shipped = chirp.ship(job(tmp_path, "a", data), str(run / "a"))
    assert str(data) not in shipped.archives


def test_an_unreadable_directory_is_refused_with_its_name(tmp_path, setup):
    data, run = setup
    secret = data / "secret"
    secret.mkdir()
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):
            pytest.skip("running as root: nothing is unreadable")
        with pytest.raises(chirp.ArchiveError) as info:
            chirp.ship(job(tmp_path, "a", data), str(run / "a"))
        assert str(secret) in str(info.value)
    finally:
        secret.chmod(0o755)
