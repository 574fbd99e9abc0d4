# The adversarial tier: every test here tries what a hostile or careless user would, and after
# each one nothing of it may be left running: no process of the test user that was not there
# before, no Podman container, no HTCondor job.
import os
import subprocess
import time

import pytest

SETTLE_S = 15  # stopping a step takes up to its grace period (10 s)


def _processes():
    """pid -> command line of the test user's live processes (zombies are already dead)."""
    me, found = os.getuid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != me:
                continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
    return found


def _containers():
    try:
        out = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}"], capture_output=True, text=True)
    except OSError:  # no Podman here (the fast tier runs anywhere)
        return set()
    return set(out.stdout.split())


def _condor_jobs():
    if not os.path.exists(os.environ.get("CONDOR_CONFIG", "/nonexistent")):
        return set()
    import htcondor2

    try:
        schedd = htcondor2.Schedd(htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, "localhost"))
        ads = schedd.query(constraint=f'Owner == "{os.environ["USER"]}"', projection=["ClusterId", "ProcId"])
    except Exception:  # noqa: BLE001  (a test that stopped the schedd: nothing to compare)
        return set()
    return {f"{ad['ClusterId']}.{ad['ProcId']}" for ad in ads}


def _ours(pid, command):
    # the test process itself and what pytest runs of its own; rootless Podman's shared pause process
    return pid == os.getpid() or command.startswith("catatonit -P")


@pytest.fixture(autouse=True)
def nothing_of_the_test_is_left():
    before_processes, before_containers, before_jobs = _processes(), _containers(), _condor_jobs()
    yield
    deadline = time.monotonic() + SETTLE_S
    while True:
        processes = {p: c for p, c in _processes().items() if p not in before_processes and not _ours(p, c)}
        containers = _containers() - before_containers
        jobs = _condor_jobs() - before_jobs
        if not (processes or containers or jobs):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    for pid in processes:  # leave the next test a clean machine, then fail this one
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    if containers:
        subprocess.run(["podman", "rm", "--force", *containers], capture_output=True)
    pytest.fail(f"left behind: processes {processes}, containers {sorted(containers)}, HTCondor jobs {sorted(jobs)}")


# hypothesis keeps no example database here (the checkout may not be writable by the test user)
from hypothesis import settings  # noqa: E402

settings.register_profile("scailfin", database=None)
settings.load_profile("scailfin")
