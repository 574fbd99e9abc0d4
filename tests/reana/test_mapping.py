# A REANA job request becomes a Job, or a message naming the field (pure: no service, no container).
import base64
import os

import pytest

from scailfin_exec.config import Settings
from scailfin_exec.job import Bind
from scailfin_exec.reana.mapping import FLAVOURS, RequestError, accept

pytestmark = pytest.mark.fast


@pytest.fixture
def root(tmp_path):
    ws = tmp_path / "reana" / "users" / "u" / "workflows" / "w"
    ws.mkdir(parents=True)
    return str(tmp_path / "reana")


def body(root, **fields):
    request = {"docker_img": "docker.io/library/python:2.7-slim", "job_name": "hello", "workflow_uuid": "w",
               "workflow_workspace": os.path.join(root, "users", "u", "workflows", "w"),
               "cmd": base64.b64encode(b"cd /x && python 'a b.py'").decode()}
    request.update(fields)
    return request


def settings(**kw):
    return Settings(**kw).validate()


def test_a_request_becomes_a_job_with_its_image_command_and_workspace_at_the_same_path(root):
    accepted = accept(body(root, env_vars={"A": "1", "N": 2}), "id-1", settings(image_roots=["/images"]), [root])
    job = accepted.job
    assert job.id == "id-1" and job.image == "docker.io/library/python:2.7-slim"
    assert job.argv == ["/bin/sh", "-c", "cd /x && python 'a b.py'"]
    assert job.workspace == job.cwd == os.path.join(root, "users", "u", "workflows", "w")
    assert job.env == {"A": "1", "N": "2"} and job.binds == []
    assert job.images.roots == ["/images"] and job.images.pull
    assert accepted.placement.scheduler == "local" and accepted.cvmfs_mounts == "false"
    assert job.labels == {"workflow": "w", "step": "hello"}


def test_unpacked_images_come_from_cvmfs_unpacked_and_are_never_pulled(root):
    job = accept(body(root, unpacked_img=True), "i", settings(image_roots=["/images"]), [root]).job
    assert job.images.roots == ["/cvmfs/unpacked.cern.ch", "/images"] and not job.images.pull
    path = "/cvmfs/unpacked.cern.ch/registry.hub.docker.com/library/python:2.7-slim"
    assert accept(body(root, docker_img=path), "i", settings(), [root]).job.image == path
    with pytest.raises(RequestError, match="is not under /cvmfs"):
        accept(body(root, docker_img="/home/someone/rootfs"), "i", settings(), [root])


@pytest.mark.parametrize("mounts,bound", [("false", False), ("", False), ("true", True), ("atlas.cern.ch", True),
                                          (["atlas.cern.ch"], True), ([], False)])
def test_cvmfs_mounts_bind_the_workers_cvmfs(root, mounts, bound):
    job = accept(body(root, cvmfs_mounts=mounts), "i", settings(), [root]).job
    assert (Bind("/cvmfs", "/cvmfs", False, on_worker=True) in job.binds) == bound


@pytest.mark.parametrize("backend,scheduler", [(None, "local"), ("kubernetes", "local"), ("htcondorcern", "htcondor"),
                                               ("htcondor", "htcondor"), ("local", "local"), ("slurmcern", "slurm")])
def test_compute_backend_chooses_the_scheduler(root, backend, scheduler):
    request = body(root, compute_backend=backend) if backend else body(root)
    assert accept(request, "i", settings(), [root]).placement.scheduler == scheduler


def test_kubernetes_goes_to_the_configured_default_and_unknown_backends_are_refused_naming_those_there_are(root):
    assert accept(body(root, compute_backend="kubernetes"), "i", settings(scheduler="htcondor", transfer="chirp"),
                  [root]).placement.scheduler == "htcondor"
    with pytest.raises(RequestError, match="compute_backend 'compute4punch': .*kubernetes.*htcondor"):
        accept(body(root, compute_backend="compute4punch"), "i", settings(), [root])


def test_htcondor_limits_become_resources_and_walltime(root):
    job = accept(body(root, compute_backend="htcondorcern", htcondor_max_runtime="espresso", htcondor_request_cpus="4",
                      htcondor_request_memory="4 GB", htcondor_request_disk="10000000"), "i", settings(), [root]).job
    assert job.resources.walltime_s == FLAVOURS["espresso"] == 1200
    assert job.resources.cores == 4 and job.resources.memory_mb == 4096 and job.resources.disk_mb == 9766
    assert accept(body(root, htcondor_max_runtime="90"), "i", settings(), [root]).job.resources.walltime_s == 90
    assert accept(body(root, kubernetes_job_timeout=30), "i", settings(), [root]).job.resources.walltime_s == 30
    for field, value, message in [("htcondor_max_runtime", "fortnight", "neither a number of seconds nor a job flavour"),
                                  ("htcondor_request_memory", "lots", "is not a quantity"),
                                  ("htcondor_request_cpus", "-1", "not a positive whole number")]:
        with pytest.raises(RequestError, match=message):
            accept(body(root, **{field: value}), "i", settings(), [root])


