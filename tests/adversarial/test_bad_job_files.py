# A bad job file is one line saying what is wrong and exit code 250, never a traceback: the
# malformed files seen so far, and job files fuzzed from the job schema (hypothesis). A workspace
# spelled '//' is '/', and refused.
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scailfin_exec.job import FORMAT_VERSION, JobError, job_from_dict
from scailfin_exec.worker import jobspec

from ..conftest import run_shim

pytestmark = pytest.mark.fast


def valid(**over):
    data = {"version": FORMAT_VERSION, "id": "step", "image": "docker.io/library/alpine", "argv": ["true"],
            "workspace": "/nonexistent/ws", "runtime": ["charliecloud"]}
    data.update(over)
    return data


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.startswith("scailfin-shim:")]
    return len(lines) == 1 and lines[0].startswith("scailfin-shim: error: bad job file: ") and "Traceback" not in err


CASES = {
    "nested 100,000 deep": '{"version": 2, "id": ' + "[" * 100000 + "]" * 100000 + "}",
    "a NUL byte in the id": json.dumps(valid(id="a\0b")),
    "a 300-character id": json.dumps(valid(id="x" * 300)),
    "a newline in the id": json.dumps(valid(id="a\nb")),
    "NaN cores": json.dumps(valid(resources={"cores": math.nan})),
    "infinite cores": json.dumps(valid(resources={"cores": math.inf})),
    "cores beyond any machine": json.dumps(valid(resources={"cores": 1e300})),
    "'=' in a variable name": json.dumps(valid(env={"A=B": "x"})),
    "a space in a variable name": json.dumps(valid(env={"A B": "x"})),
    "a newline in a variable name": json.dumps(valid(env={"A\nB": "x"})),
    "a NUL byte in a variable's value": json.dumps(valid(env={"A": "x\0y"})),
    "a NUL byte in an argument": json.dumps(valid(argv=["echo", "a\0b"])),
    "workspace //": json.dumps(valid(workspace="//")),
    "workspace ///": json.dumps(valid(workspace="///")),
    "a bind of //": json.dumps(valid(binds=[{"source": "//", "target": "/host"}])),
    "not UTF-8": b'{"version": 2, "id": "\xff"}',
    "a list, not an object": "[1, 2]",
}


@pytest.mark.parametrize("name", CASES)
def test_a_bad_job_file_is_one_line_and_exit_250(shim, tmp_path, name):
    path = tmp_path / "job.json"
    content = CASES[name]
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, err, record = run_shim(shim, path)
    assert code == 250, (name, err)
    assert one_error_line(err), err
    assert record["shim_error"]["kind"] == "bad-job"


def test_workspace_slash_slash_is_the_root_and_refused():
    with pytest.raises(JobError, match="job.workspace: must not be '/'"):
        job_from_dict(valid(workspace="//"))
    assert jobspec.normalise("//etc/../etc//passwd") == "/etc/passwd"
    assert not jobspec.inside("/etc/passwd", jobspec.normalise("//data"))


# -- fuzzing from the job schema -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70) |
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
FIELDS = list(jobspec.Job._fields) + ["version", "resources.cores", "resources.walltime_s", "images.roots",
                                      "images.pull", "binds.0.source", "binds.0.writable", "unknown"]


@st.composite
def mutated_jobs(draw):
    """A valid job with some fields (nested ones too) replaced by arbitrary JSON values."""
    data = valid(binds=[{"source": "/a", "target": "/b"}], resources={"cores": 1}, images={"roots": ["/r"]})
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4)):
        value, parts, target = draw(json_values), field.split("."), data
        for part in parts[:-1]:  # where an earlier change left no such place, this one is skipped
            if isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            elif isinstance(target, dict) and not part.isdigit():
                target = target.setdefault(part, {})
            else:
                break
        else:
            if isinstance(target, list) and parts[-1].isdigit() and int(parts[-1]) < len(target):
                target[int(parts[-1])] = value
            elif isinstance(target, dict):
                target[parts[-1]] = value
    return data


@settings(max_examples=400, deadline=None)
@given(mutated_jobs())
def test_a_fuzzed_job_description_is_accepted_or_refused_with_a_job_error(data):
    try:
        job = job_from_dict(data)
    except JobError as e:
        assert "\n" not in str(e).strip() or "\n" in json.dumps(data)  # one line, unless it quotes one
        return
    again = job_from_dict(json.loads(jobspec.dumps(job)))  # what is accepted round-trips
    assert again == job


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated_jobs())
def test_a_fuzzed_job_file_the_shim_refuses_is_one_line_and_exit_250(shim, tmp_path, data):
    try:
        job_from_dict(data)
        return  # a valid job: not this test's business (it would run)
    except JobError:
        pass
    path = tmp_path / "fuzzed.json"
    path.write_text(json.dumps(data))
    code, err, record = run_shim(shim, path)
    assert code == 250 and one_error_line(err), err


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_as_a_job_file_are_refused_with_a_job_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("bytes") / "job.json"
    path.write_bytes(content)
    with pytest.raises(JobError):
        jobspec.load_job(str(path))
