# Benchmark: building the HTML report of a big run. Generates a run directory of N steps (default
# 1000; job files and result records as the shim writes them, with plausible phase times, a few
# failures and long command lines), then builds its report with `scailfin-exec report`, the
# command a user runs, timing it and measuring the file. Goals: under 5 s and under 5 MB for 1000.
# The baseline, measured in the same run: reading the same run directory (steps_of_run), which any
# report pays, so the rest is the report's own cost.
#
#   dev/as-test-user python benchmarks/report.py [--steps 1000]
import argparse
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scailfin_exec.job import Job, write_job  # noqa: E402
from scailfin_exec.report.steps import steps_of_run  # noqa: E402
from scailfin_exec.worker.results import ImageUsed, ResultRecord, RuntimeUsed, Staged, dumps  # noqa: E402

from common import work_dir  # noqa: E402


def generate(run_dir: str, n: int, seed: int = 1) -> None:
    """A run directory of n steps: a scatter submitted over 10 s on four hosts, one in 50 failing."""
    rng = random.Random(seed)
    t0 = time.time() - 3600
    for i in range(n):
        job_id = f"simulate-{i + 1}"
        directory = os.path.join(run_dir, job_id)
        os.makedirs(directory)
        job = Job(id=job_id, image="docker.io/library/python:3-slim", workspace="/scratch/run",
                  argv=["python3", "simulate.py", "--seed", str(i), "--events", "20000", "--out", f"out-{i}.json"] +
                  [f"--calibration=/cvmfs/calib/{j}.db" for j in range(20)], labels={"step": "simulate"})
        write_job(job, os.path.join(directory, "job.json"))
        submitted = t0 + i * 10.0 / n
        os.utime(os.path.join(directory, "job.json"), (submitted, submitted))
        started = submitted + rng.uniform(0.5, 30)
        timings = {"detect_runtime": rng.uniform(0.01, 0.05), "resolve_image": rng.uniform(0.05, 2),
                   "stage_in": rng.uniform(0.1, 5), "run": rng.uniform(5, 60), "stage_out": rng.uniform(0.1, 3)}
        failed = i % 50 == 7
        record = ResultRecord(
            exit_code=1 if failed else 0, job_id=job_id, labels=job.labels, host=f"worker-{i % 4}", user="physicist",
            started=started, finished=started + sum(timings.values()), cpu_seconds=timings["run"] * 0.9,
            timings=timings, runtime=RuntimeUsed("apptainer", "1.4.5", "/usr/bin/apptainer"),
            image=ImageUsed(job.image, "sif", "/cache/python.sif", "from the cache"),
            command=["apptainer", "exec", "--contain", "/cache/python.sif"] + job.argv,
            payload_exit_code=1 if failed else 0,
            stage_in=Staged("htcondor", 3, 12_000_000), stage_out=Staged("htcondor", 1, 400_000))
        with open(os.path.join(directory, "job.result.json"), "w") as f:
            f.write(dumps(record))
        with open(os.path.join(directory, "stderr.log"), "w") as f:
            f.write("Traceback (most recent call last):\nValueError: no events\n" if failed else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    work = work_dir("report-")
    run_dir = os.path.join(work, "run")
    os.makedirs(run_dir)
    generate(run_dir, args.steps)
    started = time.perf_counter()
    steps = steps_of_run(run_dir)
    reading = time.perf_counter() - started
    out = os.path.join(work, "report.html")
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-exec")
    started = time.perf_counter()
    subprocess.run([exe, "report", run_dir, "-o", out], check=True)
    building = time.perf_counter() - started
    size = os.path.getsize(out)
    print(f"report of a generated run directory of {len(steps)} steps, one run")
    print(f"reading the run directory (baseline):   {reading:6.2f} s")
    print(f"`scailfin-exec report` (whole command): {building:6.2f} s   (goal: under 5 s; "
          f"{building / reading:.1f}x the reading)")
    print(f"report size:                            {size / 1e6:6.2f} MB  (goal: under 5 MB)")


if __name__ == "__main__":
    main()
