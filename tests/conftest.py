# Shared fixtures: the stand-in images dev/setup built, job files, running the real shim, and
# stand-in executables that record command lines for runtimes that cannot be installed here.
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from scailfin_exec.job import Job, ImageSources, write_job
from scailfin_exec.shipping import build_shim, shim_command

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    # A test command started in the background by a non-interactive shell (`dev/test &`, some CI
    # runners) inherits SIGINT ignored, and so would every child: the tests that press Ctrl-C on
    # yadage-run or scailfin-cwl need it as a terminal gives it. A Python handler here is the
    # default again in each child after exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if config.option.markexpr == "fast":
        return  # the fast tier (dev/test --fast): pure tests, any user, no site, no container
    if os.getuid() == 0:
        raise pytest.UsageError(
            "run the tests through dev/test: they run as the unprivileged test user, because containers run "
            "rootless here as on a cluster (Charliecloud refuses nothing as root, which would prove nothing)")
    if not os.environ.get("SCAILFIN_TEST_IMAGE_ROOTS"):
        raise pytest.UsageError("SCAILFIN_TEST_IMAGE_ROOTS is not set: run the tests through dev/test, which builds "
                                "the stand-in images and sets it")


@pytest.fixture(scope="session", autouse=True)
def temporary_files_stay_in_pytests_directory(tmp_path_factory):
    """What the tests run (scailfin-cwl, cwltool, yadage, the runtimes) keeps its temporary files
    in pytest's own directory, which pytest prunes, not in /tmp: the run directories failed runs
    keep for their user, and the empty ones cwltool leaves when a tool fails before it runs."""
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmp"))
    tempfile.tempdir = None  # tempfile reads TMPDIR again
    yield
    if before is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = before
    tempfile.tempdir = None


@pytest.fixture(scope="session")
def image_roots():
    return [p for p in os.environ["SCAILFIN_TEST_IMAGE_ROOTS"].split(os.pathsep) if p]


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    return build_shim(tmp_path_factory.mktemp("shim"))


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


@pytest.fixture
def make_job(tmp_path, workspace, image_roots):
    """Write a job file; keyword arguments override the defaults (alpine, charliecloud, no pull)."""
    counter = iter(range(1000))

    def make(**fields):
        n = next(counter)
        if "images" not in fields:
            os.makedirs(tmp_path / "image-cache", exist_ok=True)  # as the submit side makes it
        images = fields.pop("images", ImageSources(image_roots, str(tmp_path / "image-cache"), False))
        defaults = dict(id=f"job{n}", image="docker.io/library/alpine", argv=["true"], workspace=str(workspace),
                        runtime=["charliecloud"], images=images)
        defaults.update(fields)
        job = Job(**defaults)
        path = tmp_path / f"job{n}.json"
        write_job(job, str(path))
        return path
    return make


def run_shim(shim, job_file, *args, python=sys.executable, env=None, timeout=300):
    """Run the shim as a worker would; return (exit code, stderr, result record or None)."""
    proc = subprocess.run(shim_command(python, shim, str(job_file)) + list(args), capture_output=True, text=True,
                          env=env if env is not None else dict(os.environ), timeout=timeout)
    result_file = str(job_file)[:-5] + ".result.json"
    record = json.load(open(result_file)) if os.path.exists(result_file) else None
    return proc.returncode, proc.stderr, record


def processes_running(word):
    """Host PIDs of live processes with this word among their arguments (a step's own PIDs are in
    its PID namespace, so tests find its processes by what they run)."""
    word, found = word.encode() if isinstance(word, str) else word, []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if word in f.read().split(b"\0"):
                    with open(f"/proc/{entry}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def wait_for(predicate, seconds=60):
    """Whether predicate became true within seconds (asked every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def snapshot(directory):
    """Every file under directory with its bytes: to prove a failure lost nothing."""
    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = f.read()
    return found


STAND_IN = textwrap.dedent('''\
    #!/usr/bin/python3
    # Stand-in for a container runtime that cannot be installed here: records its command line
    # (and the variables the runtime would hand to the container), answers version and image
    # queries, and exits as told. Recorded-argv tests only.
    import json, os, sys, time
    RECORD, BEHAVIOUR = %r, %r  # baked in: Shifter and Sarus get only the job's environment
    name = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    stdin = sys.stdin.read() if "pull" in args[:2] and sys.stdin else ""  # a login given there
    with open(RECORD, "a") as f:
        f.write(json.dumps({"program": name, "argv": sys.argv, "env": dict(os.environ), "stdin": stdin}) + "\\n")
    behaviour = json.loads(BEHAVIOUR).get(name, {})
    if args[:1] in (["--version"], ["-v"]):
        print(behaviour.get("version", name + " version 1.2.3"))
        sys.exit(0)
    key = " ".join(args[:2])
    if key in behaviour:  # e.g. "version --format": {"exit": 1, "out": "..."}
        answer = behaviour[key]
        sys.stdout.write(answer.get("out", ""))
        sys.stderr.write(answer.get("err", ""))
        sys.exit(answer.get("exit", 0))
    if name in ("apptainer", "singularity") and args[:1] == ["pull"]:
        time.sleep(float(behaviour.get("pull_seconds", 0)))
        open(args[1], "w").write("SIF for " + args[2])
        sys.exit(0)
    sys.exit(int(behaviour.get("exit", 0)))
''')


@pytest.fixture
def stand_ins(tmp_path):
    """Put stand-in executables named like runtimes first on PATH; read back what they recorded."""
    bindir = tmp_path / "stand-in-bin"
    bindir.mkdir()
    record = tmp_path / "stand-in-record.jsonl"

    class StandIns:
        path = bindir

        def install(self, *names, behaviour=None):
            for name in names:
                exe = bindir / name
                exe.write_text(STAND_IN % (str(record), json.dumps(behaviour or {})))
                exe.chmod(0o755)

        def env(self, base_path="/usr/bin:/bin"):
            env = dict(os.environ)
            env.update(PATH=f"{bindir}:{base_path}")
            env.pop("SCAILFIN_RUNTIME", None)
            return env

        def calls(self, program=None):
            if not record.exists():
                return []
            calls = [json.loads(line) for line in record.read_text().splitlines()]
            return [c for c in calls if program is None or c["program"] == program]

    return StandIns()


@pytest.fixture
def scailfin_cwl(image_roots, tmp_path):
    """Run scailfin-cwl (a subprocess, like a user) with the stand-in images and no pulls."""
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")

    def run(*args, env=None, cwd=None, timeout=600):
        run_dir = tempfile.mkdtemp(prefix="run-", dir=tmp_path)  # kept: tests read the result records
        argv = [exe, "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--run-dir", run_dir,
                *map(str, args)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd or tmp_path, timeout=timeout)
        proc.output = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
        proc.run_dir = run_dir
        return proc
    return run


def result_records(stderr):
    """The shim's result records of a scailfin-cwl run, found through the run directory it prints."""
    for line in stderr.splitlines():
        if "result records and step logs are in " in line:
            run_dir = line.rsplit(" ", 1)[-1]
            return [json.load(open(os.path.join(run_dir, d, "job.result.json"))) for d in sorted(os.listdir(run_dir))
                    if os.path.exists(os.path.join(run_dir, d, "job.result.json"))]
    raise AssertionError("scailfin-cwl did not say where its result records are:\n" + stderr[-2000:])


@pytest.fixture(scope="session")
def pool():
    """The test site's HTCondor pool (started by dev/test): its schedd, through the bindings."""
    import htcondor2

    if not os.environ.get("CONDOR_CONFIG") or not os.path.exists(os.environ["CONDOR_CONFIG"]):
        pytest.fail("CONDOR_CONFIG does not point at the test site's client configuration: run through dev/test")
    collector = htcondor2.Collector()
    schedd = htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, "localhost"))
    schedd.query(constraint="false", projection=["ClusterId"])
    return schedd


