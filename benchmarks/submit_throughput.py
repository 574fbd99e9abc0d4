# Benchmark: how fast jobs reach the schedd. N jobs (default 1000) submitted, in each of R rounds
# (default 5, the methods taking turns within a round, so that a slower moment of the machine
# falls on all of them), by
#   1. the htcondor scheduler: everything it does for them (checking and describing each job,
#      the run's record jobs.jsonl, the batch's rows) and its transactions, until every job is in
#      the queue (its SUBMIT event read from the run's event log: the schedd makes the jobs of a
#      batch itself, late materialization, after the transaction),
#   2. `condor_submit` of a `queue N` submit file (the site's own binary, on the host through the
#      site's loader: tests/site/start puts it in the site's bin directory),
#   3. the same `queue N` through the bindings (one Schedd.submit with count=N),
#   4. the scheduler's own transaction alone: its description and rows (made beforehand) in one
#      Schedd.submit, until the schedd has made the jobs: what HTCondor itself takes for them,
#   5. one Schedd.submit per job (the same description and rows): what submitting a job per call,
#      as REANA's HTCondor backend, Toil and the snakemake plugin do, costs,
#   6. for comparison, `condor_submit` of the same `queue N` with max_materialize = N (the schedd
#      makes the jobs), until they are all in the queue.
# Jobs are submitted with requirements = false (they match no slot) and removed afterwards:
# nothing runs (not `hold = true`: HTCondor 25 leaves the jobs it late-materializes idle, whatever
# hold says, and they ran). Prints the medians and the ratios of rates (goal, issue 17: 1. at
# least 0.8 of 2.).
#
#   dev/as-test-user python benchmarks/submit_throughput.py [--jobs 1000] [--rounds 5]
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import htcondor2  # noqa: E402

from scailfin_exec.config import Settings  # noqa: E402
from scailfin_exec.job import Job  # noqa: E402
from scailfin_exec.schedulers.htcondor import submit as htcondor_submit  # noqa: E402
from scailfin_exec.schedulers.htcondor import HTCondorScheduler, HTCondorSettings  # noqa: E402

from common import work_dir  # noqa: E402


def remove(schedd, batch):
    """Remove a method's jobs, and wait until they have left the queue: the schedd's work on them
    (history, job queue log) must not fall on the next method's time."""
    schedd.act(htcondor2.JobAction.Remove, f'JobBatchName == "{batch}"', "benchmark done")
    deadline = time.monotonic() + 60
    while schedd.query(constraint=f'JobBatchName == "{batch}"', projection=["ProcId"], limit=1):
        if time.monotonic() > deadline:
            sys.exit(f"the jobs of {batch} did not leave the queue within 60 s")
        time.sleep(0.1)


def ours(work, jobs, tag):
    """Seconds from the first submit() to every job being in the queue, and the transactions."""
    scheduler = HTCondorScheduler(os.path.join(work, f"ours-{tag}"), Settings(), batch_name=f"bench-ours-{tag}",
                                  options=HTCondorSettings(submit_commands={"requirements": "false"}))
    started = time.perf_counter()
    handles = [scheduler.submit(job) for job in jobs]
    while not all(h.native.materialized for h in handles):
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    clusters = len({h.native.cluster for h in handles})
    rows = scheduler.rows(handles)
    described = scheduler.description()
    scheduler.close()  # removes them
    remove(scheduler.schedd, f"bench-ours-{tag}")
    return seconds, clusters, scheduler.schedd, described, rows


def condor_submit(work, n, tag, address, schedd=None):
    """Seconds condor_submit takes for a queue n; with schedd, the file asks for late
    materialization and the time runs until the schedd has made every job."""
    batch = f"bench-{'csf' if schedd else 'cs'}-{tag}"
    submit_file = os.path.join(work, f"queue-{tag}.sub")
    with open(submit_file, "w") as f:
        f.write(f"executable = /usr/bin/env\narguments = true\ntransfer_executable = false\nrequirements = false\n"
                f"initialdir = {work}\nlog = {work}/queue.log\nbatch_name = {batch}\n"
                + (f"max_materialize = {n}\n" if schedd else "") + f"queue {n}\n")
    started = time.perf_counter()
    subprocess.run(["condor_submit", "-addr", address, submit_file], check=True, stdout=subprocess.DEVNULL)
    if schedd:
        made(schedd, batch, n)
    return time.perf_counter() - started


def made(schedd, batch, n):
    """Wait until the schedd has made the last of a late-materialized batch's n jobs (it makes
    them in order)."""
    while not schedd.query(constraint=f'JobBatchName == "{batch}" && ProcId == {n - 1}', projection=["ProcId"],
                           limit=1):
        time.sleep(0.002)


