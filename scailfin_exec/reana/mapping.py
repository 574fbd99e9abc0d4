# A REANA job request (reana-job-controller's JobRequest, as the engines' JobControllerAPIClient
# sends it) turned into a Job for one of our schedulers, or refused with a message naming the
# field: nothing runs until every field has been checked, and no caller can bind a directory
# outside the workspace roots into a container.

from __future__ import annotations

import base64
import binascii
import math
import os
from dataclasses import dataclass

from ..job import Bind, ImageSources, Job, JobError, Resources, validated
from ..run import job_fields
from ..schedulers import SCHEDULERS, scheduler_class
from ..worker.jobspec import inside, normalise

MAX_BODY = 1024 * 1024  # a request larger than this is refused (a command is rarely over a few kB)
CVMFS_UNPACKED = "/cvmfs/unpacked.cern.ch"
# HTCondor's JobFlavour names (as CERN's pool and REANA's htcondorcern backend use them), in seconds
FLAVOURS = {"espresso": 1200, "microcentury": 3600, "longlunch": 7200, "workday": 28800, "tomorrow": 86400,
            "testmatch": 259200, "nextweek": 604800}
_STRINGS = {"docker_img", "job_name", "workflow_uuid", "workflow_workspace", "cmd", "prettified_cmd",
            "compute_backend", "htcondor_max_runtime", "htcondor_accounting_group", "htcondor_request_cpus",
            "htcondor_request_memory", "htcondor_request_disk", "htcondor_requirements", "slurm_partition",
            "slurm_time", "kubernetes_cpu_request", "kubernetes_cpu_limit", "kubernetes_memory_request",
            "kubernetes_memory_limit", "c4p_cpu_cores", "c4p_memory_limit", "c4p_additional_requirements"}
_BOOLEANS = {"kerberos", "voms_proxy", "rucio", "unpacked_img", "shared_file_system"}
_INTEGERS = {"kubernetes_job_timeout", "kubernetes_uid"}
FIELDS = _STRINGS | _BOOLEANS | _INTEGERS | {"env_vars", "cvmfs_mounts"}  # the specification's JobRequest
REQUIRED = ("docker_img", "job_name", "workflow_uuid", "workflow_workspace")
# credentials REANA mounts from its own secret store: this service has none to give
UNSUPPORTED = {"kerberos": "Kerberos credentials", "voms_proxy": "a VOMS proxy", "rucio": "a Rucio environment"}
_UNITS = {"": None, "K": 1 / 1024, "KB": 1 / 1024, "M": 1, "MB": 1, "G": 1024, "GB": 1024, "T": 1024 ** 2,
          "TB": 1024 ** 2}


class RequestError(ValueError):
    """A request this service will not run; the message says which field and why (HTTP 400)."""


@dataclass(frozen=True)
class Placement:
    """Which scheduler runs a job, and what it must share with the jobs beside it."""
    scheduler: str
    accounting_group: str | None = None  # htcondor
    requirements: str | None = None  # htcondor
    partition: str | None = None  # slurm


@dataclass
class Accepted:
    job: Job
    placement: Placement
    docker_img: str
    cmd: str  # as sent (base64), as the Job response carries it
    cvmfs_mounts: str
    workflow_uuid: str
    job_name: str


def accept(body, job_id: str, settings, workspace_roots: list[str]) -> Accepted:
    """The Job for one request (settings: config.Settings), or RequestError."""
    _check_fields(body)
    for name, what in UNSUPPORTED.items():
        if body.get(name):
            raise RequestError(f"{name}: this service cannot provide {what} to a step")
    placement = place(body, settings)
    workspace = workspace_of(body["workflow_workspace"], workspace_roots)
    unpacked = bool(body.get("unpacked_img"))
    image = _image(body["docker_img"].strip(), settings.image_roots)
    roots = ([CVMFS_UNPACKED] if unpacked else []) + list(settings.image_roots)
    taken = scheduler_class(placement.scheduler).transfers
    if settings.transfer not in taken:
        raise RequestError(f"compute_backend {body.get('compute_backend') or 'kubernetes'!r}: the "
                           f"{placement.scheduler} scheduler cannot use this service's transfer mode "
                           f"{settings.transfer!r} (it takes {', '.join(taken)})")
    job = Job(
        id=job_id, image=image, argv=["/bin/sh", "-c", command(body.get("cmd", ""))],
        workspace=workspace, binds=[Bind("/cvmfs", "/cvmfs", False, on_worker=True)] if _wants_cvmfs(body) else [],
        env=_environment(body.get("env_vars", {})), resources=_resources(body),
        **{**job_fields(settings), "images": ImageSources(roots, settings.image_cache, settings.pull and not unpacked)},
        labels={"workflow": body["workflow_uuid"], "step": body["job_name"]},
    )
    try:
        job = validated(job)
    except JobError as e:
        raise RequestError(str(e).replace("job.", "the job's ", 1)) from None
    mounts = body.get("cvmfs_mounts", "false")
    return Accepted(job, placement, body["docker_img"], body.get("cmd", ""),
                    mounts if isinstance(mounts, str) else ",".join(mounts), body["workflow_uuid"], body["job_name"])


