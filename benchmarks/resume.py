# Benchmark: a fully cached re-run. The decay-scatter example (24 Python steps, then a gather) runs
# once with --cachedir through `scailfin-cwl --scheduler local --runtime podman` and once through
# stock `cwltool --podman` (each its own cache), then each re-runs fully cached, interleaved, a few
# times. Prints the median re-run wall times and two ratios: our cached re-run against stock
# cwltool's (goal: at most 1.0), and against our first run (goal: under 0.10). A re-run that ran
# any step stops the benchmark: it would not be measuring a cached re-run.
#
#   dev/as-test-user python benchmarks/resume.py [--repeat 3]
import argparse
import os
import statistics
import subprocess
import sys

from common import image_roots, into_podman, timed, work_dir

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cwl_examples", "decay-scatter")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    roots = image_roots()
    into_podman("docker.io/library/python:3-slim", roots)  # stock cwltool runs with --disable-pull
    work = work_dir("resume-")
    files = [os.path.join(EXAMPLE, "decay-scatter.cwl"), os.path.join(EXAMPLE, "decay-scatter-job.json")]
    commands = {
        "stock": ["cwltool", "--podman", "--disable-pull", "--parallel", "--cachedir", os.path.join(work, "stock-cache")],
        "ours": ["scailfin-cwl", "--runtime", "podman", "--image-roots", os.pathsep.join(roots), "--pull", "no",
                 "--parallel", "--progress", "no", "--cachedir", os.path.join(work, "our-cache")],
    }
    first = {name: timed(argv + ["--outdir", os.path.join(work, f"{name}-first")] + files, work)
             for name, argv in commands.items()}
    again = {"stock": [], "ours": []}
    for i in range(args.repeat):
        for name, argv in commands.items():
            out = os.path.join(work, f"{name}-again-{i}")
            trace = os.path.join(work, f"{name}-again-{i}.log")
            again[name].append(timed_cached(argv + ["--outdir", out] + files, work, trace))
    s, o = statistics.median(again["stock"]), statistics.median(again["ours"])
    podman = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.split()[-1]
    print(f"Fully cached re-run of decay-scatter (25 steps): median of {args.repeat}, Podman {podman}, "
          f"{os.cpu_count()} cores")
    print(f"{'':<28}{'cwltool --podman':>18}{'scailfin-cwl':>15}{'ratio':>8}")
    print(f"{'first run (fills the cache)':<28}{first['stock']:>16.1f} s{first['ours']:>13.1f} s"
          f"{first['ours'] / first['stock']:>8.2f}")
    print(f"{'re-run, fully cached':<28}{s:>16.2f} s{o:>13.2f} s{o / s:>8.2f}   (goal: at most 1.0)")
    print(f"our re-run / our first run: {o / first['ours']:.3f}   (goal: under 0.10)")


def timed_cached(argv, cwd, log):
    """Wall seconds of a re-run that must take all 25 steps from the cache (cwltool says so for each)."""
    seconds = timed(argv, cwd, stderr_to=log)
    said = open(log).read()
    hits = said.count("Using cached output in")
    if hits != 25:
        sys.exit(f"a re-run took {hits} of 25 steps from the cache: {' '.join(argv)}\n{said[-3000:]}")
    return seconds


if __name__ == "__main__":
    main()
