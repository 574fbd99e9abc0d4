# Benchmark: pilots (`scailfin-exec pilots`) on the test site, against the site's own startd, in
# one run.
#   start-up: a step waits in the queue for a pilot; from the `scailfin-exec pilots` command
#             (token, shim, sbatch) to the pilot's slot in the collector and to the step running
#             (its EXECUTE event). Baseline: the same job submitted to the site's own, already
#             running startd (submit to EXECUTE).
#   scatter:  decay-scatter's 24-way scatter (`scailfin-cwl --scheduler htcondor --transfer chirp
#             --parallel`, Apptainer), wall time of the whole command: on the site's own startd
#             (4 CPUs) against two pilots of 2 CPUs each submitted at the same moment as the
#             workflow (cold: their start-up is in the time) and against the same two pilots
#             already up (warm).
# Prints medians, and each against its baseline as a ratio.
#
#   dev/as-test-user python benchmarks/pilots.py [--repeat 3]
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

import htcondor2

from common import image_roots, work_dir

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "cwl_examples", "decay-scatter")
BIN = os.path.dirname(sys.executable)
IMAGE_DIR = os.path.join(image_roots()[0], "registry.hub.docker.com", "library", "alpine:latest")
PILOT_ARGS = ["--network-interface", "127.0.0.1", "--walltime", "10", "--memory", "2000"]
ON_PILOTS, OFF_PILOTS = "ScailfinPilot =?= True", "ScailfinPilot =!= True"


def collector():
    return htcondor2.Collector()


def pilot_slots():
    return collector().query(htcondor2.AdType.Startd, constraint=ON_PILOTS, projection=["Name"])


def wait(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(0.05)
    sys.exit(f"{what}: not within {seconds} s")


def no_pilots_left():
    """Every pilot of an earlier measurement gone (they leave when idle; their ads with them)."""
    wait(lambda: not pilot_slots() and "scailfin-pilot" not in subprocess.run(
        ["squeue", "--noheader", "--me", "--format=%j"], capture_output=True, text=True).stdout, 120,
        "the pilots leaving")


def pilots(work, *args):
    run = subprocess.run([os.path.join(BIN, "scailfin-exec"), "pilots", "--directory", work, *PILOT_ARGS, *args],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"scailfin-exec pilots failed:\n{run.stderr}")


def submit_step(schedd, work, i, requirements):
    """A one-container job (apptainer exec alpine true); its event log."""
    log = os.path.join(work, f"step-{i}.log")
    schedd.submit(htcondor2.Submit({
        "executable": "/usr/bin/apptainer", "transfer_executable": "false",
        "arguments": f"exec --contain --cleanenv {IMAGE_DIR} true", "requirements": requirements,
        "log": log, "output": "/dev/null", "error": os.path.join(work, f"step-{i}.err"),
        "should_transfer_files": "YES", "initialdir": work, "batch_name": "pilot-benchmark",
        "request_cpus": "1", "request_memory": "256M", "request_disk": "100M"}))
    return log


def executed(log):
    """Wall clock (perf_counter) when the job's EXECUTE event is read, and wait for its end."""
    at = None
    for event in htcondor2.JobEventLog(log).events(stop_after=180):
        if event.type == htcondor2.JobEventType.EXECUTE and at is None:
            at = time.perf_counter()
        if event.type == htcondor2.JobEventType.JOB_TERMINATED:
            return at
    sys.exit(f"the job of {log} did not finish")


def startup(schedd, work, i):
    """(command -> slot, command -> step running) for a pilot started for a waiting step."""
    log = submit_step(schedd, work, f"pilot-{i}", ON_PILOTS)
    started = time.perf_counter()
    pilots(os.path.join(work, f"pilots-{i}"), "--cpus", "1", "--idle-time", "3")
    slot = wait(lambda: pilot_slots(), 60, "the pilot's slot")
    running = executed(log)
    no_pilots_left()
    return slot - started, running - started


def warm_startd(schedd, work, i):
    log = submit_step(schedd, work, f"startd-{i}", OFF_PILOTS)
    started = time.perf_counter()
    return executed(log) - started


def scatter(work, tag, requirements):
    home = work_dir(f"scatter-{tag}-", work)
    argv = [os.path.join(BIN, "scailfin-cwl"), "--scheduler", "htcondor", "--transfer", "chirp", "--runtime",
            "apptainer", "--parallel", "--quiet", "--progress", "no", "--requirements", requirements,
            "--image-roots", os.pathsep.join(image_roots()), "--pull", "no", "--outdir", os.path.join(home, "out"),
            os.path.join(EXAMPLE, "decay-scatter.cwl"), os.path.join(EXAMPLE, "decay-scatter-job.json")]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return started, proc


def finished(started, proc):
    _, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        sys.exit(f"the scatter failed:\n{err[-3000:]}")
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    coll = collector()
    schedd = htcondor2.Schedd(coll.locate(htcondor2.DaemonType.Schedd, "localhost"))
    if not coll.query(htcondor2.AdType.Startd, constraint=OFF_PILOTS, projection=["Name"]):
        sys.exit("the site's own startd is not in the pool: start the site (tests/site/start)")
    no_pilots_left()
    work = work_dir("pilots-bench-", os.environ.get("TMPDIR"))
    print(f"pilots benchmark: {args.repeat} repeats, HTCondor {htcondor2.version().split()[1]}, "
          f"{os.cpu_count()} cores")

    slot_s, run_s, startd_s = [], [], []
    for i in range(args.repeat):
        startd_s.append(warm_startd(schedd, work, i))
        slot, running = startup(schedd, work, i)
        slot_s.append(slot)
        run_s.append(running)
    base = statistics.median(startd_s)
    print(f"{'start-up (median)':<44}{'seconds':>10}{'vs startd':>11}")
    print(f"{'  step on the running startd (baseline)':<44}{base:>10.2f}{1:>11.2f}")
    print(f"{'  pilot command -> slot in the collector':<44}{statistics.median(slot_s):>10.2f}"
          f"{statistics.median(slot_s) / base:>11.2f}")
    print(f"{'  pilot command -> step running':<44}{statistics.median(run_s):>10.2f}"
          f"{statistics.median(run_s) / base:>11.2f}")

    times = {"startd": [], "cold pilots": [], "warm pilots": []}
    for i in range(args.repeat):
        times["startd"].append(finished(*scatter(work, f"startd-{i}", OFF_PILOTS)))
        started, proc = scatter(work, f"cold-{i}", ON_PILOTS)
        pilots(os.path.join(work, f"scatter-pilots-{i}"), "--count", "2", "--cpus", "2", "--idle-time", "20")
        times["cold pilots"].append(finished(started, proc))
        wait(lambda: len(pilot_slots()) >= 2, 30, "the two pilots still up")  # idle for < 20 s: warm
        times["warm pilots"].append(finished(*scatter(work, f"warm-{i}", ON_PILOTS)))
        no_pilots_left()
    base = statistics.median(times["startd"])
    print(f"{'24-way scatter, whole command (median)':<44}{'seconds':>10}{'vs startd':>11}")
    for name, values in times.items():
        label = "  site's own startd, 4 CPUs (baseline)" if name == "startd" else f"  two 2-CPU pilots, {name[:4]}"
        print(f"{label:<44}{statistics.median(values):>10.1f}{statistics.median(values) / base:>11.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
