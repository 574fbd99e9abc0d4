# The job description: it round-trips through JSON and refuses bad input with messages that
# name the field and say why.
import json

import pytest

from scailfin_exec.job import Bind, FORMAT_VERSION, Job, JobError, Resources, dumps, job_from_dict, job_to_dict, load_job

pytestmark = pytest.mark.fast


def base(**over):
    data = {"version": FORMAT_VERSION, "id": "step1", "image": "alpine", "argv": ["echo", "hi"], "workspace": "/data/ws"}
    data.update(over)
    return data


def error_of(data):
    with pytest.raises(JobError) as info:
        job_from_dict(data)
    return str(info.value)


def test_job_round_trips_through_json_with_binds_as_data_even_with_colons_in_paths():
    job = Job(id="s", image="docker.io/library/alpine:3.20", argv=["sh", "-c", "ls"], workspace="/w/run:1",
              binds=[Bind("/in/a:b", "/in/a:b", False)], env={"A": "x=y"}, resources=Resources(cores=2, gpus=1),
              outputs=["/w/run:1/out"], labels={"workflow": "wf", "step": "count"})
    again = job_from_dict(json.loads(dumps(job)))
    assert again == job
    assert job_to_dict(job)["binds"] == [{"source": "/in/a:b", "target": "/in/a:b", "writable": False,
                                            "on_worker": False}]
    assert job_to_dict(job)["version"] == FORMAT_VERSION


def test_defaults_fill_in_optional_fields():
    job = job_from_dict(base())
    assert job.transfer == "shared" and job.runtime == [] and job.cwd == "/data/ws"
    assert job.all_binds() == [Bind("/data/ws", "/data/ws", True)]
    assert job.resources == Resources()


def test_relative_workspace_is_refused():
    assert error_of(base(workspace="ws")) == "job.workspace: must be an absolute path, got 'ws'"


def test_unknown_transfer_mode_names_the_known_ones():
    assert error_of(base(transfer="ftp")) == "job.transfer: unknown transfer mode 'ftp' (known: shared, htcondor, chirp)"


def test_unknown_runtime_is_refused():
    assert "job.runtime: unknown runtime 'dockerr'" in error_of(base(runtime=["podman", "dockerr"]))


def test_missing_fields_are_listed():
    data = base()
    del data["image"], data["argv"]
    assert error_of(data) == "job: missing field(s) image, argv"


def test_newer_format_version_than_the_shim_understands():
    message = error_of(base(version=FORMAT_VERSION + 1))
    assert f"format {FORMAT_VERSION + 1} is newer than this shim understands ({FORMAT_VERSION})" in message


def test_unknown_field_is_refused_rather_than_ignored():
    assert error_of(base(imgae="x")) == "job: unknown field(s) imgae"


def test_output_outside_the_workspace_is_refused():
    assert "is outside the workspace /data/ws" in error_of(base(outputs=["../escape.txt"]))
    assert "is outside the workspace" in error_of(base(outputs=["/etc/passwd"]))
    assert job_from_dict(base(outputs=["sub/out.txt", "/data/ws/b"])).outputs == ["/data/ws/sub/out.txt", "/data/ws/b"]


def test_script_and_stdin_together_are_refused():
    assert "'script' is fed on stdin" in error_of(base(script="echo", stdin="/data/in"))


def test_bind_without_target_is_refused():
    assert error_of(base(binds=[{"source": "/a"}])) == "job.binds[0]: missing field(s) target"


def test_environment_names_must_be_names():
    assert "job.env: invalid variable name 'A=B'" in error_of(base(env={"A=B": "x"}))
    assert "job.env['A']: must be a string" in error_of(base(env={"A": 1}))


def test_booleans_are_not_numbers():
    assert "job.resources.cores: must be a number" in error_of(base(resources={"cores": True}))
    assert "job.resources.memory_mb: must be positive" in error_of(base(resources={"memory_mb": -1}))


def test_load_job_names_the_file_for_bad_json(tmp_path):
    path = tmp_path / "job.json"
    path.write_text("{not json")
    with pytest.raises(JobError) as info:
        load_job(str(path))
    assert str(info.value).startswith(f"{path}: not valid JSON")


def test_a_job_description_is_read_back_from_the_job_ad_the_starter_writes(tmp_path):
    """The htcondor scheduler's ad carries the batch's shared fields and the job's own, each JSON in
    base64; the starter writes the ad as `Name = value` lines (.job.ad)."""
    import base64

    from scailfin_exec.worker.jobad import encoded, load_job_ad

    full = job_to_dict(job_from_dict(base(env={"Q": 'say "hi" \\ $HOME'})))
    own = {"id": full["id"], "env": full["env"]}
    shared = {k: v for k, v in full.items() if k not in own}
    ad = tmp_path / ".job.ad"
    ad.write_text(f'ClusterId = 7\nScailfinJobBase = {encoded(shared)}\nScailfinJob = {encoded(own)}\nOwner = "u"\n')
    assert job_to_dict(load_job_ad(str(ad))) == full
    ad.write_text(f"ScailfinJobBase = {encoded(shared)}\n")
    with pytest.raises(JobError, match="the job ad has no job description"):
        load_job_ad(str(ad))
    broken = base64.b64encode(b'{"id": ').decode()
    ad.write_text(f'ScailfinJobBase = {encoded(shared)}\nScailfinJob = "{broken}"\n')
    with pytest.raises(JobError, match="ScailfinJob is not a job description"):
        load_job_ad(str(ad))
    ad.write_text(f'ScailfinJobBase = {encoded(shared)}\nScailfinJob = {encoded({"id": "../x"})}\n')
    with pytest.raises(JobError, match="job.id"):
        load_job_ad(str(ad))
