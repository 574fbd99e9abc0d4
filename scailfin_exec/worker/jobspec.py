# The job description: what one containerised step needs, as data that crosses the wire as JSON.
# Shared by the submit side and the worker shim, so standard library only and Python >= 3.6.
#
# NamedTuples rather than dataclasses: the shim must run on Python 3.6, which has no dataclasses.

import json
import math
import os
from typing import Any, Dict, List, NamedTuple, Optional

# 2: outputs come back in every transfer mode as declared (shared mode too, from a private copy of
# the workspace), and `secrets`
# 3: `archives` says which staged paths travel as an archive in the htcondor mode too (a file named
# *.tar is a file), and an output may be a writable bind's source outside the workspace
# 4: `images.credentials`, the directory of the registry credentials the job brings (a path)
FORMAT_VERSION = 4
ID_MAX = 100  # job ids name directories and temporaries (with a file name and a host name in them)
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
ENV_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
ENV_NAME_CHARS = ENV_NAME_START | frozenset("0123456789")
RESOURCE_MAX = 2 ** 53  # beyond this a number is a mistake, not a request


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
    # a directory of the run's (credentials.py) whose config.json has the credentials for the
    # image's registry: a path, never the secret; batch jobs carry it as registry-auth/
    credentials: Optional[str] = None


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
    outputs: List[str] = ["."]  # inside the workspace; what comes back (default: all of it)
    resources: Resources = Resources()
    transfer: str = "shared"
    runtime: List[str] = []  # preference order; empty means the worker's or the default order
    runtime_options: Dict[str, List[str]] = {}  # extra global options per runtime (site quirks)
    network: bool = False
    entrypoint: bool = False  # run argv through the image's ENTRYPOINT, as `docker run` does
    images: ImageSources = ImageSources()
    labels: Dict[str, str] = {}
    # values the step must get (in argv, env or script) that nothing the shim writes may show:
    # result records and logs carry "(secret)" instead
    secrets: List[str] = []
    # transfer modes that copy files: where each submit-side path was put, relative to the job's
    # scratch directory; set by the scheduler
    staged: Dict[str, str] = {}
    # directories that travel as one archive each (submit-side directory -> its archive on the
    # submit side, built by the scheduler), unpacked on the worker: the only way the worker learns
    # that a staged path is an archive (a user's file named *.tar is a file); set by the scheduler
    archives: Dict[str, str] = {}

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
    """Whether path is directory or somewhere under it (by name: links are not followed).
    Both must be normalised (normalise()): '//' is not '/' to this test."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def normalise(path: str) -> str:
    """An absolute path in its one spelling: POSIX lets a path start with '//' (and normpath keeps
    it), which would pass a "not /" test and then contain everything."""
    path = os.path.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("/") else path


_NESTED = {"resources": Resources, "images": ImageSources}


def _fields(cls) -> Dict[str, Any]:
    return {name: cls._field_defaults.get(name, _REQUIRED) for name in cls._fields}


_REQUIRED = object()


def _check_type(where: str, value: Any, kinds, what: str) -> None:
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise JobError("{}: must be {}, got {}".format(where, what, _short(value)))
    if isinstance(value, str) and "\0" in value:
        raise JobError("{}: contains a NUL byte, which no program can be given".format(where))


def _name(key: Any) -> str:
    """A field name as written when it is one, quoted when it holds anything odd."""
    return key if isinstance(key, str) and key.isprintable() and len(key) <= 80 else _short(key)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_tuple(kinds):
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _abs(where: str, value: Any, root_allowed: bool = True) -> str:
    _check_type(where, value, str, "an absolute path")
    if not os.path.isabs(value):
        raise JobError("{}: must be an absolute path, got {}".format(where, _short(value)))
    path = normalise(value)
    if path == "/" and not root_allowed:
        raise JobError("{}: must not be '/' (the whole file system), got {!r}".format(where, value))
    return path


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
    unknown = sorted(_name(k) for k in set(value) - set(known))
    if unknown:
        raise JobError("{}: unknown field(s) {}".format(where, ", ".join(unknown)))
    missing = [k for k, default in known.items() if default is _REQUIRED and k not in value]
    if missing:
        raise JobError("{}: missing field(s) {}".format(where, ", ".join(missing)))
    return cls(**value)


def _identifier(where: str, value: Any) -> str:
    _check_type(where, value, str, "a string")
    if not value or len(value) > ID_MAX or not set(value) <= ID_CHARS or value[0] in ".-":
        raise JobError("{}: must be 1 to {} letters, digits, '_', '.' or '-', not starting with '.' or '-'; "
                       "got {}".format(where, ID_MAX, _short(value)))
    return value


def _env(where: str, value: Any) -> Dict[str, str]:
    env = _str_dict(where, value)
    for key in env:
        if not key or key[0] not in ENV_NAME_START or not set(key) <= ENV_NAME_CHARS:
            raise JobError("{}: invalid variable name {} (letters, digits and '_', not starting with a digit)".format(
                where, _short(key)))
    return env


def _resources(data: Any) -> "Resources":
    res = _nested("job.resources", Resources, data)
    for key in ("cores", "memory_mb", "disk_mb", "gpus", "walltime_s"):
        value = getattr(res, key)
        if value is None and key == "walltime_s":
            continue
        where = "job.resources." + key
        _check_type(where, value, (int, float) if key == "cores" else int, "a number" if key == "cores" else "an integer")
        if isinstance(value, float) and not math.isfinite(value):
            raise JobError("{}: must be a finite number, got {!r}".format(where, value))
        if value < 0 or (key == "cores" and value == 0):
            raise JobError("{}: must be positive, got {!r}".format(where, value))
        if value > RESOURCE_MAX and key != "walltime_s":  # a walltime beyond any timer is no limit
            raise JobError("{}: {} is beyond any machine (at most {})".format(where, value, RESOURCE_MAX))
    return res


def job_from_dict(data: Any) -> Job:
    """Validate a decoded job description and build a Job; JobError says what is wrong."""
    body = _fields_of(data)
    _identifier("job.id", body["id"])
    body["image"] = _image(body["image"])
    body["argv"] = _str_list("job.argv", body["argv"])
    if not body["argv"]:
        raise JobError("job.argv: must name at least the program to run")
    _paths(body)
    if body.get("script") is not None:
        _check_type("job.script", body["script"], str, "a string")
        if body.get("stdin") is not None:
            raise JobError("job: 'script' is fed on stdin, so 'stdin' must not be set too")
    body["env"] = _env("job.env", body.get("env", {}))
    body["secrets"] = [v for v in _str_list("job.secrets", body.get("secrets", [])) if v]
    body["labels"] = _str_dict("job.labels", body.get("labels", {}))
    body["resources"] = _resources(body.get("resources", {}))
    img = _nested("job.images", ImageSources, body.get("images", {}))
    roots = [_abs("job.images.roots[{}]".format(i), r) for i, r in enumerate(_str_list("job.images.roots", img.roots))]
    cache = _abs("job.images.cache", img.cache, root_allowed=False) if img.cache is not None else None
    _check_type("job.images.pull", img.pull, bool, "true or false")
    credentials = _abs("job.images.credentials", img.credentials, root_allowed=False) if img.credentials is not None else None
    body["images"] = ImageSources(roots, cache, img.pull, credentials)
    from .transfers import MODES
    transfer = body.get("transfer", "shared")
    if transfer not in MODES:
        raise JobError("job.transfer: unknown transfer mode {} (known: {})".format(_short(transfer), ", ".join(MODES)))
    body["runtime"] = check_runtime_names("job.runtime", _str_list("job.runtime", body.get("runtime", [])))
    options = body.get("runtime_options", {})
    _check_type("job.runtime_options", options, dict, "a mapping of runtime name to a list of options")
    check_runtime_names("job.runtime_options", list(options))
    body["runtime_options"] = {k: _str_list("job.runtime_options." + k, v) for k, v in options.items()}
    _check_type("job.network", body.get("network", False), bool, "true or false")
    _check_type("job.entrypoint", body.get("entrypoint", False), bool, "true or false")
    return Job(**body)


def _fields_of(data: Any) -> Dict[str, Any]:
    """The job's fields (without 'version'), once the format version is one this shim reads and
    no field is unknown or missing."""
    _check_type("job", data, dict, "a JSON object")
    version = data.get("version")
    if version is None:
        raise JobError("job: missing field 'version'")
    _check_type("job.version", version, int, "an integer")
    if version > FORMAT_VERSION:
        raise JobError("job.version: format {} is newer than this shim understands ({}); ship the shim from the same "
                       "scailfin-exec that wrote the job".format(version, FORMAT_VERSION))
    if version < 1:
        raise JobError("job.version: must be >= 1, got {}".format(version))
    fields = _fields(Job)
    body = {k: v for k, v in data.items() if k != "version"}
    unknown = sorted(_name(k) for k in set(body) - set(fields))
    if unknown:
        raise JobError("job: unknown field(s) {}".format(", ".join(unknown)))
    missing = [k for k, default in fields.items() if default is _REQUIRED and k not in body]
    if missing:
        raise JobError("job: missing field(s) {}".format(", ".join(missing)))
    return body


def _image(image: Any) -> str:
    _check_type("job.image", image, str, "an image reference or path")
    if os.path.isabs(image):
        return _abs("job.image", image, root_allowed=False)
    from .references import ReferenceError, parse_reference  # the worker's grammar, here too
    try:
        parse_reference(image)
    except ReferenceError as e:
        raise JobError("job.image: {}".format(e))
    return image


def _paths(body: Dict[str, Any]) -> None:
    """The workspace, stdio, binds, inputs, outputs and staged copies: absolute and normalised."""
    body["workspace"] = _abs("job.workspace", body["workspace"], root_allowed=False)
    for key in ("stdin", "stdout", "stderr", "workdir"):
        if body.get(key) is not None:
            body[key] = _abs("job." + key, body[key])
    binds = []
    _check_type("job.binds", body.get("binds", []), list, "a list of binds")
    for i, b in enumerate(body.get("binds", [])):
        where = "job.binds[{}]".format(i)
        b = _nested(where, Bind, b)
        _check_type(where + ".writable", b.writable, bool, "true or false")
        _check_type(where + ".on_worker", b.on_worker, bool, "true or false")
        binds.append(Bind(_abs(where + ".source", b.source, root_allowed=False),
                          _abs(where + ".target", b.target, root_allowed=False), b.writable, b.on_worker))
    body["binds"] = binds
    body["inputs"] = [_abs("job.inputs[{}]".format(i), p, root_allowed=False)
                      for i, p in enumerate(_str_list("job.inputs", body.get("inputs", [])))]
    writable = [b.source for b in binds if b.writable and not b.on_worker]
    body["outputs"] = _outputs(body["workspace"], writable, _str_list("job.outputs", body.get("outputs", ["."])))
    staged = {}
    for original, relative in _str_dict("job.staged", body.get("staged", {})).items():
        if not relative or os.path.isabs(relative) or ".." in relative.split("/"):
            raise JobError("job.staged[{}]: must be a path inside the scratch directory, got {}".format(
                _short(original), _short(relative)))
        staged[_abs("job.staged", original, root_allowed=False)] = relative
    body["staged"] = staged
    body["archives"] = {_abs("job.archives", directory, root_allowed=False): _abs("job.archives", archive,
                                                                                  root_allowed=False)
                        for directory, archive in _str_dict("job.archives", body.get("archives", {})).items()}


def check_runtime_names(where: str, names: List[str]) -> List[str]:
    """Every name must be a registered runtime (worker/runtimes)."""
    from .runtimes import RUNTIMES, default_order
    for name in names:
        if name not in RUNTIMES:
            raise JobError("{}: unknown runtime {} (known: {})".format(where, _short(name), ", ".join(default_order())))
    return names


def _outputs(workspace: str, writable: List[str], outputs: List[str]) -> List[str]:
    """Outputs are paths inside the workspace (relative to it, or absolute under it), or the
    source of a writable bind, which the step updates in place (CWL's InplaceUpdateRequirement)."""
    result = []
    for i, path in enumerate(outputs):
        where = "job.outputs[{}]".format(i)
        full = normalise(os.path.join(workspace, path))
        if not inside(full, workspace) and full not in writable:
            raise JobError("{}: {} is outside the workspace {} and is no writable bind's source".format(
                where, _short(path), workspace))
        result.append(full)
    return result


def updated_in_place(job: Job) -> List[str]:
    """The declared outputs outside the workspace: writable binds' sources, updated in place by the
    step, which come back where they are."""
    return [path for path in job.outputs if not inside(path, job.workspace)]


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


def _no_constant(name: str):
    raise ValueError("{} is not a number JSON allows".format(name))


def loads(text: str) -> Any:
    """Strict JSON: no NaN or Infinity, and no nesting deep enough to exhaust the stack."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply")


def load_job(path: str) -> Job:
    """Read and validate a job file; JobError names the file and the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            data = loads(f.read())
    except OSError as e:
        raise JobError("{}: cannot read job file: {}".format(path, e.strerror or e))
    except ValueError as e:  # UnicodeDecodeError too
        raise JobError("{}: not valid JSON: {}".format(path, _short(str(e))[1:-1]))
    try:
        return job_from_dict(data)
    except JobError as e:
        raise JobError("{}: {}".format(path, e))
