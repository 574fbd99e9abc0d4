# Hostile names (spaces, newlines, $(...), backquotes, quotes, colons, commas, non-ASCII) in paths
# and values, through every front end (run-job, scailfin-cwl, the yadage backend) and every
# transfer mode (shared here; htcondor and chirp on the test site). Each either works, with every
# byte where it belongs and nothing executed, or is refused before anything runs, with one line
# that says why; never a traceback, never a command run from a name.
import json
import os
import subprocess
import sys
import textwrap

import pytest

from scailfin_exec.job import ImageSources, Job, write_job


NAMES = {
    "space": "with space",
    "newline": "new\nline",
    "subshell": "$(touch INJECTED)",
    "backquotes": "`touch INJECTED`",
    "quotes": "it's \"quoted\"",
    "colon": "co:lon",
    "comma": "com,ma",
    "unicode": "ünï-Ωμέγα",
}
BIN = os.path.dirname(sys.executable)
# Where a name cannot be carried, it is refused before anything runs, saying why:
REFUSED = {
    # ch-run -b SRC:DST splits at ':', and the workspace and inputs are bound at their own paths
    ("run-job", "charliecloud", "colon"): "cannot express a target path containing ':'",
    ("cwl", "charliecloud", "colon"): "cannot express a target path containing ':'",
    # cwltool cannot take a file path with a newline in it (stock cwltool alike)
    ("cwl", "charliecloud", "newline"): "Input object failed validation",
    ("cwl", "podman", "newline"): "Input object failed validation",
    ("cwl", "htcondor", "newline"): "Input object failed validation",
    ("cwl", "chirp", "newline"): "Input object failed validation",
}


def nothing_ran_from_a_name(root):
    assert not [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n == "INJECTED"]


def outcome(front, where, key, code, text):
    expected = REFUSED.get((front, where, key))
    if expected is None:
        assert code == 0, text[-3000:]
        return True
    assert code != 0 and expected in text, text[-3000:]
    assert "Traceback" not in text
    return False


@pytest.mark.parametrize("key", NAMES)
@pytest.mark.parametrize("runtime", ["charliecloud", "podman"])
def test_hostile_names_through_run_job(tmp_path, image_roots, runtime, key):
    name = NAMES[key]
    area = tmp_path / name
    (area / "ws").mkdir(parents=True)
    (area / "in").mkdir()
    source = area / "in" / f"{name}.txt"
    source.write_text(f"content of {name}\n")
    job = Job(id="hostile", image="docker.io/library/alpine", argv=["sh", "-c", 'cp "$IN" "$OUT"; printf %s "$V" > value'],
              workspace=str(area / "ws"), inputs=[str(source)], env={"IN": str(source), "OUT": f"{name}.out", "V": name},
              runtime=[runtime], images=ImageSources(image_roots, str(tmp_path / "cache"), False))
    write_job(job, str(tmp_path / "job.json"))
    run = subprocess.run([os.path.join(BIN, "scailfin-exec"), "run-job", str(tmp_path / "job.json"), "--run-dir",
                          str(tmp_path / "run")], capture_output=True, text=True)
    if outcome("run-job", runtime, key, run.returncode, run.stderr):
        assert (area / "ws" / f"{name}.out").read_text() == f"content of {name}\n"
        assert (area / "ws" / "value").read_text() == name
    nothing_ran_from_a_name(tmp_path)


TOOL = textwrap.dedent("""\
    cwlVersion: v1.2
    class: CommandLineTool
    requirements:
      DockerRequirement: {dockerPull: docker.io/library/alpine}
      InlineJavascriptRequirement: {}
    inputs:
      data: File
    baseCommand: [cp]
    arguments: [$(inputs.data.path), $("copy-" + inputs.data.basename)]
    outputs:
      copy:
        type: File
        outputBinding: {glob: $("copy-" + inputs.data.basename)}
    """)


