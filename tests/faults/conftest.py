# The fault tier: each test is one cell of the fault matrix (a fault, on one scheduler or `serve`,
# and what the run must do: survive, or fail clearly), named by its `cell` marker. At the end of
# the session the matrix of the cells run here, each with its test's name and outcome, is printed
# and written to fault-matrix.md in pytest's base directory (README's table is one such run's).
import os

import pytest

from ..conftest import REPO  # noqa: F401  (the suite's fixtures)

_cells = []


def pytest_configure(config):
    config.addinivalue_line("markers", "cell(fault, column, promise): one cell of the fault matrix")


def pytest_runtest_makereport(item, call):
    marker = item.get_closest_marker("cell")
    if marker is None or call.when != "call":
        return
    fault, column, promise = marker.args
    outcome = "passed" if call.excinfo is None else ("skipped" if call.excinfo.errisinstance(pytest.skip.Exception)
                                                     else "FAILED")
    _cells.append((fault, column, promise, item.name, outcome))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _cells:
        return
    lines = ["| fault | where | promise | test | outcome |", "|---|---|---|---|---|"]
    lines += [f"| {f} | {c} | {p} | `{t}` | {o} |" for f, c, p, t, o in sorted(_cells)]
    text = "\n".join(lines) + "\n"
    path = os.path.join(str(config._tmp_path_factory.getbasetemp()), "fault-matrix.md")
    with open(path, "w") as f:
        f.write(text)
    terminalreporter.write_sep("-", f"fault matrix ({path})")
    terminalreporter.write(text)