def queue_n(schedd, work, n, tag):
    started = time.perf_counter()
    schedd.submit(htcondor2.Submit({"executable": "/usr/bin/env", "arguments": "true", "transfer_executable": "false",
                                    "requirements": "false", "initialdir": work, "batch_name": f"bench-queue-{tag}",
                                    "log": os.path.join(work, "queue.log")}), count=n)
    return time.perf_counter() - started


def transaction(schedd, described, rows, tag):
    described = htcondor_submit.late_materialized(dict(described, batch_name=f"bench-rows-{tag}"), len(rows))
    started = time.perf_counter()
    schedd.submit(htcondor2.Submit(described), itemdata=iter(rows))
    made(schedd, f"bench-rows-{tag}", len(rows))
    return time.perf_counter() - started


def one_per_job(schedd, described, rows, tag):
    described = dict(described, batch_name=f"bench-each-{tag}")
    started = time.perf_counter()
    for row in rows:
        schedd.submit(htcondor2.Submit(described), itemdata=iter([row]))
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("condor_submit"):
        sys.exit("condor_submit not found: run through dev/as-test-user with the test site up (tests/site/start)")
    n = args.jobs
    work = work_dir("submit-throughput-")
    workspace = os.path.join(work, "ws")
    os.makedirs(workspace)
    jobs = [Job(id=f"j{i}", image="docker.io/library/alpine", argv=["true"], workspace=workspace,
                labels={"step": f"j{i}"}) for i in range(n)]
    times = {"ours": [], "condor_submit": [], "queue": [], "rows": [], "each": [], "factory": []}
    transactions = []
    for r in range(args.rounds):
        tag = f"{int(time.time())}-{r}"
        seconds, clusters, schedd, described, rows = ours(work, jobs, tag)
        times["ours"].append(seconds)
        transactions.append(clusters)
        address = schedd.location["MyAddress"] if hasattr(schedd, "location") else None
        if address is None:
            collector = htcondor2.Collector()
            address = collector.query(htcondor2.AdType.Schedd, projection=["MyAddress"])[0]["MyAddress"]
        times["condor_submit"].append(condor_submit(work, n, tag, address))
        remove(schedd, f"bench-cs-{tag}")
        times["factory"].append(condor_submit(work, n, tag, address, schedd))
        remove(schedd, f"bench-csf-{tag}")
        times["queue"].append(queue_n(schedd, work, n, tag))
        remove(schedd, f"bench-queue-{tag}")
        described, rows = htcondor_submit.hoist(described, rows)
        times["rows"].append(transaction(schedd, described, rows, tag))
        remove(schedd, f"bench-rows-{tag}")
        if r == 0:  # slow (seconds), and it is not what the goal compares
            times["each"].append(one_per_job(schedd, described, rows, tag))
            remove(schedd, f"bench-each-{tag}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"submit throughput: {n} jobs (matching no slot) to the test site's schedd, {args.rounds} rounds, medians")
    print(f"{'method':<52}{'seconds':>9}{'jobs/s':>9}   rounds")
    for key, label in (("ours", f"scailfin-exec htcondor scheduler ({max(transactions)} transaction(s) at most)"),
                       ("condor_submit", f"condor_submit, queue {n}"),
                       ("queue", f"the bindings, one submit with count={n}"),
                       ("rows", "  the scheduler's transaction alone (rows made)"),
                       ("each", "one Schedd.submit per job (first round only)"),
                       ("factory", f"condor_submit, queue {n}, max_materialize = {n}")):
        shown = " ".join(f"{t:.2f}" for t in times[key])
        print(f"{label:<52}{med[key]:>9.2f}{n / med[key]:>9.0f}   {shown}")
    per_round = [c / o for c, o in zip(times["condor_submit"], times["ours"])]
    print(f"scheduler vs condor_submit queue {n}: {med['condor_submit'] / med['ours']:.2f} of its rate "
          f"(rounds {min(per_round):.2f} to {max(per_round):.2f}; goal: at least 0.80)")
    print(f"scheduler vs the bindings' queue {n}: {med['queue'] / med['ours']:.2f} of its rate")
    print(f"HTCondor's own time for the scheduler's {n} jobs: {med['rows']:.2f} s; "
          f"the scheduler's Python work: {med['ours'] - med['rows']:.2f} s")
    print(f"scheduler vs one submit per job:  {med['each'] / med['ours']:.1f}x")
    print(f"scheduler vs condor_submit queue {n} with max_materialize = {n}: {med['factory'] / med['ours']:.2f} "
          "of its rate")


if __name__ == "__main__":
    main()
