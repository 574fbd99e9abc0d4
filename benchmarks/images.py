# Benchmark: a registry image for a cold 24-way scatter (Apptainer, the test site's registry),
# through HTCondor (file transfer) and through Slurm, each with a cache on the shared file system
# and with each node's own cache. Each case pushes an image of its own (a new repository: nothing
# cached anywhere), runs the scatter through scailfin_exec.Run, and measures
#   - bytes downloaded / image size: the blobs the nodes fetched, from the registry's access log
#     (goal 1.0 with a shared cache; at most 1.0 per node with node caches: the site has one node);
#   - time to the first step running (submission to the earliest step's container start, from
#     the result records) against a bare `apptainer pull` then `apptainer exec` of another new
#     image as one job of the same scheduler, submission to its exec (goal: at most 1.2x);
#   - each step's image preparation once the cache is warm (the records' resolve_image; goal
#     under 20 ms).
#
#   dev/as-test-user python benchmarks/images.py [--steps 24] [--repeat 3]
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scailfin_exec import Run, Settings  # noqa: E402

from common import image_roots, work_dir  # noqa: E402

REGISTRY = "127.0.0.1:5001"
CACHE = os.environ.get("SCAILFIN_CACHE", "/var/cache/scailfin-exec")
LOG = os.path.join(CACHE, "site", "registry", "anonymous.log")
SHARED = "/scratch/scailfin-shared"


def push(work):
    """A new image (the alpine stand-in and a file of its own) in a new repository; its
    reference and its size (config and layers, as the registry stores them)."""
    reference = f"{REGISTRY}/bench/images-{uuid.uuid4().hex[:10]}:v1"
    layer = os.path.join(work, f"layer-{uuid.uuid4().hex[:8]}.tar")
    stand_in = os.path.join(image_roots()[0], "registry.hub.docker.com", "library", "alpine:latest")
    unique = os.path.join(work, "unique")
    with open(unique, "w") as f:
        f.write(uuid.uuid4().hex)
    with tarfile.open(layer, "w") as tar:
        tar.add(stand_in, arcname=".")
        tar.add(unique, arcname="etc/unique")
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", f"tarball:{layer}", f"docker://{reference}"],
                   check=True, timeout=300)
    manifest = json.loads(subprocess.run(["skopeo", "inspect", "--raw", f"docker://{reference}"], check=True,
                                         capture_output=True, text=True, timeout=60).stdout)
    return reference, manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def downloaded(reference):
    """Bytes of the blobs the nodes fetched for reference's repository (not skopeo's own)."""
    repository = reference.split("/", 1)[1].rsplit(":", 1)[0]
    pattern = re.compile(rf'"GET /v2/{re.escape(repository)}/blobs/\S+ HTTP/[\d.]+" 200 (\d+) ')
    with open(LOG) as f:
        return sum(int(m.group(1)) for line in f if "skopeo" not in line and (m := pattern.search(line)))


def scatter(scheduler, cache, steps, work):
    """A cold scatter of a new image; (image size, bytes downloaded, seconds to the first step
    running, warm preparations in seconds)."""
    reference, size = push(work)
    ws = work_dir("bench-ws-", SHARED)
    settings = Settings(scheduler=scheduler, transfer="htcondor" if scheduler == "htcondor" else "shared",
                        runtime=["apptainer"], pull=True, image_cache=cache, progress=False,
                        run_dir=work_dir("bench-run-", SHARED))
    with Run(settings, name="bench-images") as run:
        started = time.time()
        handles = [run.submit(run.job(run.job_id("s"), reference, ["true"], ws)) for _ in range(steps)]
        results = [run.wait(h, timeout=1200) for h in handles]
    bad = [r.describe() for r in results if not r.ok]
    if bad:
        sys.exit("a step failed: " + bad[0])
    records = [r.record for r in results]
    # a step's container starts once everything before its run is done: the shim's start plus
    # its total time less the run and the stage-out
    t = [r.timings for r in records]
    first = min(r.started + x["total"] - x["run"] - x.get("stage_out", 0) for r, x in zip(records, t)) - started
    # warm: found in the cache (not pulled by the step, nor waited for while another step pulled it)
    warm = [r.timings["resolve_image"] for r in records if "pulled" not in r.image.how]
    return size, downloaded(reference), first, warm