def _check_fields(body) -> None:
    if not isinstance(body, dict):
        raise RequestError("the request must be a JSON object (a JobRequest)")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(unknown)} (a JobRequest has {', '.join(sorted(FIELDS))})")
    missing = [name for name in REQUIRED if body.get(name) is None]  # present: the serial engine sends job_name ""
    if missing:
        raise RequestError(f"missing required field(s) {', '.join(missing)}")
    for name, value in body.items():
        if name in _STRINGS and not isinstance(value, str):
            raise RequestError(f"{name}: must be a string, got {type(value).__name__}")
        if name in _BOOLEANS and not isinstance(value, bool):
            raise RequestError(f"{name}: must be true or false, got {value!r}")
        if name in _INTEGERS and (isinstance(value, bool) or not isinstance(value, int)):
            raise RequestError(f"{name}: must be an integer, got {value!r}")
    mounts = body.get("cvmfs_mounts", "false")
    if not isinstance(mounts, str) and not (isinstance(mounts, list) and all(isinstance(m, str) for m in mounts)):
        raise RequestError(f"cvmfs_mounts: must be a string or a list of strings, got {mounts!r}")


def place(body: dict, settings) -> Placement:
    """compute_backend -> a scheduler: REANA's default (kubernetes) is this service's default
    scheduler; a name that is, or starts with, a scheduler's (htcondorcern) is that scheduler."""
    backend = body.get("compute_backend") or "kubernetes"
    if backend == "kubernetes":
        scheduler = settings.scheduler
    else:
        matches = [name for name in SCHEDULERS if backend.startswith(name)]
        if not matches:
            raise RequestError(f"compute_backend {backend!r}: this service runs kubernetes (on its default "
                               f"scheduler, {settings.scheduler}), " + ", ".join(
                                   f"{name} and {name}* names such as {name}cern" for name in SCHEDULERS))
        scheduler = max(matches, key=len)
    if scheduler == "slurm":
        partition = body.get("slurm_partition") or None
        if partition is not None and (any(c.isspace() for c in partition) or "\0" in partition):
            raise RequestError(f"slurm_partition: {partition!r} is not a partition name")
        return Placement(scheduler, partition=partition or settings.of("slurm").partition)
    if scheduler != "htcondor":
        return Placement(scheduler)
    site = settings.of("htcondor")
    group = body.get("htcondor_accounting_group") or site.accounting_group
    if group and not all(c.isalnum() or c in "_.-@" for c in group):
        raise RequestError(f"htcondor_accounting_group: {group!r} is not a group name (letters, digits, '_', '.', "
                           "'-', '@')")
    requirements = site.requirements
    if body.get("htcondor_requirements"):
        wanted = _classad_expression(body["htcondor_requirements"])
        requirements = f"({requirements}) && ({wanted})" if requirements else wanted
    return Placement(scheduler, group or None, requirements)


def _classad_expression(text: str) -> str:
    """One ClassAd expression, as HTCondor prints it: text that is not exactly one (such as
    'true) || (true', which would escape the site's requirements) is refused."""
    import classad2

    if any(c in text for c in "$\n\r"):
        raise RequestError("htcondor_requirements: '$' and line breaks are not allowed (the submit language "
                           "would expand or cut them)")
    try:
        return str(classad2.ExprTree(text))
    except Exception:  # noqa: BLE001  (classad2 raises its own exception type)
        raise RequestError(f"htcondor_requirements: {text!r} is not a ClassAd expression") from None


