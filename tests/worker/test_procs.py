# Helper commands on the worker: a missing program or a timeout is an answer, not an exception;
# a version probe is remembered while the executable stays the same.
import os

import pytest

from scailfin_exec.worker import procs

pytestmark = pytest.mark.fast


def test_a_missing_program_and_a_timeout_are_answers():
    assert procs.run(["/nonexistent/program"]).returncode == 127
    out = procs.run(["sleep", "5"], timeout=0.2)
    assert out.returncode == 124 and "timed out" in out.stderr


def test_a_version_probe_is_remembered_until_the_executable_changes(tmp_path):
    exe = tmp_path / "tool"
    counter = tmp_path / "calls"
    exe.write_text(f"#!/bin/sh\necho x >> {counter}\necho tool 1.0\n")
    exe.chmod(0o755)
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": os.environ["PATH"]}
    assert procs.version_output(str(exe), ["--version"], environ).stdout == "tool 1.0\n"
    assert procs.version_output(str(exe), ["--version"], environ).stdout == "tool 1.0\n"
    assert counter.read_text() == "x\n"
    exe.write_text(f"#!/bin/sh\necho x >> {counter}\necho tool 2.0 upgraded\n")
    assert procs.version_output(str(exe), ["--version"], environ).stdout == "tool 2.0 upgraded\n"
