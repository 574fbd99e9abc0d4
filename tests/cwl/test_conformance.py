# The CWL v1.2 conformance suite (378 tests) through scailfin-cwl with the local scheduler, every
# container step in a real container (Charliecloud, rootless; the fastest runtime here). It fails
# when any test outside conformance-known-failures.yaml fails, and when a listed test passes (so
# the list never goes stale). The suite comes from CWL_CONFORMANCE_DIR (set by dev/setup:
# ../shared/cwl-v1.2, or a clone at the same commit).
#
# The whole suite runs through cwltest's pytest plugin, two workers, each test handed to
# scailfin-cwl's main() in the worker's process (conformance_hook.py): cwltool then parses its
# schemas once per worker, not once per test, which cuts the suite from about 6 to about 2
# minutes here. The HTCondor subset (test_htcondor.py) and dev/cwl-conformance-compare run the
# `scailfin-cwl` command itself, a process per test, through cwltest's own runner.
import json
import os
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

from ruamel.yaml import YAML

HERE = os.path.dirname(os.path.abspath(__file__))
KNOWN = os.path.join(HERE, "conformance-known-failures.yaml")


def known_failures(runtime):
    listed = YAML(typ="safe").load(open(KNOWN))
    return {test: reason for test, reason in listed["all"].items()} | \
        {test: reason for test, reason in (listed.get(runtime) or {}).items()}


def copy_suite(tmp_path):
    suite = tmp_path / "cwl-v1.2"
    shutil.copytree(os.environ["CWL_CONFORMANCE_DIR"], suite)
    subprocess.run(["chmod", "-R", "u+w", str(suite)], check=True)  # outputs copied from inputs stay writable
    return suite


def outcomes(junit):
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = any(case.find(kind) is not None for kind in ("failure", "error", "skipped"))
        results[case.get("file") or case.get("name")] = "failed" if failed else "passed"
    return results


def run_suite(tmp_path, image_roots, runtime, extra=(), scailfin_options=()):
    """The suite through cwltest's own runner and the scailfin-cwl command, a process per test."""
    suite = copy_suite(tmp_path)
    junit = tmp_path / "results.xml"
    exe = os.path.join(os.path.dirname(sys.executable), "scailfin-cwl")
    argv = [os.path.join(os.path.dirname(sys.executable), "cwltest"), "--test", str(suite / "conformance_tests.yaml"),
            "--tool", exe, "-j", "2", "--timeout", "300", "--junit-xml", str(junit), *extra, "--",
            "--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--runtime", runtime, *scailfin_options]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    return proc, outcomes(junit)


def run_suite_in_process(tmp_path, image_roots, runtime, timeout=1800, scailfin_options=(), workers=2):
    """The suite through cwltest's pytest plugin, each test given to scailfin-cwl's main() in a
    pytest-xdist worker (two of them, unless told)."""
    suite = copy_suite(tmp_path)
    shutil.copy(suite / "conformance_tests.yaml", suite / "scailfin.cwltest.yaml")  # the plugin's file name
    shutil.copy(os.path.join(HERE, "conformance_hook.py"), suite / "conftest.py")
    (tmp_path / "out").mkdir()
    junit = tmp_path / "results.xml"
    env = dict(os.environ, SCAILFIN_CWL_OUTDIRS=str(tmp_path / "out"), SCAILFIN_CWL_ARGS=json.dumps(
        ["--image-roots", os.pathsep.join(image_roots), "--pull", "no", "--runtime", runtime, *scailfin_options]))
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", str(workers), "--rootdir", str(suite),
            "--junit-xml", str(junit), "scailfin.cwltest.yaml"]
    proc = subprocess.Popen(argv, cwd=suite, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # timed out or interrupted: end pytest and its workers
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return out, outcomes(junit)


def check_whole_suite(out, results, sections, where):
    """Every one of the 378 tests ran; those that failed are the documented ones, and no more."""
    assert len(results) == 378, out[-4000:]
    known = {}
    for section in sections:
        known.update(known_failures(section))
    failed = {test for test, outcome in results.items() if outcome == "failed"}
    unexpected = sorted(failed - set(known))
    fixed = sorted(set(known) - failed)
    print(f"CWL v1.2 conformance through scailfin-cwl ({where}): {378 - len(failed)} passed, "
          f"{len(failed)} failed, all documented" if not unexpected else "")
    assert not unexpected, f"failed and not documented: {unexpected}\n{out[-4000:]}"
    assert not fixed, f"documented as failing but passed: update {KNOWN}: {fixed}"


def test_cwl_v12_conformance_suite_through_the_local_scheduler(tmp_path, image_roots):
    out, results = run_suite_in_process(tmp_path, image_roots, "charliecloud")
    check_whole_suite(out, results, ["charliecloud"], "local, charliecloud")
