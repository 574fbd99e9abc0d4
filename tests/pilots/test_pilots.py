# Pilots on the test site: `scailfin-exec pilots` submits HTCondor startds as Slurm jobs to the
# site's Slurm cluster; they join the site's pool (whose own startd is switched off for these
# tests, so every job must run on a pilot) with a token of the test user's identity, and the CWL
# and yadage examples run on them through chirp from workspaces the node cannot see
# (/tmp/scailfin-submit-only, an empty tmpfs in the mount namespace of the site's slurmd and its
# jobs: tests/site/start). Elastic growth, a pilot cancelled mid-step, a wrong token and a node
# without a container runtime are proven here too.
import contextlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from scailfin_exec.report.trace import read_trace

from ..conftest import result_records, slurm_jobs, wait_until_no_slot_is_claimed
from ..cwl.test_examples import EXAMPLES, check_decay_scatter, check_inventory, check_wordcount

EXE = os.path.join(os.path.dirname(sys.executable), "scailfin-exec")
SUBMIT_ONLY = "/tmp/scailfin-submit-only"


@pytest.fixture
def pool_without_startd(pool, slurm):
    """The site's pool with its own startd off (the test user may, as an administrator), on again after."""
    import htcondor2

    collector = htcondor2.Collector()
    [master] = collector.query(htcondor2.AdType.Master, constraint="ScailfinSite =!= undefined")
    wait_until_no_slot_is_claimed(collector)
    htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOff, "STARTD")
    try:
        deadline = time.monotonic() + 60
        while collector.query(htcondor2.AdType.Startd, constraint="ScailfinPilot =!= True", projection=["Name"]):
            assert time.monotonic() < deadline, "the site's startd did not leave"
            time.sleep(0.5)
        yield collector
    finally:
        # a test that failed half-way leaves no pilot to the next: cancelled as any user would, and
        # their slots wait for them to leave (a pilot takes its ads with it)
        subprocess.run(["scancel", "--name=scailfin-pilot"], check=True)
        wait_for(lambda: not pilot_slots(collector) and not slurm_jobs("scailfin-pilot"), 60, "the pilots leaving")
        htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonOn, "STARTD")
        deadline = time.monotonic() + 60
        while not collector.query(htcondor2.AdType.Startd, constraint="ScailfinPilot =!= True", projection=["Name"]):
            assert time.monotonic() < deadline, "the site's startd did not come back"
            time.sleep(0.5)


