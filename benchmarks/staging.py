# Benchmark, on the test site: stage-in time of a 200 MiB file and of a tree of 2,000 small files
# with each transfer mode, in one run, against a plain local copy of the same data (the
# baseline, measured in the same run). Real jobs, apptainer, payload `true`.
#   chirp (parrot), chirp (condor_chirp): the shim's own stage-in time (its result record)
#   htcondor: HTCondor's input transfer as its starter logs it (XferStatsLog, to 10 ms) plus the
#             shim's unpacking
#   shared:   the shim's stage-in (a check that the files are there)
# Also the CPU each mode costs: the CPU-seconds the whole machine spent on the job (/proc/stat,
# from submit to the job's end) beyond the same job in the shared mode, which moves no data.
# Divided by the cores, that is the least time the stage-in can take on this machine. Of that, the
# part HTCondor's starter and shadow spent (what their startd and schedd collect when they end,
# less the job's own CPU, which the shim records).
# The modes take turns within each repetition, starting with a different one each time.
# Goals: parrot within 1.5x of HTCondor's own file transfer on the large file; chirp within 1.5x of
# it on the small files (a directory travels through chirp as one archive the submit side makes).
#
#   dev/as-test-user python benchmarks/staging.py [--repeat 4]
import argparse
import contextlib
import hashlib
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scailfin_exec.config import Settings  # noqa: E402
from scailfin_exec.job import ImageSources, Job  # noqa: E402
from scailfin_exec.schedulers.htcondor import HTCondorScheduler, HTCondorSettings  # noqa: E402

from common import image_roots, work_dir  # noqa: E402

CACHE = os.environ.get("SCAILFIN_CACHE", "/var/cache/scailfin-exec")
XFER_LOG = os.path.join(CACHE, "site", "rootfs", "var", "log", "condor", "XferStatsLog")
SHARED = "/scratch/scailfin-shared"
MIB = 1024 * 1024