def jobs_in_queue(schedd, constraint):
    return schedd.query(constraint=constraint, projection=["ClusterId", "ProcId", "JobStatus"])


def wait_until_no_slot_is_claimed(collector, timeout=120, quiet=3.0):
    """Claims a schedd holds when it is stopped stay with the startd until their lease runs out
    (20 minutes here), starving later tests: the test that stops the schedd waits for a quiet pool
    first. The collector hears of a new claim a moment after it is made (seen: a claim made by
    the previous test's last match was not there yet), so the pool must stay without claimed or
    dynamic slots for `quiet` seconds."""
    import htcondor2

    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while True:
        busy = collector.query(htcondor2.AdType.Startd, constraint='State == "Claimed" || SlotType == "Dynamic"',
                               projection=["Name"])
        now = time.monotonic()
        if busy:
            quiet_since = now
        elif now - quiet_since >= quiet:
            return
        if now > deadline:
            raise AssertionError(f"slots still claimed after {timeout} s: {[ad['Name'] for ad in busy]}")
        time.sleep(0.5)


def forget_a_killed_startds_slots(collector, killed_at, timeout=120):
    """Once the startd that replaced one killed at killed_at (epoch seconds) has advertised its
    slots, the collector forgets the killed one's (it would show them, claimed, until their
    lifetime ran out: a quarter of an hour)."""
    import classad2
    import htcondor2

    def started():
        ads = collector.query(htcondor2.AdType.Startd, projection=["DaemonStartTime"])
        return max((int(a["DaemonStartTime"]) for a in ads), default=0)
    assert wait_for(lambda: started() > killed_at, timeout), f"no new startd advertised itself in {timeout} s"
    query = classad2.ClassAd({"MyType": "Query", "TargetType": "Machine"})
    query["Requirements"] = classad2.ExprTree(f"DaemonStartTime < {started()}")
    collector.advertise([query], "INVALIDATE_STARTD_ADS")


@pytest.fixture(scope="session")
def slurm():
    """The test site's Slurm cluster (started by dev/test; dev/as-test-user puts its commands on PATH)."""
    import shutil

    if shutil.which("scontrol") is None:
        pytest.fail("no scontrol on PATH: run through dev/test, which starts the site and puts its Slurm "
                    "commands there")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    if "UP" not in ping.stdout:
        pytest.fail(f"the site's slurmctld does not answer: {ping.stdout}{ping.stderr}")
    return os.path.dirname(os.path.dirname(shutil.which("scontrol")))  # the site's directory ($SITE/bin/scontrol)


@pytest.fixture
def docker_engine(monkeypatch):
    """The test site's Docker engine (tests/site/docker), reached by this test through DOCKER_HOST."""
    path = os.path.join(os.environ.get("SCAILFIN_CACHE", "/var/cache/scailfin-exec"), "site", "docker-host")
    if not os.path.exists(path):
        pytest.fail(f"no {path}: the test site's Docker engine is not running (tests/site/start starts it)")
    with open(path) as f:
        host = f.read().strip()
    monkeypatch.setenv("DOCKER_HOST", host)
    return host


def slurm_jobs(marker):
    """The Slurm jobs (array tasks) in the queue whose name or comment contains marker, and their states."""
    out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i|%j|%k|%T"], capture_output=True, text=True,
                         check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    return {row[0]: row[3] for row in rows if marker in row[1] or marker in row[2]}
