# Benchmark: a 10-stage yadage chain of small busybox steps through packtivity's own `multiproc`
# backend (its docker command, answered here by Podman: a `docker` that execs `podman`) and
# through scailfin-exec's backend with the local scheduler and Podman, alternated, in one run;
# prints median wall times and the ratio (goal: at most 1.0).
#
#   dev/as-test-user python benchmarks/yadage_overhead.py [--repeat 3]
import argparse
import os
import statistics
import sys

from common import image_roots, into_podman, timed, work_dir

YADAGE_RUN = os.path.join(os.path.dirname(sys.executable), "yadage-run")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    roots = image_roots()
    into_podman("docker.io/library/busybox", roots)  # for both
    work = work_dir("yadage-overhead-")
    flow = os.path.join(work, "flow")
    os.makedirs(flow)
    text = "stages:\n"
    for i in range(1, 11):
        source = "{step: init, output: start}" if i == 1 else f"{{step: s{i - 1}, output: out}}"
        text += (f"  - name: s{i}\n    dependencies: [{'init' if i == 1 else f's{i - 1}'}]\n    scheduler:\n"
                 f"      scheduler_type: singlestep-stage\n      parameters:\n        previous: {source}\n"
                 f"        out: '{{workdir}}/out.txt'\n      step:\n        process:\n"
                 f"          process_type: string-interpolated-cmd\n"
                 f"          cmd: 'cat {{previous}} > {{out}} 2>/dev/null; echo {i} >> {{out}}'\n"
                 f"        publisher:\n          publisher_type: frompar-pub\n          outputmap:\n            out: out\n"
                 f"        environment:\n          environment_type: docker-encapsulated\n"
                 f"          image: docker.io/library/busybox\n")
    with open(os.path.join(flow, "workflow.yml"), "w") as f:
        f.write(text)
    with open(os.path.join(flow, "input.yml"), "w") as f:
        f.write("start: /dev/null\n")
    fake = os.path.join(work, "bin")  # packtivity calls `docker`: Podman answers, creating missing
    os.makedirs(fake)                  # bind sources as Docker does (packtivity relies on that)
    with open(os.path.join(fake, "docker"), "w") as f:
        f.write('#!/bin/sh\nprevious=\nfor arg in "$@"; do\n  [ "$previous" = -v ] && mkdir -p "${arg%%:*}"\n'
                '  previous=$arg\ndone\nexec podman "$@"\n')
    os.chmod(os.path.join(fake, "docker"), 0o755)
    stock_env = dict(os.environ, PATH=fake + os.pathsep + os.environ["PATH"], PACKTIVITY_DOCKER_NOPULL="1")
    runs = {
        "multiproc": ([YADAGE_RUN, "-t", flow, "-b", "multiproc:2"], stock_env),
        "scailfin": ([YADAGE_RUN, "-t", flow, "-b", "py:scailfin_exec.yadage:Backend", "-k", "runtime=podman",
                      "-k", f"image_roots=[{os.pathsep.join(roots)}]", "-k", "pull=false"], dict(os.environ)),
    }
    times = {name: [] for name in runs}
    for i in range(args.repeat):
        for name, (argv, env) in runs.items():
            workdir = os.path.join(work, f"{name}-{i}")
            elapsed = timed(argv + [workdir, "workflow.yml", os.path.join(flow, "input.yml")], work, env)
            last = os.path.join(workdir, "s10", "out.txt")
            if open(last).read().split() != [str(n) for n in range(1, 11)]:
                sys.exit(f"{name} ran, but {last} is not the chain's output")
            times[name].append(elapsed)
    stock, ours = statistics.median(times["multiproc"]), statistics.median(times["scailfin"])
    print(f"yadage overhead: 10-stage chain of busybox steps, Podman, median of {args.repeat}")
    print(f"packtivity multiproc (docker = podman):  {stock:6.1f} s")
    print(f"scailfin-exec backend, local scheduler:  {ours:6.1f} s")
    print(f"ratio: {ours / stock:.2f} (goal: at most 1.0)")


if __name__ == "__main__":
    main()