def workspace_of(value: str, roots: list[str]) -> str:
    """The workspace, strictly inside one of the roots, by its real path (a link could point
    anywhere), and there."""
    if not os.path.isabs(value):
        raise RequestError(f"workflow_workspace: {value!r} is not an absolute path")
    path = normalise(value)
    real = os.path.realpath(path)
    if not any(inside(real, root) and real != root for root in roots):
        raise RequestError(f"workflow_workspace: {value!r} is outside the workspace roots of this service "
                           f"({', '.join(roots)}): refused")
    if real != path:
        raise RequestError(f"workflow_workspace: {value!r} goes through a symbolic link (it is {real}): "
                           "send the real path")
    if not os.path.isdir(path):
        raise RequestError(f"workflow_workspace: {value!r} is not a directory")
    return path


def command(encoded: str) -> str:
    """The command, from the base64 the engines send."""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise RequestError("cmd: not base64 of a UTF-8 command") from None


def _image(reference: str, image_roots: list[str]) -> str:
    """A registry reference, or an unpacked tree by path: under /cvmfs or an image root."""
    if not reference:
        raise RequestError("docker_img: empty")
    if os.path.isabs(reference):
        path = normalise(reference)
        allowed = ["/cvmfs"] + list(image_roots)
        if not any(inside(path, root) and path != root for root in allowed):
            raise RequestError(f"docker_img: the image path {reference!r} is not under {' or '.join(allowed)}")
        return path
    return reference


def _wants_cvmfs(body: dict) -> bool:
    mounts = body.get("cvmfs_mounts", "false")
    return bool(mounts) and mounts not in ("false", "False") if isinstance(mounts, str) else bool(mounts)


def _environment(values) -> dict[str, str]:
    if not isinstance(values, dict):
        raise RequestError("env_vars: must be an object of names and values")
    env = {}
    for name, value in values.items():
        if isinstance(value, (dict, list)) or value is None:
            raise RequestError(f"env_vars: the value of {name!r} must be a string or a number")
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _resources(body: dict) -> Resources:
    resources = Resources()
    cpus = body.get("htcondor_request_cpus")
    if cpus:
        if not cpus.strip().isdigit() or int(cpus) < 1:
            raise RequestError(f"htcondor_request_cpus: {cpus!r} is not a positive whole number")
        resources = resources._replace(cores=int(cpus))
    if body.get("htcondor_request_memory"):
        resources = resources._replace(memory_mb=_megabytes("htcondor_request_memory", body["htcondor_request_memory"], 1))
    if body.get("htcondor_request_disk"):
        resources = resources._replace(disk_mb=_megabytes("htcondor_request_disk", body["htcondor_request_disk"], 1 / 1024))
    runtime = body.get("htcondor_max_runtime") or None
    if runtime is None and body.get("kubernetes_job_timeout"):
        runtime = str(body["kubernetes_job_timeout"])
    if runtime is not None:
        resources = resources._replace(walltime_s=_seconds(runtime))
    elif body.get("slurm_time"):
        resources = resources._replace(walltime_s=_slurm_seconds(body["slurm_time"]))
    return resources


def _slurm_seconds(value: str) -> int:
    """Slurm's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    days, _, rest = value.strip().rpartition("-") if "-" in value else ("0", "", value.strip())
    parts = rest.split(":")
    if not days.isdigit() or not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        raise RequestError(f"slurm_time: {value!r} is not a Slurm time (MM, MM:SS, HH:MM:SS or D-HH:MM:SS)")
    numbers = [int(p) for p in parts]
    if "-" in value:  # D-HH[:MM[:SS]]
        units = (3600, 60, 1)
    else:  # MM, MM:SS, HH:MM:SS
        units = {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(numbers)]
    seconds = int(days) * 86400 + sum(n * u for n, u in zip(numbers, units))
    if seconds < 1:
        raise RequestError(f"slurm_time: {value!r} is no time at all")
    return seconds


def _megabytes(name: str, value: str, bare_unit: float) -> int:
    """HTCondor's quantity: a number with an optional K/M/G/T(B) suffix (binary multipliers);
    a bare number is in bare_unit megabytes."""
    text = value.strip().upper().replace(" ", "")
    digits = text.rstrip("KMGTB")
    unit = _UNITS.get(text[len(digits):], "bad")
    if not digits.isdigit() or unit == "bad" or int(digits) < 1:
        raise RequestError(f"{name}: {value!r} is not a quantity such as 4096, 4 GB or 512MB")
    return max(1, math.ceil(int(digits) * (unit or bare_unit)))


def _seconds(value: str) -> int:
    text = value.strip()
    if text in FLAVOURS:
        return FLAVOURS[text]
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise RequestError(f"htcondor_max_runtime: {value!r} is neither a number of seconds nor a job flavour "
                       f"({', '.join(f'{k} {v} s' for k, v in FLAVOURS.items())})")