def bare(scheduler, work):
    """Submission to the `apptainer exec` of one job of scheduler running `apptainer pull` then
    `apptainer exec` of a new image, in seconds."""
    reference, _ = push(work)
    script = os.path.join(SHARED, f"bench-bare-{uuid.uuid4().hex[:8]}.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\nset -e\ncd \"${{_CONDOR_SCRATCH_DIR:-$(mktemp -d)}}\"\n"
                f"apptainer -q pull x.sif docker://{reference}\ndate +%s.%N > {script}.ran\n"
                f"apptainer exec x.sif true\n")
    os.chmod(script, 0o755)
    started = time.time()
    if scheduler == "slurm":
        subprocess.run(["sbatch", "--wait", "--quiet", "--output=/dev/null", script], check=True, timeout=1200)
    else:
        import htcondor2
        log = os.path.join(work, f"bare-{uuid.uuid4().hex[:8]}.log")
        collector = htcondor2.Collector()
        schedd = htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, "localhost"))
        cluster = schedd.submit(htcondor2.Submit({"executable": script, "log": log, "should_transfer_files": "YES",
                                                  "initialdir": SHARED, "error": script + ".err",
                                                  "environment": f"HOME={os.path.expanduser('~')}",
                                                  "request_cpus": "1", "request_memory": "500M"})).cluster()
        for event in htcondor2.JobEventLog(log).events(stop_after=1200):
            if event.type == htcondor2.JobEventType.JOB_HELD:
                schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")
                sys.exit(f"the bare pull and exec was held: {event.get('HoldReason')}")
            if event.type == htcondor2.JobEventType.JOB_TERMINATED:
                if event.get("ReturnValue") != 0:
                    sys.exit(f"the bare pull and exec failed (cluster {cluster}): exit {event.get('ReturnValue')}: "
                             + open(script + ".err").read()[-2000:])
                break
    with open(script + ".ran") as f:
        ran = float(f.read())
    for path in (script, script + ".err", script + ".ran"):
        if os.path.exists(path):
            os.unlink(path)
    return ran - started


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = work_dir("images-")
    rows, warm_all = [], []
    for scheduler in ("htcondor", "slurm"):
        # medians of --repeat rounds: a batch system's cycles make one start a second late or not
        baseline = statistics.median(bare(scheduler, work) for _ in range(args.repeat))
        for kind in ("shared", "node"):
            rounds = []
            for _ in range(args.repeat):
                cache = work_dir("bench-cache-", SHARED) if kind == "shared" else None
                size, got, first, warm = scatter(scheduler, cache, args.steps, work)
                warm_all += warm
                rounds.append((got / size, first))
            rows.append((scheduler, kind, max(r[0] for r in rounds), statistics.median(r[1] for r in rounds), baseline))
    print(f"images: a cold {args.steps}-way scatter of a registry image (Apptainer), one node; "
          "baseline: one job of `apptainer pull` + `apptainer exec`")
    print(f"medians of {args.repeat} rounds; fetched/size: the largest of the rounds")
    print(f"{'scheduler':<9} {'cache':<7} {'fetched/size':>12} {'first step s':>12} {'bare s':>7} {'ratio':>6}")
    for scheduler, kind, fetched, first, baseline in rows:
        print(f"{scheduler:<9} {kind:<7} {fetched:>12.2f} {first:>12.2f} {baseline:>7.2f} {first / baseline:>6.2f}")
    print("bytes fetched / image size: goal 1.0 (shared cache), at most 1.0 per node (node caches)")
    print("time to the first step running / bare pull+exec: goal at most 1.2")
    if warm_all:  # (--steps 1 has none)
        print(f"warm image preparation per step: median {statistics.median(warm_all) * 1000:.1f} ms, "
              f"max {max(warm_all) * 1000:.1f} ms over {len(warm_all)} steps (goal: under 20 ms)")


if __name__ == "__main__":
    main()
