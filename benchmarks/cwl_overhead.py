# Benchmark: what scailfin-cwl adds over cwltool's own container path. The same 10-step chain
# and 20-way scatter of small alpine steps run through stock `cwltool --podman` (the baseline)
# and through `scailfin-cwl --scheduler local --runtime podman`, interleaved, in one run; prints
# median wall times and their ratio (goal: at most 1.0).
#
#   dev/as-test-user python benchmarks/cwl_overhead.py [--repeat 3]
import argparse
import os
import statistics
import subprocess

from common import image_roots, into_podman, timed, work_dir

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cwl")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    roots = image_roots()
    into_podman("docker.io/library/alpine", roots)  # stock cwltool runs with --disable-pull
    work = work_dir("cwl-overhead-")
    stock = ["cwltool", "--podman", "--disable-pull", "--quiet"]
    ours = ["scailfin-cwl", "--runtime", "podman", "--image-roots", os.pathsep.join(roots), "--pull", "no", "--quiet"]
    cases = [("10-step chain", ["chain10.cwl"], []), ("20-way scatter", ["scatter20.cwl"], ["--parallel"])]
    print(f"CWL overhead: median of {args.repeat} runs each, Podman {subprocess.run(['podman', '--version'], capture_output=True, text=True).stdout.split()[-1]}, {os.cpu_count()} cores")
    print(f"{'workflow':<18}{'cwltool --podman':>18}{'scailfin-cwl':>15}{'ratio':>8}")
    for label, files, extra in cases:
        times = {"stock": [], "ours": []}
        for i in range(args.repeat):
            for name, base in (("stock", stock), ("ours", ours)):
                out = os.path.join(work, f"{name}-{label[:2]}-{i}")
                times[name].append(timed(base + extra + ["--outdir", out] + [os.path.join(HERE, f) for f in files], work))
        s, o = statistics.median(times["stock"]), statistics.median(times["ours"])
        print(f"{label:<18}{s:>16.1f} s{o:>13.1f} s{o / s:>8.2f}")
    print("goal: a ratio of at most 1.0")


if __name__ == "__main__":
    main()
