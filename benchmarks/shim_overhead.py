# Benchmark: the time the worker shim adds per job. For each runtime, N jobs run `true` through
# `python3 SHIM job.json`, interleaved with the runtime's own command run directly (the baseline,
# measured in the same run): the very command the shim built, binding the workspace itself rather
# than the step's private copy of it, or, for Charliecloud, whose command the shim runs inside its
# keeper's namespaces, the plain `ch-run` a user would type. Prints medians, the difference and
# the ratio.
#
#   dev/as-test-user python benchmarks/shim_overhead.py [--jobs 20] [--runtime charliecloud,podman]
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scailfin_exec.job import ImageSources, Job, write_job  # noqa: E402
from scailfin_exec.shipping import build_shim, shim_command  # noqa: E402

from common import image_roots, timed, work_dir  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--runtime", default="charliecloud,podman")
    parser.add_argument("--image", default="docker.io/library/alpine:latest")
    args = parser.parse_args()
    roots = image_roots()
    work = work_dir("shim-overhead-")
    shim = build_shim(work)
    workspace = os.path.join(work, "ws")
    os.makedirs(workspace)
    print(f"shim overhead: {args.jobs} jobs per runtime, payload `true` in {args.image}, python {sys.version.split()[0]}")
    print(f"{'runtime':<14}{'direct (baseline)':>20}{'through shim':>16}{'added':>10}{'ratio':>8}")
    for runtime in args.runtime.split(","):
        job_file = os.path.join(work, f"{runtime}.json")
        write_job(Job(id=runtime, image=args.image, argv=["true"], workspace=workspace, runtime=[runtime],
                      images=ImageSources(roots, os.path.join(work, "cache"), False)), job_file)
        shim_argv = shim_command(sys.executable, shim, job_file)
        subprocess.run(shim_argv, check=True, stderr=subprocess.DEVNULL)  # warm up (imports the image once)
        record = json.load(open(job_file[:-5] + ".result.json"))
        # the workspace bound itself (the shim binds the step's private copy of it, gone by now)
        direct_argv = [re.sub(r"/\.scailfin-work-[^:,]*", "", arg) for arg in record["command"]]
        if runtime == "charliecloud":  # its command names mount points only the keeper makes
            direct_argv = [direct_argv[0], "--private-tmp", "--unset-env=*", "-b", workspace, "-c", workspace,
                           record["image"]["location"], "--", "true"]
        env = dict(os.environ)
        if runtime == "charliecloud":
            env.setdefault("USER", record["user"])
        direct, through = [], []
        for _ in range(args.jobs):
            direct.append(timed(direct_argv, work, env))
            through.append(timed(shim_argv, work, env))
        d, s = statistics.median(direct), statistics.median(through)
        print(f"{runtime:<14}{d * 1000:>17.1f} ms{s * 1000:>13.1f} ms{(s - d) * 1000:>7.1f} ms{s / d:>8.2f}")
    print("goal: under 100 ms added per job")


if __name__ == "__main__":
    main()
