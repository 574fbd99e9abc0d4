# The job description: what one containerised step needs, as data that crosses the wire as JSON.
# Shared by the submit side and the worker shim, so standard library only and Python >= 3.6.
#
# NamedTuples rather than dataclasses: the shim must run on Python 3.6, which has no dataclasses.

import json
import os
from typing import Any, Dict, List, NamedTuple, Optional

FORMAT_VERSION = 1
TRANSFER_MODES = ("shared", "htcondor", "chirp")
RUNTIME_NAMES = ("apptainer", "singularity", "charliecloud", "podman", "docker", "shifter", "sarus")
# The order tried when a job (and the worker's SCAILFIN_RUNTIME) does not say: HPC runtimes that
# need no daemon and no root first, Docker last (rarely allowed on clusters).
DEFAULT_RUNTIME_ORDER = ("apptainer", "singularity", "shifter", "charliecloud", "sarus", "podman", "docker")


class JobError(ValueError):
    """A job description that cannot be run: the message says which field and why."""


class Bind(NamedTuple):
    source: str
    target: str
    writable: bool = False
    on_worker: bool = False  # the worker's own (e.g. /cvmfs): never staged, must exist there


class Resources(NamedTuple):
    cores: float = 1
    memory_mb: int = 256
    disk_mb: int = 1024
    gpus: int = 0
    walltime_s: Optional[int] = None


class ImageSources(NamedTuple):
    # directories laid out as CVMFS's unpacked.cern.ch: <root>/<registry>/<repository>:<tag>
    # (a directory, a .sif file or a .tar/.tar.gz archive of the root filesystem)
    roots: List[str] = []
    # where prepared images (pulled SIFs, unpacked archives) are kept; shared between jobs
    cache: Optional[str] = None
    # whether the worker may pull from a registry when nothing local matches
    pull: bool = True


class Job(NamedTuple):
    id: str
    image: str
    argv: List[str]
    workspace: str
    script: Optional[str] = None  # fed on the payload's stdin (argv is then the interpreter)
    stdin: Optional[str] = None
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    workdir: Optional[str] = None  # default: the workspace
    binds: List[Bind] = []
    env: Dict[str, str] = {}
    inputs: List[str] = []
    outputs: List[str] = []
    resources: Resources = Resources()
    transfer: str = "shared"
    runtime: List[str] = []  # preference order; empty means the worker's or the default order
    runtime_options: Dict[str, List[str]] = {}  # extra global options per runtime (site quirks)
    network: bool = False
    entrypoint: bool = False  # run argv through the image's ENTRYPOINT, as `docker run` does
    images: ImageSources = ImageSources()
    labels: Dict[str, str] = {}
    # transfer modes that copy files: where each submit-side path was put, relative to the job's
    # scratch directory (a directory travels as a .tar, unpacked there); set by the scheduler
    staged: Dict[str, str] = {}

    @property
    def cwd(self) -> str:
        return self.workdir or self.workspace

    def all_binds(self) -> List[Bind]:
        """The workspace (writable, at its own path), the extra binds, then every input that
        neither brings (read-only, at its own path)."""
        binds = [Bind(self.workspace, self.workspace, True)] + list(self.binds)
        for path in self.inputs:
            if not any(inside(path, b.source) for b in binds):
                binds.append(Bind(path, path, False))
        return binds