def start_pilots(tmp_path, *args):
    run = subprocess.run([EXE, "pilots", "--directory", str(tmp_path / "pilots"), "--network-interface", "127.0.0.1",
                          *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip(), run.stderr


def pilot_slots(collector):
    import htcondor2

    return collector.query(htcondor2.AdType.Startd, constraint="ScailfinPilot =?= True",
                           projection=["Name", "ScailfinRuntimes", "ScailfinPilotJob", "Cpus", "Memory", "HasCVMFS",
                                       "DetectedGPUs"])


@contextlib.contextmanager
def scailfin_cwl_running(args, cwd):
    """scailfin-cwl on the pool's pilot slots only, through chirp, while the test acts on it; a run
    still going at the end is interrupted (SIGTERM: it removes its jobs), not killed, so no job of
    it is left for later pilots."""
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    proc = subprocess.Popen([exe, "--scheduler", "htcondor", "--transfer", "chirp", "--runtime", "apptainer",
                             "--requirements", "ScailfinPilot =?= True", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=120)


def scailfin_cwl(args, cwd, timeout=300):
    """scailfin-cwl run to its end (or interrupted after timeout seconds)."""
    with scailfin_cwl_running(args, cwd) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {seconds} s")


def test_a_pilot_joins_the_pool_runs_the_cwl_examples_through_chirp_and_leaves_when_idle(pool_without_startd, tmp_path,
                                                                                        image_roots):
    collector = pool_without_startd
    array, said = start_pilots(tmp_path, "--count", "1", "--cpus", "2", "--memory", "1000", "--walltime", "10",
                               "--idle-time", "20")
    token = tmp_path / "pilots"
    [directory] = [d for d in token.iterdir()]
    assert oct((directory / "token").stat().st_mode & 0o777) == "0o600"
    [slot] = wait_for(lambda: pilot_slots(collector), 60, "a pilot slot in the collector")
    assert slot["ScailfinPilotJob"] == f"{array}_0" and slot["Cpus"] == 2 and slot["Memory"] == 1000
    assert set(slot["ScailfinRuntimes"].split(",")) >= {"apptainer", "charliecloud"}
    assert slot["HasCVMFS"] is True  # the site's nodes have /cvmfs/unpacked.cern.ch (tests/site/start)
    assert slot["DetectedGPUs"] == 0  # none here: the discovery ran and says so
    token_text = (directory / "token").read_text().strip()
    for log in directory.glob("pilot-*.log"):
        assert token_text not in log.read_text()

    # the workspaces where the node cannot see them (the schedd and the shadows can)
    home = tempfile.mkdtemp(dir=SUBMIT_ONLY, prefix="pilot-test-")
    try:
        for name, job, check in (("wordcount", "wordcount-job.yml", check_wordcount),
                                 ("inventory", "inventory-job.yml", check_inventory)):
            shutil.copytree(os.path.join(EXAMPLES, name), os.path.join(home, name))
            run_dir, out = os.path.join(home, f"{name}-run"), pathlib.Path(home, f"{name}-result")
            run = scailfin_cwl(
                ["--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--run-dir", run_dir,
                 "--tmpdir-prefix", os.path.join(home, "tmp/"), "--tmp-outdir-prefix", os.path.join(home, "out/"),
                 "--outdir", str(out), os.path.join(home, name, f"{name}.cwl"), os.path.join(home, name, job)], home)
            assert run.returncode == 0, run.stderr
            records = [json.load(open(os.path.join(run_dir, d, "job.result.json"))) for d in sorted(os.listdir(run_dir))
                       if os.path.exists(os.path.join(run_dir, d, "job.result.json"))]
            check(out, records, "apptainer")
            assert {r["slot"].split("@")[1] for r in records} == {slot["Name"].split("@")[1]}  # the pilot's slot
            assert {r["stage_in"]["method"] for r in records} == {"chirp (parrot)"}
    finally:
        shutil.rmtree(home, ignore_errors=True)

    # idle: the pilot leaves by itself, and nothing is left in squeue or the collector
    wait_for(lambda: not pilot_slots(collector) and not slurm_jobs("scailfin-pilot"), 60, "the idle pilot leaving")


def test_elastic_pilots_grow_for_a_scatter_and_the_pool_shrinks_to_nothing(pool_without_startd, tmp_path,
                                                                           image_roots):
    collector = pool_without_startd
    assert pilot_slots(collector) == []  # the scatter starts with no pilot
    watcher = subprocess.Popen([EXE, "pilots", "--watch", "--max", "3", "--cpus", "2", "--memory", "1000",
                                "--walltime", "10", "--idle-time", "15", "--interval", "2", "--network-interface",
                                "127.0.0.1", "--directory", str(tmp_path / "pilots")],
                               stderr=subprocess.PIPE, text=True)
    home = tempfile.mkdtemp(dir=SUBMIT_ONLY, prefix="elastic-test-")
    try:
        shutil.copytree(os.path.join(EXAMPLES, "decay-scatter"), os.path.join(home, "decay-scatter"))
        run = scailfin_cwl(
            ["--parallel",
             "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--run-dir", os.path.join(home, "run"),
             "--tmpdir-prefix", os.path.join(home, "tmp/"), "--tmp-outdir-prefix", os.path.join(home, "out/"),
             "--outdir", os.path.join(home, "result"), os.path.join(home, "decay-scatter", "decay-scatter.cwl"),
             os.path.join(home, "decay-scatter", "decay-scatter-job.json")], home)
        assert run.returncode == 0, run.stderr[-3000:]
        check_decay_scatter(pathlib.Path(home, "result"), json.loads(run.stdout), result_records(run.stderr),
                            "apptainer")
        slots = set()
        for d in os.listdir(os.path.join(home, "run")):
            path = os.path.join(home, "run", d, "job.result.json")
            if os.path.exists(path):
                slots.add(json.load(open(path))["slot"].split("@", 1)[1])
        assert len(slots) >= 2 and all(s.startswith("scailfin-pilot-") for s in slots), slots  # it grew
    finally:
        watcher.terminate()
        _, said = watcher.communicate(timeout=60)
        shutil.rmtree(home, ignore_errors=True)
    assert "more submitted as Slurm job" in said and "stopped watching" in said, said
    # idle: every pilot leaves by itself, and nothing is left in squeue or the collector
    wait_for(lambda: not pilot_slots(collector) and not slurm_jobs("scailfin-pilot"), 60, "the pilots leaving")


def test_a_pilot_with_a_wrong_token_is_refused_and_says_why(pool_without_startd, tmp_path):
    collector = pool_without_startd
    bad = tmp_path / "bad.token"
    bad.write_text("eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ.eyJzdWIiOiJ4In0.not-the-pools-signature\n")
    bad.chmod(0o600)
    array, _ = start_pilots(tmp_path, "--token", str(bad), "--idle-time", "10", "--walltime", "5")
    wait_for(lambda: not slurm_jobs("scailfin-pilot"), 90, "the refused pilot ending")
    assert pilot_slots(collector) == []  # never admitted
    [log] = (tmp_path / "pilots").glob(f"*/pilot-{array}-0.log")
    text = log.read_text()
    assert "the pool refused this pilot's updates (authentication failed: check its token)" in text, text[-3000:]
    assert "not-the-pools-signature" not in text


@pytest.mark.parametrize("ending", [
    ["scancel"],  # every process of the pilot's job TERMed at once, then KILLed (KillWait 5 s here)
    # what the pilot's own `#SBATCH --signal=B:TERM@120` sends when its allocation is about to end
    ["scancel", "--batch", "--signal=TERM"],
], ids=["scancel", "end-of-allocation-signal"])
def test_a_pilot_ended_mid_step_the_step_reruns_on_another_pilot_with_whole_outputs(pool_without_startd, tmp_path,
                                                                                    image_roots, ending):
    import htcondor2

    collector = pool_without_startd
    array, _ = start_pilots(tmp_path, "--count", "2", "--cpus", "1", "--memory", "1000", "--walltime", "10",
                            "--idle-time", "20")
    wait_for(lambda: len(pilot_slots(collector)) == 2, 60, "two pilot slots in the collector")
    home = tempfile.mkdtemp(dir=SUBMIT_ONLY, prefix="scancel-test-")
    try:
        shutil.copy(os.path.join(os.path.dirname(__file__), "data", "slow-writer.cwl"), home)
        with scailfin_cwl_running(["--image-roots", os.pathsep.join(image_roots), "--pull", "no",
                                   "--run-dir", os.path.join(home, "run"), "--outdir", os.path.join(home, "result"),
                                   os.path.join(home, "slow-writer.cwl")], home) as proc:
            # the step is running on one pilot: end that pilot's Slurm job
            busy = wait_for(lambda: collector.query(htcondor2.AdType.Startd, constraint="ScailfinPilot =?= True && "
                                                    'SlotType == "Dynamic" && State == "Claimed"',
                                                    projection=["Name", "ScailfinPilotJob"]), 60, "a claimed pilot")
            time.sleep(4)  # mid-step: writing its output
            victim = busy[0]["Name"].split("@", 1)[1]
            subprocess.run([*ending, busy[0]["ScailfinPilotJob"]], check=True)
            out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        lines = open(os.path.join(home, "result", "numbers.txt")).read().splitlines()
        assert lines == [str(i) for i in range(1, 201)]  # whole: every line, once
        [record] = result_records(err)
        assert record["exit_code"] == 0
        assert record["slot"].split("@", 1)[1] != victim  # it reran on the other pilot
        [row] = read_trace(os.path.join(home, "run", "trace.tsv"))
        assert row["restarts"] == "1" and row["state"] == "done"
    finally:
        shutil.rmtree(home, ignore_errors=True)
    # the ended pilot's slots left the collector with it (no ghost claimed slot); the other is the fixture's
    wait_for(lambda: not [s for s in pilot_slots(collector) if s["Name"].split("@", 1)[1] == victim], 30,
             "the ended pilot's slots leaving the collector")


def test_a_pilot_on_a_node_without_a_container_runtime_says_so_and_gets_no_step(pool_without_startd, tmp_path,
                                                                                image_roots):
    """The node's PATH has the shell tools a pilot needs and no container runtime (on this host
    the runtimes are in /usr/bin with everything else, so the pilot is given a PATH of its own,
    as a batch job inherits its submitter's): the pilot joins, advertises no runtime, and a step
    waiting in the pool goes to the next pilot, which has them, never to it."""
    collector = pool_without_startd
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    for tool in ("sed", "mkdir", "cp", "hostname", "grep", "tail", "rm", "cat", "sleep"):
        (bare / tool).symlink_to(shutil.which(tool))
    site_bin = os.path.dirname(shutil.which("sbatch"))  # the site's Slurm commands (dev/as-test-user)
    env = dict(os.environ, PATH=f"{bare}:{site_bin}")
    run = subprocess.run([EXE, "pilots", "--directory", str(tmp_path / "bare"), "--network-interface", "127.0.0.1",
                          "--worker-python", sys.executable, "--idle-time", "60", "--walltime", "10"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    [bare_slot] = wait_for(lambda: pilot_slots(collector), 60, "the pilot without runtimes in the collector")
    assert bare_slot["ScailfinRuntimes"] == ""  # it says so
    [log] = (tmp_path / "bare").glob("*/pilot-*.log")
    assert "runtimes ''" in log.read_text()

    home = tempfile.mkdtemp(dir=SUBMIT_ONLY, prefix="no-runtime-test-")
    try:
        shutil.copytree(os.path.join(EXAMPLES, "wordcount"), os.path.join(home, "wordcount"))
        with scailfin_cwl_running(["--image-roots", os.pathsep.join(image_roots), "--pull", "no",
                                   "--run-dir", os.path.join(home, "run"), "--outdir", os.path.join(home, "result"),
                                   os.path.join(home, "wordcount", "wordcount.cwl"),
                                   os.path.join(home, "wordcount", "wordcount-job.yml")], home) as proc:
            # the first step waits in the queue: the negotiator, with the bare pilot in the pool, finds no match
            import htcondor2

            schedd = htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, "localhost"))

            def rejected_since(t):
                return schedd.query(constraint=f"ScailfinRun =!= undefined && LastRejMatchTime > {t}",
                                    projection=["JobStatus", "LastRejMatchReason"])

            seen = int(time.time()) + 1  # the bare pilot was in the collector before this
            [rejected] = wait_for(lambda: rejected_since(seen), 60, "the step rejected in negotiation")
            assert rejected["JobStatus"] == 1, rejected  # idle: the bare pilot did not take it
            assert schedd.query(constraint="JobStatus != 1 && ScailfinRun =!= undefined",
                                projection=["ClusterId"]) == []
            start_pilots(tmp_path, "--idle-time", "20", "--walltime", "10")  # a node with runtimes
            out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        records = result_records(err)
        assert records and bare_slot["Name"].split("@", 1)[1] not in {r["slot"].split("@", 1)[1] for r in records}
        assert all(r["slot"].startswith("slot") for r in records)  # all on the other pilot
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_yadage_examples_run_on_a_pilot_through_chirp(pool_without_startd, tmp_path, image_roots):
    from ..yadage.test_backend import CHECKS, records, yadage_run

    collector = pool_without_startd
    start_pilots(tmp_path, "--count", "1", "--cpus", "2", "--memory", "2000", "--walltime", "10", "--idle-time", "20")
    [slot] = wait_for(lambda: pilot_slots(collector), 60, "a pilot slot in the collector")
    home = tempfile.mkdtemp(dir=SUBMIT_ONLY, prefix="yadage-pilot-test-")
    try:
        for example in CHECKS:
            work, run_dir = pathlib.Path(home, example), os.path.join(home, f"{example}-run")
            run = yadage_run(work, example, image_roots,
                             ["scheduler=htcondor", "transfer=chirp", "runtime=apptainer",
                              "requirements=ScailfinPilot =?= True", f"run_dir={run_dir}"])
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
            recs = records(run_dir)
            CHECKS[example](work, recs, "apptainer")
            assert {r["slot"].split("@", 1)[1] for r in recs} == {slot["Name"].split("@", 1)[1]}  # the pilot's
            assert {r["stage_in"]["method"] for r in recs} == {"chirp (parrot)"}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_pilot_from_an_htcondor_tarball_unpacks_it_in_its_scratch_and_runs_steps(pool_without_startd, slurm,
                                                                                   tmp_path, image_roots):
    """The tarball is laid out as HTCondor's releases are (condor-VERSION/{sbin,bin,lib,libexec}),
    made here from the site's own HTCondor; the pilot's master, startd and starter run from the
    copy it unpacked into its scratch, not from the node's /usr/sbin."""
    import tarfile

    collector = pool_without_startd
    usr = os.path.join(slurm, "rootfs", "usr")
    tarball = tmp_path / "condor-25-release.tar"
    with tarfile.open(tarball, "w") as tar:
        for sub in ("sbin", "bin"):
            for name in os.listdir(os.path.join(usr, sub)):
                if name.startswith("condor_"):
                    tar.add(os.path.join(usr, sub, name), f"condor-25/{sub}/{name}")
        tar.add(os.path.join(usr, "libexec", "condor"), "condor-25/libexec/condor")
        tar.add(os.path.join(usr, "lib", "condor"), "condor-25/lib/condor")
    start_pilots(tmp_path, "--condor-tarball", str(tarball), "--cpus", "2", "--memory", "1000", "--walltime", "10",
                 "--idle-time", "15")
    wait_for(lambda: pilot_slots(collector), 60, "the pilot from the tarball in the collector")
    home = tempfile.mkdtemp(dir=SUBMIT_ONLY, prefix="tarball-test-")
    try:
        shutil.copytree(os.path.join(EXAMPLES, "wordcount"), os.path.join(home, "wordcount"))
        out = pathlib.Path(home, "result")
        run = scailfin_cwl(["--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--outdir", str(out),
                            "--run-dir", os.path.join(home, "run"),
                            os.path.join(home, "wordcount", "wordcount.cwl"),
                            os.path.join(home, "wordcount", "wordcount-job.yml")], home)
        assert run.returncode == 0, run.stderr[-3000:]
        check_wordcount(out, result_records(run.stderr), "apptainer")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    subprocess.run(["scancel", "--name=scailfin-pilot"], check=True)  # its log ends with its daemons' logs
    wait_for(lambda: not pilot_slots(collector) and not slurm_jobs("scailfin-pilot"), 60, "the pilot ending")
    [log] = (tmp_path / "pilots").glob("*/pilot-*.log")
    text = log.read_text()
    unpacked = re.search(r"HTCondor unpacked from \S+ into (/\S+)/sbin/\.\.", text).group(1)
    assert unpacked.endswith("/condor/condor-25"), unpacked
    # the daemons' banners (the start of their logs, which the pilot's log keeps however long they ran)
    assert f"** {unpacked}/sbin/condor_master\n" in text  # the master from the tarball
    assert f"** {unpacked}/sbin/condor_startd\n" in text
    assert f"{unpacked}/sbin/../libexec/condor/condor_" in text  # its own libexec
