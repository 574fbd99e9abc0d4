# A step cannot change its inputs, on any runtime: a CWL step appending to its File input and
# deleting a file in its Directory input fails at both (stock cwltool --podman is the floor), here
# and on the test site; an earlier yadage stage's files stay read-only to the next one.
import json
import os
import shutil
import tempfile

import pytest

from ..conftest import REPO

DATA = os.path.join(REPO, "tests", "adversarial", "data")


def inputs(root):
    (root / "dir").mkdir(parents=True)
    (root / "data.txt").write_text("precious\n")
    (root / "dir" / "victim.txt").write_text("still here\n")
    job = root / "job.json"
    job.write_text(json.dumps({"data": {"class": "File", "path": str(root / "data.txt")},
                               "dir": {"class": "Directory", "path": str(root / "dir")}}))
    return job


def untouched(root):
    return (root / "data.txt").read_text() == "precious\n" and (root / "dir" / "victim.txt").exists()


@pytest.mark.parametrize("runtime", ["charliecloud", "podman"])
def test_a_step_cannot_change_its_inputs_here(scailfin_cwl, tmp_path, runtime):
    job = inputs(tmp_path / "in")
    run = scailfin_cwl("--runtime", runtime, "--outdir", tmp_path / "out", os.path.join(DATA, "modify-inputs.cwl"), job)
    assert run.returncode == 0, run.stderr
    assert untouched(tmp_path / "in")
    assert (tmp_path / "out" / "report.txt").read_text() == "kept\n"


@pytest.mark.parametrize("runtime", ["apptainer", "charliecloud"])
def test_a_step_cannot_change_its_inputs_on_a_shared_file_system_of_the_pool(scailfin_cwl, pool, runtime):
    root = tempfile.mkdtemp(dir="/scratch/scailfin-shared")
    try:
        from pathlib import Path
        root = Path(root)
        job = inputs(root / "in")
        run = scailfin_cwl("--scheduler", "htcondor", "--transfer", "shared", "--runtime", runtime,
                           "--tmpdir-prefix", f"{root}/tmp/", "--tmp-outdir-prefix", f"{root}/out/",
                           "--outdir", root / "result", os.path.join(DATA, "modify-inputs.cwl"), job)
        assert run.returncode == 0, run.stderr
        assert untouched(root / "in")
        assert (root / "result" / "report.txt").read_text() == "kept\n"
    finally:
        shutil.rmtree(root, ignore_errors=True)
