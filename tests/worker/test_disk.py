# Writing whole or not at all, and naming a full file system (disk.py); the full file systems
# themselves are in the fault tier (tests/faults/test_disk_full.py).
import errno
import os

import pytest

from scailfin_exec.worker import disk

pytestmark = pytest.mark.fast


def test_a_file_written_whole_replaces_the_old_one_with_its_mode(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    disk.write_whole(str(path), "new", 0o640)
    assert path.read_text() == "new" and os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["record.json"]


def test_a_write_that_fails_leaves_neither_a_temporary_file_nor_a_changed_target(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()  # the rename onto a directory fails after the temporary file was written
    with pytest.raises(OSError):
        disk.write_whole(str(target), "text")
    assert os.listdir(tmp_path) == ["taken"] and os.listdir(target) == []


def test_a_file_system_with_room_is_not_called_full(tmp_path):
    assert disk.full_note(str(tmp_path / "no-such-file")) == ""


def test_an_error_names_the_file_and_for_enospc_says_the_file_system_or_quota_is_full(tmp_path):
    said = disk.said(OSError(errno.ENOSPC, "No space left on device"), str(tmp_path / "job.json"))
    assert said.startswith(f"cannot write {tmp_path / 'job.json'}: No space left on device")
    assert "is full" in said  # this tmp_path has room: the words say the file system or the quota
    other = disk.said(OSError(errno.EACCES, "Permission denied"), str(tmp_path / "x"))
    assert other == f"cannot write {tmp_path / 'x'}: Permission denied"
