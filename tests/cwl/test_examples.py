# The CWL examples, end to end through `scailfin-cwl --scheduler local`, in real containers
# (Podman and Charliecloud, rootless), checking their outputs and which runtime ran each step.
# The checks are shared with the HTCondor runs (tests/cwl/test_htcondor.py).
import json
import os

import pytest

from ..conftest import REPO, result_records

EXAMPLES = os.path.join(REPO, "cwl_examples")
RUNTIMES = ["podman", "charliecloud"]


def example(name, *files, root=EXAMPLES):
    return [os.path.join(root, name, f) for f in files]


def check_wordcount(out, records, runtime):
    text = open(os.path.join(EXAMPLES, "wordcount", "text.txt")).read()
    assert int((out / "count.txt").read_text()) == len(text.split()) == 18
    assert (out / "words.txt").read_text().split() == text.split()
    assert sorted(r["labels"]["step"] for r in records) == ["count_words", "split_words"]
    assert {r["runtime"]["name"] for r in records} == {runtime}
    assert {r["image"]["reference"] for r in records} == {"docker.io/library/alpine:latest"}


def check_decay_scatter(out, output, records, runtime):
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 24 and summary["seeds"] == list(range(1, 25)) and summary["events"] == 24 * 20000
    assert abs(summary["tau"] - 2.197) < 5 * summary["error"]  # the fit recovers the simulated lifetime
    assert sum(summary["histogram"]) == 24 * 20000
    assert len(output["fits"]) == 24
    assert len(records) == 25 and {r["runtime"]["name"] for r in records} == {runtime}
    assert {r["image"]["reference"] for r in records} == {"docker.io/library/python:3-slim"}


def check_inventory(out, records, runtime):
    report = (out / "inventory.txt").read_text().splitlines()
    assert report[0] == "inventory toy-run-7 (cores: 1, ram: 128 MiB)"  # EnvVarRequirement, ResourceRequirement
    assert report[1] == "label = toy-run-7"  # the InitialWorkDir run card
    assert report[2:] == ["11 events/calibration/scale.txt", "25 events/run1.csv", "19 events/run2.csv"]
    assert (out / "inventory.log").read_text() == "checked 3 files\n"
    assert (out / "summary" / "files.txt").read_text() == "3\n"
    [record] = records
    assert record["runtime"]["name"] == runtime
    assert record["image"]["reference"] == "docker.io/library/debian:stable-slim"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wordcount_two_steps_on_alpine(scailfin_cwl, tmp_path, runtime):
    run = scailfin_cwl("--runtime", runtime, "--outdir", tmp_path / "out",
                       *example("wordcount", "wordcount.cwl", "wordcount-job.yml"))
    assert run.returncode == 0, run.stderr
    check_wordcount(tmp_path / "out", result_records(run.stderr), runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_decay_scatter_of_24_python_steps_then_gather(scailfin_cwl, tmp_path, runtime):
    run = scailfin_cwl("--runtime", runtime, "--parallel", "--outdir", tmp_path / "out",
                       *example("decay-scatter", "decay-scatter.cwl", "decay-scatter-job.json"))
    assert run.returncode == 0, run.stderr
    check_decay_scatter(tmp_path / "out", run.output, result_records(run.stderr), runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inventory_directory_initialworkdir_envvar_resources_stdout_stderr(scailfin_cwl, tmp_path, runtime):
    run = scailfin_cwl("--runtime", runtime, "--outdir", tmp_path / "out",
                       *example("inventory", "inventory.cwl", "inventory-job.yml"))
    assert run.returncode == 0, run.stderr
    check_inventory(tmp_path / "out", result_records(run.stderr), runtime)
