# Benchmark: how fast jobs reach Slurm. N jobs (default 1000) submitted to the test site's Slurm
# cluster, in one run, by
#   1. the slurm scheduler (job directories, job files, batch script, then one `sbatch --array`
#      per batch), timed from the first submit() to the last job having its Slurm id;
#   2. one `sbatch` per job (what REANA's Slurm backend, Toil and Snakemake do), each job the
#      same batch script with its own directory;
#   3. one bare `sbatch --array=0-(N-1)` of a script that runs `true`: Slurm's own speed.
# Every job is submitted held (`--hold`) and cancelled afterwards: nothing runs. Prints jobs per
# second and the ratios (goals: 1 far above 2, and within 80% of 3). --each limits 2 to its first
# M jobs (it is slow); its rate is then measured on those M.
#
#   dev/as-test-user python benchmarks/slurm_submit.py [--jobs 1000] [--each 1000]
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scailfin_exec.config import Settings  # noqa: E402
from scailfin_exec.job import Job  # noqa: E402
from scailfin_exec.schedulers.slurm import SlurmScheduler, SlurmSettings  # noqa: E402
from scailfin_exec.schedulers.slurm import scheduler as scheduler_module, submit  # noqa: E402

from common import work_dir  # noqa: E402


def sbatch(*args):
    proc = subprocess.run(["sbatch", "--parsable", "--hold", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"sbatch failed: {proc.stderr}")
    return proc.stdout.strip().split(";")[0]


def cancel(ids):
    subprocess.run(["scancel", *ids], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--each", type=int, default=None, help="jobs for the one-sbatch-per-job method "
                        "(default: all of them)")
    args = parser.parse_args()
    n, each_n = args.jobs, min(args.each or args.jobs, args.jobs)
    work = work_dir("slurm-submit-", parent="/tmp")  # the node must see it (the site shares /tmp)
    workspace = os.path.join(work, "ws")
    os.makedirs(workspace)
    jobs = [Job(id=f"j{i}", image="docker.io/library/alpine", argv=["true"], workspace=workspace,
                labels={"step": "bench"}) for i in range(n)]

    # 1. the scheduler's batching; its sbatch calls timed apart, to show where the time goes
    in_sbatch = []
    real_run = scheduler_module.run

    def timed_run(argv, *a, **kw):
        started = time.perf_counter()
        try:
            return real_run(argv, *a, **kw)
        finally:
            if os.path.basename(argv[0]) == "sbatch":
                in_sbatch.append(time.perf_counter() - started)

    scheduler_module.run = timed_run
    settings = Settings()
    settings.schedulers["slurm"] = SlurmSettings(sbatch_lines=["--hold"])
    scheduler = SlurmScheduler(os.path.join(work, "ours"), settings, batch_name="bench-ours")
    started = time.perf_counter()
    handles = [scheduler.submit(job) for job in jobs]
    while any(scheduler.native_id(h) is None for h in handles):
        time.sleep(0.005)
    ours = time.perf_counter() - started
    arrays = len({h.native.array for h in handles})
    scheduler.close()  # cancels them

    # 2. one sbatch per job: the same script, each job reading its own directory (a one-line list)
    script = os.path.join(work, "each.sh")
    with open(script, "w") as f:
        f.write(submit.script(SlurmSettings(), os.path.join(work, "each.dirs"), "python3", "/nonexistent"))
    with open(os.path.join(work, "each.dirs"), "w") as f:
        f.write(workspace + "\n")
    started = time.perf_counter()
    ids = [sbatch(f"--job-name=bench-each-{i}", "--output=/dev/null", "--error=/dev/null", script)
           for i in range(each_n)]
    each = time.perf_counter() - started
    cancel(ids)

    # 3. one bare array of N
    bare_script = os.path.join(work, "bare.sh")
    with open(bare_script, "w") as f:
        f.write("#!/bin/sh\ntrue\n")
    started = time.perf_counter()
    bare_id = sbatch(f"--array=0-{n - 1}", "--job-name=bench-bare", "--output=/dev/null", bare_script)
    bare = time.perf_counter() - started
    cancel([bare_id])

    print(f"slurm submit: {n} held jobs to the test site's Slurm cluster, one run")
    print(f"{'method':<48}{'jobs':>6}{'seconds':>9}{'jobs/s':>9}")
    for label, count, seconds in (
            (f"scailfin-exec batching ({arrays} sbatch --array)", n, ours),
            ("one sbatch per job", each_n, each), (f"one bare sbatch --array=0-{n - 1}", n, bare)):
        print(f"{label:<48}{count:>6}{seconds:>9.2f}{count / seconds:>9.0f}")
    print(f"  of which in its {len(in_sbatch)} sbatch call(s): {sum(in_sbatch):.3f} s; the rest is each job's "
          f"directory and job description ({(ours - sum(in_sbatch)) / n * 1e3:.2f} ms per job)")
    print(f"batching vs one sbatch per job: {(n / ours) / (each_n / each):.1f}x the rate")
    print(f"batching vs the bare array:     {(n / ours) / (n / bare):.2f} of its rate (goal: at least 0.80)")
    print(f"  its sbatch calls alone:       {bare / sum(in_sbatch):.2f} of the bare array's rate")


if __name__ == "__main__":
    main()
