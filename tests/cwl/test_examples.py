# The CWL examples, end to end through `scailfin-cwl --scheduler local`, in real containers
# (Podman and Charliecloud, rootless), checking their outputs and which runtime ran each step.
import json
import os

import pytest

from ..conftest import REPO, result_records

EXAMPLES = os.path.join(REPO, "cwl_examples")
RUNTIMES = ["podman", "charliecloud"]


def example(name, *files):
    return [os.path.join(EXAMPLES, name, f) for f in files]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wordcount_two_steps_on_alpine(scailfin_cwl, tmp_path, runtime):
    run = scailfin_cwl("--runtime", runtime, "--outdir", tmp_path / "out",
                       *example("wordcount", "wordcount.cwl", "wordcount-job.yml"))
    assert run.returncode == 0, run.stderr
    text = open(os.path.join(EXAMPLES, "wordcount", "text.txt")).read()
    assert int((tmp_path / "out" / "count.txt").read_text()) == len(text.split()) == 18
    assert (tmp_path / "out" / "words.txt").read_text().split() == text.split()
    records = result_records(run.stderr)
    assert sorted(r["labels"]["step"] for r in records) == ["count_words", "split_words"]
    assert {r["runtime"]["name"] for r in records} == {runtime}
    assert {r["image"]["reference"] for r in records} == {"docker.io/library/alpine:latest"}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_decay_scatter_of_24_python_steps_then_gather(scailfin_cwl, tmp_path, runtime):
    run = scailfin_cwl("--runtime", runtime, "--parallel", "--outdir", tmp_path / "out",
                       *example("decay-scatter", "decay-scatter.cwl", "decay-scatter-job.json"))
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"] == 24 and summary["seeds"] == list(range(1, 25)) and summary["events"] == 24 * 20000
    assert abs(summary["tau"] - 2.197) < 5 * summary["error"]  # the fit recovers the simulated lifetime
    assert sum(summary["histogram"]) == 24 * 20000
    assert len(run.output["fits"]) == 24
    records = result_records(run.stderr)
    assert len(records) == 25 and {r["runtime"]["name"] for r in records} == {runtime}
    assert {r["image"]["reference"] for r in records} == {"docker.io/library/python:3-slim"}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inventory_directory_initialworkdir_envvar_resources_stdout_stderr(scailfin_cwl, tmp_path, runtime):
    run = scailfin_cwl("--runtime", runtime, "--outdir", tmp_path / "out",
                       *example("inventory", "inventory.cwl", "inventory-job.yml"))
    assert run.returncode == 0, run.stderr
    report = (tmp_path / "out" / "inventory.txt").read_text().splitlines()
    assert report[0] == "inventory toy-run-7 (cores: 1, ram: 128 MiB)"  # EnvVarRequirement, ResourceRequirement
    assert report[1] == "label = toy-run-7"  # the InitialWorkDir run card
    assert report[2:] == ["11 events/calibration/scale.txt", "25 events/run1.csv", "19 events/run2.csv"]
    assert (tmp_path / "out" / "inventory.log").read_text() == "checked 3 files\n"
    assert (tmp_path / "out" / "summary" / "files.txt").read_text() == "3\n"
    [record] = result_records(run.stderr)
    assert record["runtime"]["name"] == runtime
    assert record["image"]["reference"] == "docker.io/library/debian:stable-slim"