def inside(path: str, directory: str) -> bool:
    """Whether path is directory or somewhere under it (by name: links are not followed)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


_NESTED = {"resources": Resources, "images": ImageSources}


def _fields(cls) -> Dict[str, Any]:
    return {name: cls._field_defaults.get(name, _REQUIRED) for name in cls._fields}


_REQUIRED = object()


def _check_type(where: str, value: Any, kinds, what: str) -> None:
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise JobError("{}: must be {}, got {!r}".format(where, what, value))


def _as_tuple(kinds):
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _abs(where: str, value: Any) -> str:
    _check_type(where, value, str, "an absolute path")
    if not os.path.isabs(value):
        raise JobError("{}: must be an absolute path, got {!r}".format(where, value))
    if "\0" in value:
        raise JobError("{}: contains a NUL byte".format(where))
    return os.path.normpath(value)


def _str_list(where: str, value: Any) -> List[str]:
    _check_type(where, value, list, "a list of strings")
    for i, item in enumerate(value):
        _check_type("{}[{}]".format(where, i), item, str, "a string")
    return list(value)


def _str_dict(where: str, value: Any) -> Dict[str, str]:
    _check_type(where, value, dict, "a mapping of strings")
    for key, item in value.items():
        _check_type("{}[{!r}]".format(where, key), item, str, "a string")
    return dict(value)


def _nested(where: str, cls, value: Any):
    _check_type(where, value, dict, "a mapping")
    known = _fields(cls)
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise JobError("{}: unknown field(s) {}".format(where, ", ".join(unknown)))
    missing = [k for k, default in known.items() if default is _REQUIRED and k not in value]
    if missing:
        raise JobError("{}: missing field(s) {}".format(where, ", ".join(missing)))
    return cls(**value)


def job_from_dict(data: Any) -> Job:
    """Validate a decoded job description and build a Job; JobError says what is wrong."""
    _check_type("job", data, dict, "a JSON object")
    version = data.get("version")
    if version is None:
        raise JobError("job: missing field 'version'")
    _check_type("job.version", version, int, "an integer")
    if version > FORMAT_VERSION:
        raise JobError(
            "job.version: format {} is newer than this shim understands ({}); "
            "ship the shim from the same scailfin-exec that wrote the job".format(version, FORMAT_VERSION)
        )
    if version < 1:
        raise JobError("job.version: must be >= 1, got {}".format(version))
    fields = _fields(Job)
    body = {k: v for k, v in data.items() if k != "version"}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise JobError("job: unknown field(s) {}".format(", ".join(unknown)))
    missing = [k for k, default in fields.items() if default is _REQUIRED and k not in body]
    if missing:
        raise JobError("job: missing field(s) {}".format(", ".join(missing)))

    _check_type("job.id", body["id"], str, "a string")
    if not body["id"] or "/" in body["id"] or body["id"].startswith("."):
        raise JobError("job.id: must be a non-empty name without '/', got {!r}".format(body["id"]))
    _check_type("job.image", body["image"], str, "an image reference or path")
    if not body["image"].strip():
        raise JobError("job.image: must not be empty")
    body["argv"] = _str_list("job.argv", body["argv"])
    if not body["argv"]:
        raise JobError("job.argv: must name at least the program to run")
    body["workspace"] = _abs("job.workspace", body["workspace"])
    if body["workspace"] == "/":
        raise JobError("job.workspace: must not be '/'")
    for key in ("stdin", "stdout", "stderr", "workdir"):
        if body.get(key) is not None:
            body[key] = _abs("job." + key, body[key])
    if body.get("script") is not None:
        _check_type("job.script", body["script"], str, "a string")
        if body.get("stdin") is not None:
            raise JobError("job: 'script' is fed on stdin, so 'stdin' must not be set too")
    binds = []
    for i, b in enumerate(body.get("binds", [])):
        where = "job.binds[{}]".format(i)
        b = _nested(where, Bind, b)
        binds.append(Bind(_abs(where + ".source", b.source), _abs(where + ".target", b.target), b.writable, b.on_worker))
        _check_type(where + ".writable", b.writable, bool, "true or false")
        _check_type(where + ".on_worker", b.on_worker, bool, "true or false")
    body["binds"] = binds
    body["env"] = _str_dict("job.env", body.get("env", {}))
    for key in body["env"]:
        if not key or "=" in key or "\0" in key:
            raise JobError("job.env: invalid variable name {!r}".format(key))
    body["inputs"] = [_abs("job.inputs[{}]".format(i), p) for i, p in enumerate(_str_list("job.inputs", body.get("inputs", [])))]
    body["outputs"] = _outputs(body["workspace"], _str_list("job.outputs", body.get("outputs", [])))
    body["labels"] = _str_dict("job.labels", body.get("labels", {}))
    staged = _str_dict("job.staged", body.get("staged", {}))
    for original, relative in staged.items():
        _abs("job.staged", original)
        if os.path.isabs(relative) or ".." in relative.split("/"):
            raise JobError("job.staged[{!r}]: must be a path inside the scratch directory, got {!r}".format(original, relative))
    body["staged"] = staged

    res = _nested("job.resources", Resources, body.get("resources", {}))
    for key in ("cores", "memory_mb", "disk_mb", "gpus", "walltime_s"):
        value = getattr(res, key)
        if value is None and key == "walltime_s":
            continue
        _check_type("job.resources." + key, value, (int, float) if key == "cores" else int, "a number")
        if value < 0 or (key in ("cores",) and value == 0):
            raise JobError("job.resources.{}: must be positive, got {!r}".format(key, value))
    body["resources"] = res

    img = _nested("job.images", ImageSources, body.get("images", {}))
    roots = [_abs("job.images.roots[{}]".format(i), r) for i, r in enumerate(_str_list("job.images.roots", img.roots))]
    cache = _abs("job.images.cache", img.cache) if img.cache is not None else None
    _check_type("job.images.pull", img.pull, bool, "true or false")
    body["images"] = ImageSources(roots, cache, img.pull)

    transfer = body.get("transfer", "shared")
    if transfer not in TRANSFER_MODES:
        raise JobError("job.transfer: unknown transfer mode {!r} (known: {})".format(transfer, ", ".join(TRANSFER_MODES)))
    body["runtime"] = check_runtime_names("job.runtime", _str_list("job.runtime", body.get("runtime", [])))
    options = body.get("runtime_options", {})
    _check_type("job.runtime_options", options, dict, "a mapping of runtime name to a list of options")
    check_runtime_names("job.runtime_options", list(options))
    body["runtime_options"] = {k: _str_list("job.runtime_options." + k, v) for k, v in options.items()}
    _check_type("job.network", body.get("network", False), bool, "true or false")
    _check_type("job.entrypoint", body.get("entrypoint", False), bool, "true or false")
    return Job(**body)


def check_runtime_names(where: str, names: List[str]) -> List[str]:
    for name in names:
        if name not in RUNTIME_NAMES:
            raise JobError("{}: unknown runtime {!r} (known: {})".format(where, name, ", ".join(RUNTIME_NAMES)))
    return names


def _outputs(workspace: str, outputs: List[str]) -> List[str]:
    """Outputs are paths inside the workspace (relative to it, or absolute under it)."""
    result = []
    for i, path in enumerate(outputs):
        where = "job.outputs[{}]".format(i)
        full = os.path.normpath(os.path.join(workspace, path))
        if not inside(full, workspace):
            raise JobError("{}: {!r} is outside the workspace {}".format(where, path, workspace))
        result.append(full)
    return result


def job_to_dict(job: Job) -> Dict[str, Any]:
    data = {"version": FORMAT_VERSION}
    for name in job._fields:
        value = getattr(job, name)
        if name in _NESTED:
            value = _plain(value)
        elif name == "binds":
            value = [_plain(b) for b in value]
        data[name] = value
    return data


def _plain(value) -> Dict[str, Any]:
    """A nested record as a dict (plain dicts are accepted too: validation checks them)."""
    return dict(value._asdict()) if hasattr(value, "_asdict") else dict(value)


def dumps(job: Job) -> str:
    # one line: json's C encoder writes it several times faster than an indented file (a
    # thousand-job scatter writes a thousand); `python3 -m json.tool job.json` shows it indented
    return json.dumps(job_to_dict(job), sort_keys=True)


def load_job(path: str) -> Job:
    """Read and validate a job file; JobError names the file and the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise JobError("{}: cannot read job file: {}".format(path, e.strerror or e))
    except ValueError as e:
        raise JobError("{}: not valid JSON: {}".format(path, e))
    try:
        return job_from_dict(data)
    except JobError as e:
        raise JobError("{}: {}".format(path, e))