def test_slurm_partition_and_time_come_with_the_request(root):
    accepted = accept(body(root, compute_backend="slurmcern", slurm_partition="short", slurm_time="1-02:03:04"),
                      "i", settings(), [root])
    assert accepted.placement.partition == "short" and accepted.placement.scheduler == "slurm"
    assert accepted.job.resources.walltime_s == 86400 + 2 * 3600 + 3 * 60 + 4
    for value, seconds in [("90", 5400), ("2:30", 150), ("01:00:00", 3600), ("2-0", 172800)]:
        assert accept(body(root, slurm_time=value), "i", settings(), [root]).job.resources.walltime_s == seconds
    for value in ("soon", "1:2:3:4", "0"):
        with pytest.raises(RequestError, match="slurm_time"):
            accept(body(root, slurm_time=value), "i", settings(), [root])


def test_the_accounting_group_and_requirements_are_the_requests_within_the_sites(root):
    site = settings()
    site.of("htcondor").requirements = "HasSingularity"
    placement = accept(body(root, compute_backend="htcondorcern", htcondor_accounting_group="group_u.physics",
                            htcondor_requirements='(Arch =?= "aarch64")'), "i", site, [root]).placement
    assert placement.accounting_group == "group_u.physics"
    assert placement.requirements == '(HasSingularity) && ((Arch is "aarch64"))'
    for value in ("true) || (true", "x $(ENV(HOME))", "a\nqueue 5"):
        with pytest.raises(RequestError, match="htcondor_requirements"):
            accept(body(root, compute_backend="htcondorcern", htcondor_requirements=value), "i", site, [root])
    with pytest.raises(RequestError, match="htcondor_accounting_group"):
        accept(body(root, compute_backend="htcondorcern", htcondor_accounting_group="a b\nqueue"), "i", site, [root])


def test_workspaces_must_be_real_directories_strictly_inside_a_root(root, tmp_path):
    inside = os.path.join(root, "users", "u", "workflows", "w")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", os.path.join(root, "link"))
    os.symlink(inside, os.path.join(root, "alias"))
    for where, message in [("/etc", "outside the workspace roots"), (root, "outside the workspace roots"),
                           (inside + "/../../../../../outside", "outside the workspace roots"),
                           (os.path.join(root, "link"), "outside the workspace roots"),
                           (os.path.join(root, "alias"), "goes through a symbolic link"),
                           (os.path.join(root, "users", "nobody"), "is not a directory"),
                           ("users/u", "not an absolute path")]:
        with pytest.raises(RequestError, match=message):
            accept(body(root, workflow_workspace=where), "i", settings(), [root])
    assert accept(body(root, workflow_workspace="/" + inside), "i", settings(), [root]).job.workspace == inside


@pytest.mark.parametrize("fields,message", [
    ({"kerberos": True}, "cannot provide Kerberos"), ({"voms_proxy": True}, "VOMS proxy"), ({"rucio": True}, "Rucio"),
    ({"cmd": "%%%"}, "not base64"), ({"cmd": base64.b64encode(b"\xff").decode()}, "not base64 of a UTF-8"),
    ({"env_vars": {"A": {"b": 1}}}, "must be a string or a number"), ({"env_vars": {"1A": "x"}}, "variable name"),
    ({"docker_img": "  "}, "docker_img: empty"), ({"docker_img": "Not A Reference"}, "the job's image"),
    ({"job_name": 3}, "job_name: must be a string"), ({"kubernetes_uid": "0"}, "must be an integer"),
    ({"cvmfs_mounts": {"x": 1}}, "cvmfs_mounts"), ({"extra": 1}, "unknown field"), ({"workflow_uuid": None}, "missing"),
    ({"workflow_workspace": ""}, "not an absolute path"),
])
def test_bad_fields_are_refused_with_the_field_named(root, fields, message):
    with pytest.raises(RequestError, match=message):
        accept(body(root, **fields), "i", settings(), [root])


def test_a_transfer_the_scheduler_cannot_use_is_refused_not_downgraded(root):
    conf = settings(scheduler="htcondor", transfer="chirp")
    assert accept(body(root), "i", conf, [root]).job.transfer == "chirp"
    with pytest.raises(RequestError, match="compute_backend 'local': the local scheduler cannot use this service's "
                                           "transfer mode 'chirp' \\(it takes shared\\)"):
        accept(body(root, compute_backend="local"), "i", conf, [root])
