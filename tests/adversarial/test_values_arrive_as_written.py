# What a step is given arrives byte for byte and goes nowhere else: environment values full of
# shell syntax on every runtime (Apptainer evaluated them), cwltool:Secrets (the step saw the
# placeholder), and HTCondor's submit language, which expands $ENV(...) and every other macro in
# what it is given: a secret in the submitter's environment must never reach the queue.
import hashlib
import json
import os
import shutil
import uuid

import pytest

from scailfin_exec.config import Settings
from scailfin_exec.job import ImageSources, Job
from scailfin_exec.schedulers.htcondor import HTCondorScheduler
from scailfin_exec.schedulers.local import LocalScheduler

from ..conftest import REPO, jobs_in_queue

DATA = os.path.join(REPO, "tests", "adversarial", "data")
VALUES = {"HOME_REF": "$HOME", "SUBSHELL": "$(echo INJECTED)", "BACKQUOTES": "`echo INJECTED`",
          "QUOTES": "it's \"quoted\"", "BACKSLASH": "a\\nb\\\\c", "NEWLINE": "line 1\nline 2", "BRACES": "${PATH:-x}",
          "UNICODE": "ünïcödé Ωμέγα", "COMMA_COLON": "a,b:c;d", "SPACES": "  two  spaces  "}
PRINT = "; ".join(f'printf %s "${name}" > {name}.txt' for name in VALUES)


def arrived(workspace):
    return {name: (workspace / f"{name}.txt").read_text() for name in VALUES}


@pytest.mark.parametrize("runtime", ["charliecloud", "podman"])
def test_environment_values_arrive_byte_for_byte_here(tmp_path, workspace, image_roots, runtime):
    job = Job(id="env", image="docker.io/library/alpine", argv=["sh", "-c", PRINT], workspace=str(workspace),
              env=VALUES, runtime=[runtime], images=ImageSources(image_roots, str(tmp_path / "cache"), False))
    with LocalScheduler(str(tmp_path / "run")) as scheduler:
        result = scheduler.run(job)
    assert result.ok, result.describe() + result.stderr_tail()
    assert arrived(workspace) == VALUES


def test_environment_values_arrive_byte_for_byte_with_apptainer_on_the_pool(pool, tmp_path, workspace, image_roots):
    job = Job(id="env", image="docker.io/library/alpine", argv=["sh", "-c", PRINT], workspace=str(workspace),
              env=VALUES, transfer="htcondor", runtime=["apptainer"], images=ImageSources(image_roots, None, False))
    with HTCondorScheduler(str(tmp_path / "run"), Settings(), batch_name="env-values") as scheduler:
        result = scheduler.run(job)
    assert result.ok, result.describe() + result.stderr_tail()
    assert "--no-eval" in result.record.command
    assert arrived(workspace) == VALUES


def everything_written(directory):
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    found[path] = f.read()
    return found


@pytest.mark.parametrize("runtime", ["charliecloud", "podman"])
def test_a_cwl_secret_reaches_the_step_and_nothing_else(scailfin_cwl, tmp_path, runtime):
    secret = "pw-" + uuid.uuid4().hex
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"pw": secret}))
    run = scailfin_cwl("--enable-ext", "--runtime", runtime, "--outdir", tmp_path / "out", "--run-dir",
                       tmp_path / "run", os.path.join(DATA, "secret.cwl"), job)
    assert run.returncode == 0, run.stderr
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert (tmp_path / "out" / "seen.txt").read_text() == f"{digest}\n{digest}\n"  # argument and environment
    assert secret not in run.stdout + run.stderr
    kept = {path: data for path, data in everything_written(tmp_path / "run").items() if secret.encode() in data}
    assert list(kept) == [str(next((tmp_path / "run").glob("*/job.json")))]  # only the job file, for the shim
    assert oct(os.stat(next(iter(kept))).st_mode & 0o777) == "0o600"
    record = json.load(open(next((tmp_path / "run").glob("*/job.result.json"))))
    assert any("(secret)" in arg for arg in record["command"])


def all_ad_text(schedd, constraint):
    ads = list(schedd.query(constraint=constraint)) + list(schedd.history(constraint, [], match=100))
    return json.dumps([{k: str(v) for k, v in ad.items()} for ad in ads])


def test_a_macro_in_an_image_never_expands_a_secret_into_the_queue(scailfin_cwl, pool, tmp_path):
    secret = "key-" + uuid.uuid4().hex
    shutil.copy(os.path.join(DATA, "macro-image.cwl"), tmp_path / "macro-image.cwl")
    run = scailfin_cwl("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer",
                       tmp_path / "macro-image.cwl", env=dict(os.environ, AWS_SECRET_ACCESS_KEY=secret))
    assert run.returncode == 1
    assert "contains '$', which HTCondor's submit language would expand or cut: refused" in run.stderr
    assert secret not in run.stderr + run.stdout
    assert secret not in all_ad_text(pool, 'JobBatchName == "macro-image"')
    assert jobs_in_queue(pool, 'JobBatchName == "macro-image"') == []


def test_a_macro_in_a_workflow_name_never_expands_a_token_into_the_batch_name(scailfin_cwl, pool, tmp_path):
    token = "token-" + uuid.uuid4().hex
    workflow = tmp_path / "wf$ENV(REANA_ACCESS_TOKEN).cwl"
    shutil.copy(os.path.join(DATA, "hello.cwl"), workflow)
    run = scailfin_cwl("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer",
                       "--outdir", tmp_path / "out", workflow, env=dict(os.environ, REANA_ACCESS_TOKEN=token))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "hello.txt").read_text() == "hello\n"
    history = all_ad_text(pool, 'JobBatchName == "wf_ENV(REANA_ACCESS_TOKEN)"')
    assert "wf_ENV(REANA_ACCESS_TOKEN)" in history and token not in history
    assert token not in run.stderr
