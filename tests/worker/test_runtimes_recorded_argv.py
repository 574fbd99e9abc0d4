# Runtimes that cannot be installed on this machine (Apptainer on the host, Singularity, Shifter,
# Sarus; Docker runs against the site's real engine: test_runtimes_docker.py): the real shim runs against stand-in executables that record
# the command line they were given. Every test here is a recorded-argv test, by name.
import base64
import json
import os
import re

import pytest

from scailfin_exec.job import Bind, ImageSources

from ..conftest import run_shim, snapshot

ARGV = ["sh", "-c", "echo hi > out.txt"]


def _run(stand_ins, shim, make_job, runtime, behaviour=None, **fields):
    stand_ins.install(runtime, *(["shifterimg"] if runtime == "shifter" else []), behaviour=behaviour)
    job = make_job(runtime=[runtime], argv=ARGV, env={"GREETING": "a,b c"}, **fields)
    code, err, record = run_shim(shim, job, env=stand_ins.env())
    runs = [c for c in stand_ins.calls(runtime) if c["argv"][1:2] not in (["--version"], ["version"], ["images"])]
    for run in runs:  # the step's private copy of its workspace (shared mode), and its container's name
        run["argv"] = [re.sub(r"/\.scailfin-work-[^:,]*", "/WORK", re.sub(r"^scailfin-job\d+-[0-9a-f]{8}$", "NAME", a))
                       for a in run["argv"]]
    return code, err, record, runs


@pytest.fixture
def sif_root(tmp_path):
    lib = tmp_path / "sifs" / "registry.hub.docker.com" / "library"
    lib.mkdir(parents=True)
    (lib / "alpine:latest.sif").write_text("sif")
    return str(tmp_path / "sifs")


def test_apptainer_recorded_argv(stand_ins, shim, make_job, workspace, sif_root, tmp_path):
    odd = tmp_path / "in:put,s"
    odd.mkdir()
    code, err, record, runs = _run(stand_ins, shim, make_job, "apptainer", images=ImageSources([sif_root], None, False),
                                   binds=[Bind(str(odd), "/data/inputs", False)])
    assert code == 0, err
    exe = str(stand_ins.path / "apptainer")
    sif = f"{sif_root}/registry.hub.docker.com/library/alpine:latest.sif"
    assert runs[-1]["argv"] == [exe, "exec", "--no-eval", "--pid", "--contain", "--cleanenv", "--pwd", str(workspace),
                                "--bind", f"{workspace}/WORK:{workspace}:rw",
                                "--mount", f'type=bind,"source={odd}",destination=/data/inputs,ro',
                                sif] + ARGV
    assert runs[-1]["env"]["APPTAINERENV_GREETING"] == "a,b c"
    assert record["runtime"] == {"name": "apptainer", "version": "1.2.3", "path": exe}


def test_singularity_recorded_argv_passes_the_environment_with_its_own_prefix(stand_ins, shim, make_job, sif_root):
    code, err, record, runs = _run(stand_ins, shim, make_job, "singularity", images=ImageSources([sif_root], None, False),
                                   behaviour={"singularity": {"version": "apptainer version 1.4.5"}}, resources={"gpus": 1})
    assert code == 0, err
    assert runs[-1]["env"]["SINGULARITYENV_GREETING"] == "a,b c"
    assert "--nv" in runs[-1]["argv"]
    assert "this singularity is Apptainer's compatibility link" in " ".join(record["detection"])


