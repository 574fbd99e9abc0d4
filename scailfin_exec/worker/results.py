# The result record (job.result.json): what the shim says of one job, typed like the job
# (jobspec.py) and defined once here: the shim writes it, the schedulers, the engines and the
# reports read it. Standard library only, Python >= 3.6 (it crosses the wire with the job).

import json
from typing import Any, Dict, List, NamedTuple, Optional

from .jobspec import FORMAT_VERSION, loads

RESULT_VERSION = 1

# The shim's own failures use these exit codes (payload codes pass through unchanged; the
# record's shim_error says which one it was when in doubt).
EXIT_INTERNAL = 248
EXIT_WALLTIME = 249
EXIT_BAD_JOB = 250  # malformed or invalid job file, or a newer format than this shim knows
EXIT_NO_RUNTIME = 251  # no container runtime in the preference list is usable here
EXIT_IMAGE = 252  # the image was not found or could not be prepared
EXIT_BIND = 253  # the runtime cannot express what the job needs (a bind, a value) or hold its step
EXIT_STAGING = 254  # stage-in or stage-out failed
EXIT_CODES = {
    EXIT_INTERNAL: "internal-error",
    EXIT_WALLTIME: "walltime-exceeded",
    EXIT_BAD_JOB: "bad-job",
    EXIT_NO_RUNTIME: "no-runtime",
    EXIT_IMAGE: "image",
    EXIT_BIND: "bind",
    EXIT_STAGING: "staging",
}


class RecordError(ValueError):
    """A result record that cannot be read: the message says why."""


class RuntimeUsed(NamedTuple):
    name: str
    version: str = ""
    path: str = ""


class ImageUsed(NamedTuple):
    reference: str
    kind: str = ""  # "dir", "sif", "ref" (the runtime's own storage), "shifter"
    location: str = ""  # what the runtime was given
    how: str = ""  # where it came from, in one line


class ShimError(NamedTuple):
    code: int  # the shim's own exit code (248 to 254)
    kind: str  # internal-error, walltime-exceeded, bad-job, no-runtime, image, bind, staging
    message: str


class Staged(NamedTuple):
    method: str  # shared, htcondor, "chirp (parrot)", "chirp (condor_chirp)"
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    notes: List[str] = []


class ResultRecord(NamedTuple):
    exit_code: int  # the payload's, or the shim's own (shim_error says which)
    job_id: Optional[str] = None
    labels: Dict[str, str] = {}
    host: str = ""
    slot: str = ""  # the batch system's slot, where it says (HTCondor: slot1_1@NAME)
    user: str = ""
    python: str = ""
    started: float = 0.0  # seconds since the epoch
    finished: float = 0.0
    cpu_seconds: float = 0.0  # the shim and everything it ran
    timings: Dict[str, float] = {}  # stage_in, detect_runtime, resolve_image, run, stage_out, total
    detection: List[str] = []  # one line per runtime tried
    notes: List[str] = []  # what was adapted, and why
    runtime: Optional[RuntimeUsed] = None
    image: Optional[ImageUsed] = None
    command: Optional[List[str]] = None  # the runtime's command line (secrets shown as "(secret)")
    payload_exit_code: Optional[int] = None
    stopped: Optional[str] = None  # None, "walltime" or "signal" (cancelled, evicted, the shim died)
    shim_error: Optional[ShimError] = None
    stage_in: Optional[Staged] = None
    stage_out: Optional[Staged] = None
    version: int = RESULT_VERSION
    job_format: int = FORMAT_VERSION


_NESTED = {"runtime": RuntimeUsed, "image": ImageUsed, "shim_error": ShimError, "stage_in": Staged,
           "stage_out": Staged}


def record_to_dict(record: ResultRecord) -> Dict[str, Any]:
    data = record._asdict()
    for name in _NESTED:
        if data[name] is not None:
            data[name] = dict(data[name]._asdict())
    return dict(data)


def record_from_dict(data: Any) -> ResultRecord:
    """The record a shim wrote (fields a newer shim adds are left out); RecordError if it is not one."""
    if not isinstance(data, dict):
        raise RecordError("not a JSON object")
    if not isinstance(data.get("exit_code"), int) or isinstance(data.get("exit_code"), bool):
        raise RecordError("no exit code")
    values = {k: v for k, v in data.items() if k in ResultRecord._fields}
    try:
        for name, cls in _NESTED.items():
            if values.get(name) is not None:
                values[name] = cls(**{k: v for k, v in values[name].items() if k in cls._fields})
        return ResultRecord(**values)
    except (TypeError, AttributeError) as e:
        raise RecordError("malformed: {}".format(e))


def result_path_for(job_path: str) -> str:
    """Where the record of a job file goes by default: beside it."""
    base = job_path[:-5] if job_path.endswith(".json") else job_path
    return base + ".result.json"


def dumps(record: ResultRecord) -> str:
    return json.dumps(record_to_dict(record), indent=1, sort_keys=True)


def load_record(path: str) -> ResultRecord:
    """Read a result record; RecordError names the file and the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            return record_from_dict(loads(f.read()))
    except (OSError, ValueError) as e:
        raise RecordError("{}: {}".format(path, getattr(e, "strerror", None) or e))