def cwl_case(tmp_path, name):
    """The tool and its job order where cwltool takes them; the input file and the output
    directory under the hostile name."""
    area = tmp_path / name
    area.mkdir()
    (tmp_path / "tool.cwl").write_text(TOOL)
    (area / f"{name}.txt").write_text(f"content of {name}\n")
    (tmp_path / "job.json").write_text(json.dumps({"data": {"class": "File", "path": str(area / f"{name}.txt")}}))
    return area


@pytest.mark.parametrize("key", NAMES)
@pytest.mark.parametrize("runtime", ["charliecloud", "podman"])
def test_hostile_names_through_scailfin_cwl_here(scailfin_cwl, tmp_path, runtime, key):
    name = NAMES[key]
    area = cwl_case(tmp_path, name)
    run = scailfin_cwl("--relax-path-checks", "--runtime", runtime, "--outdir", area / "out", tmp_path / "tool.cwl",
                       tmp_path / "job.json")
    if outcome("cwl", runtime, key, run.returncode, run.stderr):
        assert (area / "out" / f"copy-{name}.txt").read_text() == f"content of {name}\n"
    nothing_ran_from_a_name(tmp_path)


@pytest.mark.parametrize("key", NAMES)
@pytest.mark.parametrize("transfer", ["htcondor", "chirp"])
def test_hostile_names_through_scailfin_cwl_on_the_pool(scailfin_cwl, pool, tmp_path, transfer, key):
    name = NAMES[key]
    area = cwl_case(tmp_path, name)
    run = scailfin_cwl("--relax-path-checks", "--scheduler", "htcondor", "--transfer", transfer, "--runtime",
                       "apptainer", "--outdir", area / "out", tmp_path / "tool.cwl", tmp_path / "job.json")
    if outcome("cwl", transfer, key, run.returncode, run.stderr):
        assert (area / "out" / f"copy-{name}.txt").read_text() == f"content of {name}\n"
    nothing_ran_from_a_name(tmp_path)


WORKFLOW = textwrap.dedent("""\
    stages:
      - name: copy
        dependencies: [init]
        scheduler:
          scheduler_type: singlestep-stage
          parameters:
            copy: '{workdir}/copy.txt'
            source: {step: init, output: source}  # makes the init stage's state visible, read-only
          step:
            process:
              process_type: interpolated-script-cmd
              interpreter: sh
              script: |
                cat "$(dirname "$PWD")"/init/*.txt > copy.txt
                printf %s "$VALUE" > value
            environment:
              environment_type: docker-encapsulated
              image: docker.io/library/alpine
              env: {VALUE: VALUE_HERE}
            publisher:
              publisher_type: frompar-pub
              outputmap: {copy: copy}
    """)


@pytest.mark.parametrize("key", NAMES)
def test_hostile_names_through_the_yadage_backend(tmp_path, image_roots, key):
    name = NAMES[key]
    area = tmp_path / (name if ":" not in name else key)  # yadage takes a workdir with ':' for a URL
    (area / "work" / "init").mkdir(parents=True)  # the init stage's state: read-only to the others
    (area / "workflow.yml").write_text(WORKFLOW.replace("VALUE_HERE", json.dumps(name)))  # JSON is YAML
    source = area / "work" / "init" / f"{name}.txt"
    source.write_text(f"content of {name}\n")
    code = textwrap.dedent(f"""
        from yadage.steering_api import run_workflow
        from yadage.utils import setupbackend_fromstring
        backend = setupbackend_fromstring("py:scailfin_exec.yadage:Backend", {{"runtime": ["podman"],
            "image_roots": {image_roots!r}, "pull": False, "run_dir": {str(tmp_path / "run")!r}}})
        run_workflow({str(area / "work")!r}, "workflow.yml", toplevel={str(area)!r}, backend=backend,
                     initdata={{"source": {str(source)!r}}},
                     visualize=False)
        """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    if outcome("yadage", "podman", key, run.returncode, run.stdout + run.stderr):
        assert (area / "work" / "copy" / "copy.txt").read_text() == f"content of {name}\n"
        assert (area / "work" / "copy" / "value").read_text() == name
    nothing_ran_from_a_name(tmp_path)
