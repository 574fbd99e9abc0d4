# Benchmark: how the submit side's cost grows with the workflow, on the test site. For each size N
# (default 100 and 500; --steps 100,1000,5000 for more), in one run:
#   bare:   N jobs running /bin/true, one `queue N` submission through the bindings, from the
#           submission to the last one's end (the pool's own rate: the baseline);
#   cwl:    a scatter of N no-op steps (alpine, `true`) through `scailfin-cwl --scheduler
#           htcondor --transfer htcondor --runtime apptainer --parallel`, the whole command;
#   yadage: the same N steps as one multistep stage through the yadage backend (`yadage-run -b
#           py:scailfin_exec.yadage:Backend -k scheduler=htcondor`), with --yadage-args added to
#           its command line (the engine's own settings: e.g. "--ctrlopt disable_prepub=true
#           --updateinterval 1"; REANA's yadage engine polls every 15 s).
# For cwl and yadage: wall time (and against bare), the front end's CPU seconds (user + system,
# its whole process tree as wait4 reports it) per step, its peak RSS, and the ratio of the
# per-step CPU at the largest N to that at the smallest (goal: at most 1.2).
#
# --profile DIR samples each front end (all its threads and processes) with py-spy, 50 times a
# second, into DIR/FRONT-N.txt (collapsed stacks: flamegraph.pl or speedscope draw them), and
# prints where its samples fall: the functions most often running (self) and the project's and
# engines' functions most often on the stack (inclusive). Sampling slows the front end a little:
# its CPU and wall figures are then not the benchmark's. py-spy falls behind on a process with
# ~1,000 threads (scailfin-cwl at 1,000 steps in flight) and its samples are then misplaced: for
# the main thread, `python -m cProfile -o F .venv/bin/scailfin-cwl ...` is exact.
#
#   dev/as-test-user python benchmarks/scale.py [--steps 100,500] [--only cwl|yadage] [--profile DIR]
#                                               [--yadage-args "yadage-run options"]
import argparse
import collections
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import htcondor2

from common import image_roots, work_dir

BIN = os.path.dirname(sys.executable)
CWL_STEP = """cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
baseCommand: "true"
inputs:
  item: int
outputs: []
"""
CWL_WORKFLOW = """cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  items: int[]
outputs: []
steps:
  noop:
    run: noop.cwl
    scatter: item
    in: {item: items}
    out: []
"""
YADAGE_WORKFLOW = """stages:
  - name: noop
    dependencies: [init]
    scheduler:
      scheduler_type: multistep-stage
      parameters:
        item: {step: init, output: items}
      scatter:
        method: zip
        parameters: [item]
      step:
        process:
          process_type: string-interpolated-cmd
          cmd: 'true {item}'
        publisher:
          publisher_type: frompar-pub
          outputmap: {}
        environment:
          environment_type: docker-encapsulated
          image: docker.io/library/alpine
"""


PROFILE = {"dir": None}  # set by --profile
YADAGE_ARGS = []  # set by --yadage-args


