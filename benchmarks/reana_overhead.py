# Benchmark: what `scailfin-exec serve` adds to one step, beyond the engines' own poll interval.
# In one run, per scheduler (local with Charliecloud; htcondor with Apptainer and HTCondor file
# transfer, the test site must be up), alternating:
#   direct:  the same Job through the same scheduler in this process, submit() to wait() returning;
#   service: POST /jobs to the service, then GET /jobs/ID every 5 ms until it says finished
#            (an engine polls every few seconds; this measures the service, not the engine).
# Prints medians, the difference per step (goal: under 50 ms) and the ratio.
#
#   dev/as-test-user python benchmarks/reana_overhead.py [--repeat 10] [--only local|htcondor]
import argparse
import base64
import os
import signal
import statistics
import subprocess
import sys
import time

import requests

from common import image_roots, work_dir

from scailfin_exec.config import Settings  # noqa: E402  (common puts the checkout first on sys.path)
from scailfin_exec.reana.mapping import accept  # noqa: E402
from scailfin_exec.schedulers import scheduler_class  # noqa: E402

URL = "http://127.0.0.1:5000"
COMMAND = "echo done > out.txt"


def start_service(work, args):
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-exec")
    log = open(os.path.join(work, "serve.log"), "a")
    proc = subprocess.Popen([exe, "serve", "--state-dir", os.path.join(work, "state"), "--workspace-root", work,
                             "--image-roots", os.pathsep.join(image_roots()), "--pull", "no", *args],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(URL + "/jobs", timeout=5)
            return proc
        except requests.ConnectionError:
            if proc.poll() is not None:
                sys.exit(f"the service exited: {open(log.name).read()[-3000:]}")
            time.sleep(0.1)
    sys.exit("the service did not answer")


def stop_service(proc):
    requests.get(URL + "/shutdown", timeout=60)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def body(workspace, n):
    return {"docker_img": "docker.io/library/alpine", "job_name": f"bench-{n}", "workflow_uuid": "bench",
            "workflow_workspace": workspace, "cmd": base64.b64encode(COMMAND.encode()).decode()}


def through_service(session, workspace, n):
    started = time.perf_counter()
    job_id = session.post(URL + "/jobs", json=body(workspace, n), timeout=30).json()["job_id"]
    while True:
        status = session.get(f"{URL}/jobs/{job_id}", timeout=30).json()["status"]
        if status == "finished":
            return time.perf_counter() - started
        if status in ("failed", "stopped"):
            sys.exit(f"job {job_id} {status}: {session.get(f'{URL}/jobs/{job_id}/logs').text[-2000:]}")
        time.sleep(0.005)


def direct(scheduler, settings, workspace, n, roots):
    job = accept(body(workspace, n), f"direct-{n}", settings, roots).job  # the very Job the service would run
    started = time.perf_counter()
    result = scheduler.wait(scheduler.submit(job), timeout=300)
    if not result.ok:
        sys.exit(f"direct job failed: {result.describe()}")
    return time.perf_counter() - started


def measure(name, args, repeat):
    work = work_dir(f"reana-overhead-{name}-")
    workspace = os.path.join(work, "users", "u", "workflows", "bench")
    os.makedirs(workspace)
    settings = Settings(scheduler=name, transfer=args[args.index("--transfer") + 1] if "--transfer" in args else "shared",
                        runtime=[args[args.index("--runtime") + 1]], image_roots=image_roots(), pull=False).validate()
    settings.run_dir = os.path.join(work, "direct-run")
    scheduler = scheduler_class(name).from_settings(settings, "reana-overhead-direct")
    service = start_service(work, ["--scheduler", name, *args])
    times = {"direct": [], "service": []}
    try:
        with requests.Session() as session:
            through_service(session, workspace, -1)  # warm-up: the service's scheduler, the image
            direct(scheduler, settings, workspace, -1, [work])
            for i in range(repeat):  # ABBA: neither side always runs second
                order = ("direct", "service") if i % 2 == 0 else ("service", "direct")
                for side in order:
                    times[side].append(direct(scheduler, settings, workspace, i, [work]) if side == "direct"
                                       else through_service(session, workspace, i))
    finally:
        stop_service(service)
        scheduler.close()
    base, ours = statistics.median(times["direct"]), statistics.median(times["service"])
    print(f"{name} ({' '.join(args)}), median of {repeat} steps each:")
    print(f"  the Job through the scheduler directly:   {base * 1000:8.1f} ms")
    print(f"  POST /jobs to 'finished' via the service: {ours * 1000:8.1f} ms")
    print(f"  added by the service per step:            {(ours - base) * 1000:8.1f} ms (goal: under 50 ms); "
          f"ratio {ours / base:.3f}")
    print("  runs (ms): " + "; ".join(f"{k} " + " ".join(f"{t * 1000:.0f}" for t in v) for k, v in times.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--only", choices=["local", "htcondor"])
    args = parser.parse_args()
    if args.only in (None, "local"):
        measure("local", ["--runtime", "charliecloud"], args.repeat)
    if args.only in (None, "htcondor"):
        measure("htcondor", ["--transfer", "htcondor", "--runtime", "apptainer"], args.repeat)


if __name__ == "__main__":
    main()
