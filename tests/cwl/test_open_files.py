# A wide scatter holds open files for every step in flight (its exit-code FIFO, its waiter's
# pipes): scailfin-cwl raises its own limit to the hard one, and keeps fewer steps in flight
# when even that is too low (found at 5,000 steps: "[Errno 24] Too many open files" at about
# 1,000 in flight, under Debian's default soft limit of 1024).
import resource
import subprocess
import sys

import pytest

pytestmark = pytest.mark.fast

PROBE = """
import resource
from scailfin_exec.cwl import executor

class Backend:
    capacity = 1000

chosen = executor(Backend(), parallel=True)
print(int(chosen.max_cores), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def probe(soft, hard):
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert run.returncode == 0, run.stderr
    in_flight, files = map(int, run.stdout.split())
    return in_flight, files, run.stderr


def test_the_open_files_limit_is_raised_to_the_hard_limit_for_a_wide_scatter():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 1000 * 4 + 128
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.fail(f"this machine's hard limit ({hard}) is below what the test needs ({want})")
    in_flight, files, said = probe(1024, hard)
    assert in_flight == 1000 and files >= want and "steps in flight" not in said


def test_below_a_hard_limit_too_low_fewer_steps_are_in_flight_and_it_is_said():
    in_flight, files, said = probe(300, 300)
    assert files == 300 and in_flight == (300 - 128) // 4
    assert "at most 43 steps in flight: this process may open 300 files" in said