def measured(argv, cwd):
    """(wall seconds, CPU seconds of the process tree, peak RSS in MiB) of one command."""
    if PROFILE["dir"]:
        name = os.path.basename(cwd).rsplit("-", 1)[0]  # FRONT-N
        out = os.path.join(PROFILE["dir"], f"{name}.txt")
        argv = [shutil.which("py-spy"), "record", "--rate", "50", "--subprocesses", "--format", "raw", "--output",
                out, "--"] + argv
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(cwd, "stderr.log"), "w"))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{open(os.path.join(cwd, 'stderr.log')).read()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def where_time_goes(path, top=12):
    """The sampled stacks of one front end, summed: (self, inclusive) counters of 'function
    (file:line)' frames, and the number of samples."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            total += int(count)
            own[frames[-1]] += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
    print(f"{os.path.basename(path)}: {total} samples")
    print("  most often running (self):")
    for frame, count in own.most_common(top):
        print(f"    {100 * count / total:5.1f}%  {frame}")
    print("  most often on the stack (inclusive; scailfin_exec, cwltool, yadage, packtivity, adage):")
    ours = [(f, c) for f, c in inclusive.most_common() if any(k in f for k in (
        "scailfin_exec/", "cwltool/", "yadage/", "packtivity/", "adage/"))]
    for frame, count in ours[:top]:
        print(f"    {100 * count / total:5.1f}%  {frame}")


def bare(schedd, work, n):
    log = os.path.join(work, f"bare-{n}.log")
    started = time.perf_counter()
    schedd.submit(htcondor2.Submit({"executable": "/bin/true", "transfer_executable": "false", "log": log,
                                    "initialdir": work, "output": "/dev/null", "error": "/dev/null",
                                    "should_transfer_files": "YES", "batch_name": "scale-bare",
                                    "request_cpus": "1", "request_memory": "64M", "request_disk": "10M"}),
                  count=n)
    ended = 0
    for event in htcondor2.JobEventLog(log).events(stop_after=3600):
        if event.type == htcondor2.JobEventType.JOB_HELD:
            sys.exit(f"a bare job was held: {event.get('HoldReason')}")
        if event.type == htcondor2.JobEventType.JOB_TERMINATED:
            ended += 1
            if ended == n:
                return time.perf_counter() - started
    sys.exit("the bare jobs did not all end")


def cwl(work, n):
    home = work_dir(f"cwl-{n}-", work)
    with open(os.path.join(home, "noop.cwl"), "w") as f:
        f.write(CWL_STEP)
    with open(os.path.join(home, "scatter.cwl"), "w") as f:
        f.write(CWL_WORKFLOW)
    with open(os.path.join(home, "job.json"), "w") as f:
        json.dump({"items": list(range(n))}, f)
    return measured([os.path.join(BIN, "scailfin-cwl"), "--scheduler", "htcondor", "--transfer", "htcondor",
                     "--runtime", "apptainer", "--parallel", "--quiet", "--progress", "no", "--image-roots",
                     os.pathsep.join(image_roots()), "--pull", "no", "--outdir", os.path.join(home, "out"),
                     "scatter.cwl", "job.json"], home)


def yadage(work, n):
    home = work_dir(f"yadage-{n}-", work)
    toplevel = os.path.join(home, "spec")
    os.makedirs(toplevel)
    with open(os.path.join(toplevel, "workflow.yml"), "w") as f:
        f.write(YADAGE_WORKFLOW)
    with open(os.path.join(toplevel, "input.yml"), "w") as f:
        json.dump({"items": list(range(n))}, f)
    return measured([os.path.join(BIN, "yadage-run"), "-t", toplevel, "-b", "py:scailfin_exec.yadage:Backend",
                     "-k", f"image_roots=[{os.pathsep.join(image_roots())}]", "-k", "pull=false",
                     "-k", "scheduler=htcondor", "-k", "transfer=htcondor", "-k", "runtime=apptainer",
                     "-k", "progress=false", *YADAGE_ARGS, os.path.join(home, "work"), "workflow.yml",
                     os.path.join(toplevel, "input.yml")], home)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", default="100,500")
    parser.add_argument("--only", choices=["cwl", "yadage"])
    parser.add_argument("--profile", metavar="DIR", help="sample each front end with py-spy into DIR and say "
                        "where its time goes")
    parser.add_argument("--yadage-args", default="", help="options added to yadage-run's command line")
    args = parser.parse_args()
    YADAGE_ARGS[:] = shlex.split(args.yadage_args)
    if args.profile:
        if not shutil.which("py-spy"):
            sys.exit("--profile needs py-spy (pip install py-spy: dev/setup installs it)")
        os.makedirs(args.profile, exist_ok=True)
        PROFILE["dir"] = os.path.abspath(args.profile)
    sizes = [int(s) for s in args.steps.split(",")]
    coll = htcondor2.Collector()
    schedd = htcondor2.Schedd(coll.locate(htcondor2.DaemonType.Schedd, "localhost"))
    slots = sum(int(ad.get("Cpus", 0)) for ad in coll.query(htcondor2.AdType.Startd, projection=["Cpus"]))
    work = work_dir("scale-", os.environ.get("TMPDIR"))
    fronts = {"cwl": cwl, "yadage": yadage}
    if args.only:
        fronts = {args.only: fronts[args.only]}
    print(f"scale: no-op steps on the test site ({slots} CPUs in its slots), {os.cpu_count()} cores"
          + (f"; yadage-run {shlex.join(YADAGE_ARGS)}" if YADAGE_ARGS and "yadage" in fronts else ""))
    print(f"{'front end':<10}{'steps':>7}{'wall s':>9}{'vs bare':>9}{'CPU s':>8}{'CPU ms/step':>13}{'peak RSS MiB':>14}",
          flush=True)
    rows = {}
    for n in sizes:
        base = bare(schedd, work, n)
        rows[("bare", n)] = (base, None, None)
        print(f"{'bare':<10}{n:>7}{base:>9.1f}{1:>9.2f}", flush=True)  # each row as it is measured
        for name, run in fronts.items():
            wall, cpu, rss = rows[(name, n)] = run(work, n)
            print(f"{name:<10}{n:>7}{wall:>9.1f}{wall / base:>9.2f}{cpu:>8.1f}{1000 * cpu / n:>13.1f}{rss:>14.0f}",
                  flush=True)
    for name in fronts:
        small, large = min(sizes), max(sizes)
        ratio = (rows[(name, large)][1] / large) / (rows[(name, small)][1] / small)
        print(f"{name}: CPU per step at {large} steps / at {small}: {ratio:.2f} (goal: at most 1.2)")
    if args.profile:
        for name, n in rows:
            if name != "bare":
                where_time_goes(os.path.join(PROFILE["dir"], f"{name}-{n}.txt"))


if __name__ == "__main__":
    main()
