# A job description carried in an HTCondor job ad, both halves of the format: the htcondor
# scheduler writes the fields a batch's jobs share once in AD_BASE (the cluster ad) and each job's
# own in AD_OWN, each JSON in base64 (no ClassAd escaping to get wrong); the shim (--job-ad) reads
# them back from the .job.ad file the starter writes. Standard library only, Python >= 3.6.

import base64
import binascii
import json

from .jobspec import Job, JobError, _short, job_from_dict, loads

AD_BASE, AD_OWN = "ScailfinJobBase", "ScailfinJob"


def encoded(fields: dict) -> str:
    """Part of a job description (job_to_dict's fields) as a ClassAd string value."""
    return '"' + base64.b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode() + '"'


def load_job_ad(path: str) -> Job:
    """Read and validate the job description in a job ad file: AD_BASE's fields, then AD_OWN's."""
    found = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(" = ")
                if name in (AD_BASE, AD_OWN):
                    found[name] = value.strip()
    except OSError as e:
        raise JobError("{}: cannot read the job ad: {}".format(path, e.strerror or e))
    data = {}
    for name in (AD_BASE, AD_OWN):
        value = found.get(name, "")
        if len(value) < 3 or value[0] != '"' or value[-1] != '"':
            raise JobError("{}: the job ad has no job description ({} = {})".format(
                path, name, _short(value or "nothing")))
        try:
            part = loads(base64.b64decode(value[1:-1], validate=True).decode("utf-8"))
        except (binascii.Error, ValueError) as e:
            raise JobError("{}: {} is not a job description: {}".format(path, name, _short(str(e))[1:-1]))
        if not isinstance(part, dict):
            raise JobError("{}: {} is not a job description (not a JSON object)".format(path, name))
        data.update(part)
    try:
        return job_from_dict(data)
    except JobError as e:
        raise JobError("{}: {}".format(path, e))
