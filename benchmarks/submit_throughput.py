# Benchmark: how fast jobs reach the schedd. N jobs (default 1000) submitted, in one run, by
#   1. the htcondor scheduler (job directories, job files, then one transaction per batch),
#   2. one Schedd.submit per job (the same submit description and item data),
#   3. one `queue N` submission: the same transaction condor_submit makes for `queue N`, through
#      the bindings (the site's condor_submit binary only runs inside its namespace).
# and, to show where 1. spends its time, the same N jobs (description and item data) in one submit
# call without writing job directories and files. The bindings hold Python's GIL for the whole of
# a submit call, so writing job files cannot overlap a transaction in one process.
# Jobs are submitted on hold and removed afterwards: nothing runs. Prints jobs per second and the
# ratios (goals: 1 at least 20x 2, and within 80% of 3).
#
#   dev/as-test-user python benchmarks/submit_throughput.py [--jobs 1000]
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import htcondor2  # noqa: E402

from scailfin_exec.config import Settings  # noqa: E402
from scailfin_exec.job import Job  # noqa: E402
from scailfin_exec.schedulers.htcondor import HTCondorScheduler, HTCondorSettings  # noqa: E402

from common import work_dir  # noqa: E402


def remove(schedd, batch):
    schedd.act(htcondor2.JobAction.Remove, f'JobBatchName == "{batch}"', "benchmark done")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    n = args.jobs
    work = work_dir("submit-throughput-")
    workspace = os.path.join(work, "ws")
    os.makedirs(workspace)
    tag = str(int(time.time()))
    jobs = [Job(id=f"j{i}", image="docker.io/library/alpine", argv=["true"], workspace=workspace,
                labels={"step": f"j{i}"}) for i in range(n)]

    # 1. the scheduler's batching
    scheduler = HTCondorScheduler(os.path.join(work, "ours"), Settings(), batch_name=f"bench-ours-{tag}",
                                  options=HTCondorSettings(submit_commands={"hold": "true"}))
    started = time.perf_counter()
    handles = [scheduler.submit(job) for job in jobs]
    while any(h.native.cluster is None for h in handles):
        time.sleep(0.005)
    ours = time.perf_counter() - started
    clusters = len({h.native.cluster for h in handles})
    description, rows = scheduler.description(), [scheduler.row(h) for h in handles]
    schedd = scheduler.schedd
    scheduler.close()

    # the same jobs in one call, without the job files
    description["batch_name"] = f"bench-one-{tag}"
    started = time.perf_counter()
    schedd.submit(htcondor2.Submit(description), itemdata=iter(rows))
    one_call = time.perf_counter() - started
    remove(schedd, description["batch_name"])

    # 2. one submit per job, same description and item data
    description["batch_name"] = f"bench-each-{tag}"
    started = time.perf_counter()
    for row in rows:
        schedd.submit(htcondor2.Submit(description), itemdata=iter([row]))
    each = time.perf_counter() - started
    remove(schedd, description["batch_name"])

    # 3. queue N: one cluster of N identical jobs, as condor_submit makes for `queue N`
    started = time.perf_counter()
    schedd.submit(htcondor2.Submit({"executable": "/usr/bin/env", "arguments": "true", "transfer_executable": "false",
                                    "hold": "true", "initialdir": work, "batch_name": f"bench-queue-{tag}",
                                    "log": os.path.join(work, "queue.log")}), count=n)
    queue_n = time.perf_counter() - started
    remove(schedd, f"bench-queue-{tag}")

    print(f"submit throughput: {n} held jobs to the test site's schedd, one run")
    print(f"{'method':<48}{'seconds':>9}{'jobs/s':>9}")
    for label, seconds in ((f"scailfin-exec batching ({clusters} transaction{'s' if clusters > 1 else ''})", ours),
                           ("one Schedd.submit per job", each), (f"one submit with queue {n}", queue_n),
                           (f"(the same {n} jobs in one call, no job files)", one_call)):
        print(f"{label:<48}{seconds:>9.2f}{n / seconds:>9.0f}")
    print(f"batching vs one submit per job: {each / ours:.1f}x (goal: at least 20x)")
    print(f"batching vs queue {n}:           {queue_n / ours:.2f} of its rate (goal: at least 0.80)")


if __name__ == "__main__":
    main()
