# The runtime registry and each runtime's command line, as pure functions (no container runs):
# every registered runtime detects itself, resolves images and builds a command; a runtime added
# through the registry alone runs a job (recorded argv: its executable is a stand-in).
import json

import pytest

from scailfin_exec.job import Bind, ImageSources, Job, write_job
from scailfin_exec.worker import shim
from scailfin_exec.worker.images import ResolvedImage
from scailfin_exec.worker.runtimes import (RUNTIMES, ContainerRuntime, Invocation, RunSpec, default_order, register,
                                           unregister)

pytestmark = pytest.mark.fast
IMAGE = ResolvedImage("docker.io/library/alpine:latest", "dir", "/images/alpine", "unpacked tree")
SPEC = RunSpec(IMAGE, ["sh", "-c", "true"], [Bind("/ws", "/ws", True), Bind("/data/in", "/in", False)], "/ws",
               {"K": "$HOME v"}, scratch="/scratch/job", name="scailfin-job-1")


def test_every_registered_runtime_detects_itself_resolves_images_and_builds_a_command():
    assert set(RUNTIMES) == {"apptainer", "singularity", "charliecloud", "podman", "docker", "shifter", "sarus"}
    for name, runtime in RUNTIMES.items():
        assert runtime.name == name and runtime.program
        assert type(runtime).resolve is not ContainerRuntime.resolve, name
        assert type(runtime).command is not ContainerRuntime.command, name
        found = runtime.detect({"PATH": "/nonexistent"})
        assert not found.usable and found.line() == f"{name}: {runtime.program} not on PATH"
        assert isinstance(runtime.command("/bin/" + runtime.program, "9.9", SPEC, {}), Invocation)


def test_the_default_order_tries_daemonless_hpc_runtimes_first_and_docker_last():
    assert default_order() == ["apptainer", "singularity", "shifter", "charliecloud", "sarus", "podman", "docker"]


def test_apptainer_passes_variables_unevaluated_in_its_own_pid_namespace():
    run = RUNTIMES["apptainer"].command("/bin/apptainer", "1.4.5", SPEC, {"APPTAINERENV_LEAK": "x"})
    assert run.argv == ["/bin/apptainer", "exec", "--no-eval", "--pid", "--contain", "--cleanenv", "--pwd", "/ws",
                        "--bind", "/ws:/ws:rw", "--bind", "/data/in:/in:ro", "/images/alpine", "sh", "-c", "true"]
    assert run.env["APPTAINERENV_K"] == "$HOME v" and "APPTAINERENV_LEAK" not in run.env
    assert run.contain == "subreaper"


def test_an_apptainer_without_no_eval_refuses_a_value_it_would_evaluate():
    from scailfin_exec.worker.runtimes import BindError

    with pytest.raises(BindError, match="would evaluate the value of K in a shell"):
        RUNTIMES["apptainer"].command("/bin/apptainer", "1.0.3", SPEC, {})
    quiet = SPEC._replace(env={"K": "plain"})
    assert "--no-eval" not in RUNTIMES["apptainer"].command("/bin/apptainer", "1.0.3", quiet, {}).argv


def test_charliecloud_runs_in_the_keepers_namespaces_with_read_only_binds_made_there():
    run = RUNTIMES["charliecloud"].command("/bin/ch-run", "0.31", SPEC, {"USER": "u"})
    area = "/scratch/job/.scailfin-job-1-ns"  # the run's own: two jobs may share a directory
    assert run.argv == ["/bin/ch-run", "--private-tmp", "--unset-env=*", "--env-no-expand",
                        "--set-env=K=$HOME v", "--set-env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "-b", f"{area}/tmp:/tmp", "-b", "/ws", "-b", f"{area}/bind/1:/in", "-c", "/ws", "/images/alpine",
                        "--", "sh", "-c", "true"]
    assert run.contain == "namespace" and run.binds == [("/data/in", f"{area}/bind/1", False)]
    assert [p[:2] for p in run.mount_points] == [("/images/alpine", "/tmp"), (f"{area}/tmp", "/"),
                                                 ("/images/alpine", "/ws"), ("/images/alpine", "/in")]
    assert run.image == "/images/alpine" and run.area == area


def test_podman_names_its_container_and_removes_it_when_a_client_is_killed():
    run = RUNTIMES["podman"].command("/bin/podman", "4.3.1", SPEC, {})
    assert run.argv[:7] == ["/bin/podman", "--log-level=error", "run", "--rm", "--pull=never", "--name", "scailfin-job-1"]
    assert ["-v", "/data/in:/in:ro"] == run.argv[run.argv.index("/data/in:/in:ro") - 1:run.argv.index("/data/in:/in:ro") + 1]
    assert run.contain == "runtime"
    assert run.cleanup == [["/bin/podman", "rm", "--force", "--ignore", "--time", "0", "scailfin-job-1"]]


def test_shifter_and_sarus_refuse_their_forbidden_targets():
    for name in ("shifter", "sarus"):
        assert RUNTIMES[name].bind_problem(Bind("/a", "/etc/x", False)).startswith("bind targets under /etc")
        assert RUNTIMES[name].bind_problem(Bind("/a", "/var/tmp/x", False)) is None


class StandIn(ContainerRuntime):
    """What a new runtime adds: a module with one class like this, and its registration."""
    name = program = "standin"
    preference = 90

    def resolve(self, ref, exe, found, cache, sources, tried, options, environ):
        return ResolvedImage(str(ref), "ref", str(ref), "the stand-in's own store")

    def command(self, exe, version, spec, environ):
        return Invocation([exe, "run", spec.image.location, "--workdir", spec.workdir] + list(spec.argv), dict(environ),
                          [], contain="subreaper")


def test_a_runtime_added_through_the_registry_alone_runs_a_job_recorded_argv(stand_ins, tmp_path, monkeypatch):
    stand_ins.install("standin")
    monkeypatch.setenv("PATH", f"{stand_ins.path}:/usr/bin:/bin")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    register(StandIn())
    try:
        assert default_order()[-3:] == ["podman", "docker", "standin"]  # by its preference, 90
        job = Job(id="new", image="alpine", argv=["echo", "hi"], workspace=str(workspace), runtime=["standin"],
                  images=ImageSources([], str(tmp_path / "cache"), False))
        write_job(job, str(tmp_path / "job.json"))  # the name is known: the job validates
        assert shim.main([str(tmp_path / "job.json")]) == 0
    finally:
        unregister("standin")
    [run] = [c for c in stand_ins.calls("standin") if c["argv"][1:2] == ["run"]]
    assert run["argv"][1:] == ["run", "docker.io/library/alpine:latest", "--workdir", str(workspace), "echo", "hi"]
    record = json.load(open(tmp_path / "job.result.json"))
    assert record["runtime"]["name"] == "standin" and record["image"]["how"] == "the stand-in's own store"
    assert "standin" not in RUNTIMES


def test_an_unregistered_runtime_cannot_be_configured():
    from scailfin_exec.job import JobError, job_from_dict

    with pytest.raises(JobError, match="job.runtime: unknown runtime 'standin'"):
        job_from_dict({"version": 2, "id": "x", "image": "alpine", "argv": ["true"], "workspace": "/w",
                       "runtime": ["standin"]})
