# Benchmark: the seconds scailfin-exec adds to one step on HTCondor. In one run, alternating:
#   baseline: a raw HTCondor job (bindings, event log) whose executable runs the same container
#             directly (apptainer exec IMAGE true), submit to termination;
#   ours:     a one-step CWL workflow through `scailfin-cwl --scheduler htcondor` (same image,
#             same runtime), whole command;
#   cwltool:  `scailfin-cwl --validate` on the same workflow: cwltool's own start-up and loading,
#             which any CWL run pays, to show where the difference goes.
# Prints medians and the difference (goal: under 0.5 s).
#
#   dev/as-test-user python benchmarks/step_latency.py [--repeat 8]
import argparse
import os
import statistics
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()
    work = work_dir("step-latency-")
    step = os.path.join(work, "step.cwl")
    with open(step, "w") as f:
        f.write(STEP)
    schedd = htcondor2.Schedd(htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, "localhost"))
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    ours = [exe, "--quiet", "--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer",
            "--image-roots", IMAGE_ROOT, "--pull", "no", step]
    times = {"raw": [], "ours": [], "cwltool": []}
    for i in range(args.repeat):  # ABBA order: neither side always follows the other's claimed slot
        if i % 2 == 0:
            times["raw"].append(raw_job(schedd, work, i))
            times["ours"].append(timed(ours, work))
        else:
            times["ours"].append(timed(ours, work))
            times["raw"].append(raw_job(schedd, work, i))
        times["cwltool"].append(timed([exe, "--validate", step], work))
    raw, mine, loading = (statistics.median(times[k]) for k in ("raw", "ours", "cwltool"))
    print(f"step latency on the test site, median of {args.repeat} runs each (apptainer, alpine, `true`)")
    print(f"raw HTCondor job running the container:      {raw:6.2f} s")
    print(f"one-step workflow through scailfin-cwl:      {mine:6.2f} s")
    print(f"  of which cwltool's start-up and loading:   {loading:6.2f} s (scailfin-cwl --validate)")
    print(f"added by scailfin-cwl over the raw job:      {mine - raw:6.2f} s (goal: under 0.5 s)")
    print(f"added beyond cwltool's own start-up:         {mine - raw - loading:6.2f} s")
    print("runs (s): " + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v) for k, v in times.items()))


if __name__ == "__main__":
    main()