def make_data(root):
    big = os.path.join(root, "big")
    os.makedirs(big)
    with open(os.path.join(big, "big.bin"), "wb") as f:
        for i in range(200):
            f.write(hashlib.sha256(str(i).encode()).digest() * (MIB // 32))
    small = os.path.join(root, "small")
    for i in range(2000):
        sub = os.path.join(small, f"d{i // 100:02d}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i:04d}.txt"), "w") as f:
            f.write(f"small file {i}\n" * 20)
    return {"200 MiB file": os.path.join(big, "big.bin"), "2,000 small files": small}


def data_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def local_copy(path, work):
    target = tempfile.mkdtemp(dir=work)
    started = time.perf_counter()
    subprocess.run(["cp", "-r", path, target], check=True)
    subprocess.run(["sync", "-f", target], check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(target)
    return seconds


def busy_cpu_seconds():
    """CPU-seconds the machine has spent busy since boot, all cores (idle, I/O wait and steal left out)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def processes():
    """(pid, name, the /proc/PID/stat fields from the state on) of every process still there."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as f:
                head, _, rest = f.read().rpartition(")")  # the name may hold spaces and parentheses
            yield int(pid), head.partition("(")[2], rest.split()


def condor_daemons():
    """The PIDs of the site's condor_startd and condor_schedd (the parents of starters and shadows)."""
    found = {name: pid for pid, name, _ in processes() if name in ("condor_startd", "condor_schedd")}
    if len(found) != 2:
        sys.exit(f"staging: the site's condor_startd and condor_schedd are not both running (found {found})")
    return list(found.values())


def starters_and_shadows_cpu(daemons):
    """CPU-seconds the daemons' ended children (and theirs: the starter's job) used, once the job's
    starter and shadow are gone."""
    deadline = time.monotonic() + 10
    while any(int(fields[1]) in daemons for _, _, fields in processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sum(int(x) for pid, _, fields in processes() if pid in daemons for x in fields[13:15]) \
        / os.sysconf("SC_CLK_TCK")


def htcondor_download_seconds(cluster, proc):
    """The starter's line for this job's input transfer (the shadow logs the output's)."""
    pattern = re.compile(rf"\(pid:\d+\) File Transfer Download: JobId: {cluster}\.{proc} .*? seconds: ([\d.]+)")
    with open(XFER_LOG, errors="replace") as f:
        found = [float(m.group(1)) for m in map(pattern.search, f) if m]
    return found[0] if found else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    roots = image_roots()
    work = work_dir("staging-")  # /tmp: jobs do not see it
    shared_work = work_dir("staging-", SHARED)
    datasets = {"private": make_data(os.path.join(work, "data")), "shared": make_data(os.path.join(shared_work, "data"))}
    modes = [("chirp (parrot)", "chirp", {}), ("chirp (condor_chirp)", "chirp",
              {"environment": "SCAILFIN_PARROT=/nonexistent"}), ("htcondor", "htcondor", {}), ("shared", "shared", {})]
    os.sync()  # the new data on disk before anything is timed: no writeback competes with the first mode
    results = {(label, method): [] for label in datasets["private"] for method in ["local copy"] + [m[0] for m in modes]}
    cpu = {(label, mode[0]): [] for label in datasets["private"] for mode in modes}
    daemon_cpu = {(label, mode[0]): [] for label in datasets["private"] for mode in modes}
    daemons = condor_daemons()
    numbers = itertools.count()
    with contextlib.ExitStack() as stack:
        schedulers = {mode_label: stack.enter_context(HTCondorScheduler(
            os.path.join(work, "run-" + str(n)), Settings(), batch_name="staging-bench",
            options=HTCondorSettings(submit_commands=commands))) for n, (mode_label, _, commands) in enumerate(modes)}
        for i in range(args.repeat):  # the modes take turns: none always runs first or last
            for label, path in datasets["private"].items():
                results[(label, "local copy")].append(local_copy(path, work))
            for mode_label, transfer, _ in modes[i % len(modes):] + modes[:i % len(modes)]:
                for label in datasets["private"]:
                    data = datasets["shared" if transfer == "shared" else "private"][label]
                    ws = tempfile.mkdtemp(dir=shared_work if transfer == "shared" else work)
                    job = Job(id=f"{transfer}-{next(numbers)}", image="docker.io/library/alpine",
                              argv=["true"], workspace=ws, runtime=["apptainer"], transfer=transfer, inputs=[data],
                              images=ImageSources(roots, None, False))
                    scheduler = schedulers[mode_label]
                    busy, daemons_busy = busy_cpu_seconds(), starters_and_shadows_cpu(daemons)
                    handle = scheduler.submit(job)
                    result = scheduler.wait(handle)
                    if not result.ok:
                        sys.exit(f"{mode_label}, {label}: {result.describe()}\n{result.stderr_tail()}")
                    # the starter's share counts the job it waited for: the shim's own record says how much
                    daemon_cpu[(label, mode_label)].append(starters_and_shadows_cpu(daemons) - daemons_busy
                                                           - result.record.cpu_seconds)
                    cpu[(label, mode_label)].append(busy_cpu_seconds() - busy)
                    seconds = result.record.stage_in.seconds
                    if transfer == "htcondor":
                        seconds += htcondor_download_seconds(handle.native.cluster, handle.native.proc)
                    results[(label, mode_label)].append(seconds)

    cores = os.cpu_count()
    print(f"stage-in on the test site, median of {args.repeat} (loopback, {cores} cores)")

    def beyond_shared(measured, label, method):
        return statistics.median(measured[(label, method)]) - statistics.median(measured[(label, "shared")])

    print(f"{'data':<20}{'method':<22}{'seconds':>9}{'MB/s':>9}{'vs local copy':>15}{'CPU s':>8}"
          f"{'starter+shadow':>16}{'CPU s / ' + str(cores) + ' cores':>18}")
    for label, path in datasets["private"].items():
        size = data_bytes(path) / 1e6
        base = statistics.median(results[(label, "local copy")])
        for method in ["local copy"] + [m[0] for m in modes]:
            seconds = statistics.median(results[(label, method)])
            line = f"{label:<20}{method:<22}{seconds:>9.2f}{size / seconds if seconds else float('inf'):>9.0f}" \
                   f"{seconds / base:>14.1f}x"
            if (label, method) in cpu and method != "shared":
                extra = beyond_shared(cpu, label, method)
                line += f"{extra:>8.2f}{beyond_shared(daemon_cpu, label, method):>16.2f}{extra / cores:>18.2f}"
            print(line)
    print("CPU s: CPU-seconds the machine spent on the job beyond the same job with transfer: shared;"
          " starter+shadow: the part HTCondor's starter and shadow spent")
    parrot = statistics.median(results[("200 MiB file", "chirp (parrot)")])
    condor = statistics.median(results[("200 MiB file", "htcondor")])
    print(f"parrot vs HTCondor file transfer, 200 MiB file: {parrot / condor:.2f}x (goal: at most 1.5x)")
    for method in ("chirp (parrot)", "chirp (condor_chirp)"):
        small = statistics.median(results[("2,000 small files", method)])
        print(f"{method} vs HTCondor file transfer, 2,000 small files (one archive): "
              f"{small / statistics.median(results[('2,000 small files', 'htcondor')]):.2f}x (goal: at most 1.5x)")
    floor = beyond_shared(cpu, "200 MiB file", "chirp (parrot)") / cores
    print(f"the CPU parrot's stage-in costs allows no less than {floor:.2f} s on {cores} cores;"
          f" the goal needs at most {1.5 * condor:.2f} s")


if __name__ == "__main__":
    main()