def test_apptainer_pull_into_the_cache_recorded_argv(stand_ins, shim, make_job, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()  # (as the submit side makes it)
    code, err, record, runs = _run(stand_ins, shim, make_job, "apptainer", images=ImageSources([], str(cache), True))
    assert code == 0, err
    pull, run = runs
    final = f"{cache}/sif/docker.io_s_library_s_alpine:latest.sif"
    assert pull["argv"][1] == "pull" and pull["argv"][2].startswith(final + ".tmp-")
    assert pull["argv"][3] == "docker://docker.io/library/alpine:latest"
    assert run["argv"][-len(ARGV) - 1] == final
    assert sorted(os.listdir(cache / "sif")) == ["docker.io_s_library_s_alpine:latest.sif",
                                                 "docker.io_s_library_s_alpine:latest.sif.lock"]
    assert record["image"]["how"] == f"pulled docker://docker.io/library/alpine:latest into {final}"


def test_shifter_recorded_argv_hands_only_the_jobs_environment(stand_ins, shim, make_job, workspace):
    code, err, record, runs = _run(stand_ins, shim, make_job, "shifter")
    assert code == 0, err
    exe = str(stand_ins.path / "shifter")
    assert runs[-1]["argv"] == [exe, "--image=docker:alpine:latest", f"--workdir={workspace}",
                                f"--volume={workspace}/WORK:{workspace}", "--"] + ARGV
    assert runs[-1]["env"]["GREETING"] == "a,b c" and "PATH" not in runs[-1]["env"]
    lookups = [c["argv"][1:] for c in stand_ins.calls("shifterimg")]
    assert lookups == [["lookup", "docker:alpine:latest"]]


@pytest.mark.parametrize("target, allowed", [("/etc/site.conf", False), ("/var/lib/condor/execute/dir_1", False),
                                             ("/opt", False), ("/opt/udiImage/x", False), ("/var/tmp/ws", True),
                                             ("/opt/data", True)])
def test_shifter_forbidden_bind_targets_recorded_argv(stand_ins, shim, make_job, workspace, target, allowed):
    (workspace / "keep.txt").write_text("precious")
    before = snapshot(workspace)
    code, err, record, runs = _run(stand_ins, shim, make_job, "shifter", binds=[Bind("/usr/share", target, False)])
    if allowed:
        assert code == 0, err
        assert f"--volume=/usr/share:{target}:ro" in runs[-1]["argv"]
        return
    assert code == 253
    lines = [line for line in err.splitlines() if line.startswith("scailfin-shim: error:")]
    assert len(lines) == 1 and f"shifter cannot bind /usr/share at {target}" in lines[0]
    assert record["shim_error"]["kind"] == "bind"
    assert runs == [] and stand_ins.calls("shifterimg") == []  # refused before anything ran
    assert snapshot(workspace) == before


def test_sarus_recorded_argv(stand_ins, shim, make_job, workspace):
    behaviour = {"sarus": {"images": {"out": "REPOSITORY TAG\ndocker.io/library/alpine latest\n"}}}
    code, err, record, runs = _run(stand_ins, shim, make_job, "sarus", behaviour=behaviour)
    assert code == 0, err
    exe = str(stand_ins.path / "sarus")
    assert runs[-1]["argv"] == [exe, "run", f"--workdir={workspace}",
                                f"--mount=type=bind,source={workspace}/WORK,destination={workspace}",
                                "--entrypoint", "", "docker.io/library/alpine:latest"] + ARGV
    assert record["image"]["how"] == "Sarus local images"


def test_sarus_pulls_a_private_image_with_the_login_on_its_standard_input_never_its_command_line_recorded_argv(
        stand_ins, shim, make_job, tmp_path):
    credentials = tmp_path / "run" / ".credentials" / "0" / "registry-auth"
    credentials.mkdir(parents=True)
    (credentials / "config.json").write_text(json.dumps(
        {"auths": {"registry.example.org": {"auth": base64.b64encode(b"physicist:s3cret-pw").decode()}}}))
    images = ImageSources([], str(tmp_path / "cache"), True, str(credentials))
    code, err, record, runs = _run(stand_ins, shim, make_job, "sarus", images=images,
                                   image="registry.example.org/lab/analysis:v1")
    assert code == 0, err
    [pull] = [c for c in stand_ins.calls("sarus") if c["argv"][1:2] == ["pull"]]
    assert pull["argv"][1:] == ["pull", "--login", "registry.example.org/lab/analysis:v1"]
    assert pull["stdin"] == "physicist\ns3cret-pw\n"
    assert all("s3cret-pw" not in json.dumps([c["argv"], c["env"]]) for c in stand_ins.calls())
    assert "s3cret-pw" not in json.dumps(record) and "s3cret-pw" not in err


def test_sarus_refuses_opt_sarus_recorded_argv(stand_ins, shim, make_job):
    code, err, record, runs = _run(stand_ins, shim, make_job, "sarus", binds=[Bind("/usr/share", "/opt/sarus/x", False)])
    assert code == 253 and "sarus cannot bind /usr/share at /opt/sarus/x" in err


def test_version_probe_is_remembered_until_the_executable_changes_recorded_argv(stand_ins, shim, make_job, sif_root, tmp_path):
    env = dict(stand_ins.env(), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"))
    stand_ins.install("apptainer")
    for _ in range(2):
        code, err, record = run_shim(shim, make_job(runtime=["apptainer"], images=ImageSources([sif_root], None, False)), env=env)
        assert code == 0, err
    assert len([c for c in stand_ins.calls("apptainer") if c["argv"][1:] == ["--version"]]) == 1
    stand_ins.install("apptainer", behaviour={"apptainer": {"version": "apptainer version 1.4.5-upgraded"}})
    code, err, record = run_shim(shim, make_job(runtime=["apptainer"], images=ImageSources([sif_root], None, False)), env=env)
    assert record["runtime"]["version"] == "1.4.5"
    assert len([c for c in stand_ins.calls("apptainer") if c["argv"][1:] == ["--version"]]) == 2
