# Benchmark: the seconds scailfin-exec adds to one step on HTCondor and on Slurm. For each, in one
# run, alternating:
#   baseline: a raw job whose command runs the same container directly (apptainer exec IMAGE
#             true), submit to termination: on HTCondor through the bindings and the event log,
#             on Slurm `sbatch --wrap` followed by `scontrol show job` every 50 ms;
#   ours:     a one-step CWL workflow through `scailfin-cwl --scheduler htcondor|slurm` (same
#             image, same runtime), whole command;
#   cwltool:  `scailfin-cwl --validate` on the same workflow: cwltool's own start-up and loading,
#             which any CWL run pays, to show where the difference goes.
# Prints medians and the difference (goal: under 0.5 s).
#
#   dev/as-test-user python benchmarks/step_latency.py [--repeat 8] [--only htcondor|slurm]
import argparse
import os
import statistics
import subprocess
import sys
import time

import htcondor2

from common import image_roots, timed, work_dir

IMAGE_ROOT = image_roots()[0]
IMAGE_DIR = os.path.join(IMAGE_ROOT, "registry.hub.docker.com", "library", "alpine:latest")
STEP = """cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
baseCommand: "true"
inputs: []
outputs: []
"""


def raw_job(schedd, work, i):
    log = os.path.join(work, f"raw-{i}.log")
    started = time.perf_counter()
    schedd.submit(htcondor2.Submit({
        "executable": "/usr/bin/apptainer", "transfer_executable": "false",
        "arguments": f"exec --contain --cleanenv {IMAGE_DIR} true",
        "log": log, "output": os.path.join(work, f"raw-{i}.out"), "error": os.path.join(work, f"raw-{i}.err"),
        "should_transfer_files": "YES", "initialdir": work, "batch_name": "step-latency-raw",
        # the resources scailfin-cwl asks for a step without a ResourceRequirement, so that both
        # can reuse the same claimed slot
        "request_cpus": "1", "request_memory": "256M", "request_disk": "2048M"}))
    for event in htcondor2.JobEventLog(log).events(stop_after=120):
        if event.type == htcondor2.JobEventType.JOB_TERMINATED:
            if event["ReturnValue"] != 0:
                sys.exit(f"the raw job failed: {open(os.path.join(work, f'raw-{i}.err')).read()}")
            return time.perf_counter() - started
    sys.exit("the raw job did not finish")


def raw_slurm_job(work, i):
    started = time.perf_counter()
    job = subprocess.run(["sbatch", "--parsable", "--job-name=step-latency-raw", "--cpus-per-task=1", "--mem=256M",
                          f"--output={work}/raw-{i}.out", f"--error={work}/raw-{i}.err",
                          f"--wrap=exec apptainer exec --contain --cleanenv {IMAGE_DIR} true"],
                         capture_output=True, text=True, check=True).stdout.strip()
    while True:
        shown = subprocess.run(["scontrol", "--oneliner", "show", "job", job], capture_output=True, text=True).stdout
        state = shown.split("JobState=", 1)[1].split()[0]
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            if state != "COMPLETED":
                sys.exit(f"the raw Slurm job ended {state}: {open(os.path.join(work, f'raw-{i}.err')).read()}")
            return time.perf_counter() - started
        time.sleep(0.05)


def measure(name, raw, ours, validate, repeat):
    times = {"raw": [], "ours": [], "cwltool": []}
    for i in range(repeat):  # ABBA order: neither side always follows the other (a claimed slot, a warm node)
        if i % 2 == 0:
            times["raw"].append(raw(i))
            times["ours"].append(ours())
        else:
            times["ours"].append(ours())
            times["raw"].append(raw(i))
        times["cwltool"].append(validate())
    raw_s, mine, loading = (statistics.median(times[k]) for k in ("raw", "ours", "cwltool"))
    print(f"step latency on the test site's {name}, median of {repeat} runs each (apptainer, alpine, `true`)")
    print(f"raw {name} job running the container:{'':<{14 - len(name)}}{raw_s:6.2f} s")
    print(f"one-step workflow through scailfin-cwl:      {mine:6.2f} s")
    print(f"  of which cwltool's start-up and loading:   {loading:6.2f} s (scailfin-cwl --validate)")
    print(f"added by scailfin-cwl over the raw job:      {mine - raw_s:6.2f} s (goal: under 0.5 s)")
    print(f"added beyond cwltool's own start-up:         {mine - raw_s - loading:6.2f} s")
    print("runs (s): " + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v) for k, v in times.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--only", choices=["htcondor", "slurm"], help="one scheduler only (default: both)")
    args = parser.parse_args()
    work = work_dir("step-latency-", parent="/tmp")  # the Slurm node sees the host's /tmp
    step = os.path.join(work, "step.cwl")
    with open(step, "w") as f:
        f.write(STEP)
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")

    def ours(scheduler, *options):
        argv = [exe, "--quiet", "--scheduler", scheduler, *options, "--runtime", "apptainer",
                "--image-roots", IMAGE_ROOT, "--pull", "no", step]
        return lambda: timed(argv, work)

    def validate():
        return timed([exe, "--validate", step], work)

    if args.only in (None, "htcondor"):
        schedd = htcondor2.Schedd(htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, "localhost"))
        measure("HTCondor", lambda i: raw_job(schedd, work, i), ours("htcondor", "--transfer", "htcondor"), validate,
                args.repeat)
    if args.only in (None, "slurm"):
        measure("Slurm", lambda i: raw_slurm_job(work, i), ours("slurm"), validate, args.repeat)


if __name__ == "__main__":
    main()
