# scailfin-cwl's --cachedir: cwltool's layout (CACHEDIR/KEY/ and KEY.status, resume.py) and its
# CallbackJob for a step found there, with a key made of what decides the step's result and of
# nothing that changes from run to run. cwltool's own key takes the command line as this run lays
# it out (our steps see their files at per-run host paths, so it never matched twice), the image
# by its tag, and the EnvVarRequirement unevaluated. Ours takes the command line laid out at fixed
# container paths, the inputs by content (not by where they are), the image by the digest this run
# pins it to, the environment the step gets (evaluated, with what --preserve-environment passes),
# and the requirements in effect, inherited ones included.

from __future__ import annotations

import logging
from functools import partial

from cwltool.command_line_tool import CallbackJob, check_adjust
from cwltool.flatten import flatten
from cwltool.job import JobBase
from cwltool.process import compute_checksums, shortname, uniquename
from cwltool.utils import visit_files, visit_files_directories
from schema_salad.ref_resolver import uri_file_path

from .. import resume

_logger = logging.getLogger("cwltool")
# where a step's directories are when its key is computed (cwltool's own container layout)
KEY_OUTDIR, KEY_TMPDIR, KEY_STAGEDIR = "/var/spool/cwl", "/tmp", "/var/lib/cwl"  # noqa: S108
# the requirements (and hints) whose value in effect changes what a step does
RESULT_REQUIREMENTS = ("DockerRequirement", "EnvVarRequirement", "InitialWorkDirRequirement", "ShellCommandRequirement",
                       "NetworkAccess", "InplaceUpdateRequirement", "InlineJavascriptRequirement",
                       "SchemaDefRequirement", "LoadListingRequirement", "SoftwareRequirement",
                       "http://commonwl.org/cwltool#CUDARequirement")
SECRETS = "http://commonwl.org/cwltool#Secrets"


def reuse_enabled(tool) -> bool:
    """Whether the step may be taken from the cache: not with WorkReuse disabled, nor with secret
    inputs (cwltool hands the step a placeholder per run: no key would ever match, and none may
    hold a secret)."""
    requirement, _ = tool.get_requirement("WorkReuse")
    if requirement and not requirement.get("enableReuse", True):
        return False
    secrets, _ = tool.get_requirement(SECRETS)
    if secrets:
        if not getattr(tool, "said_uncached", False):
            tool.said_uncached = True
            _logger.info("[tool %s] not cached: it has secret inputs (%s)", shortname(tool.tool.get("id", "tool")),
                         ", ".join(shortname(s) for s in secrets.get("secrets", [])))
        return False
    return True


def cached_job(tool, job_order, output_callbacks, runtime_context, run_step):
    """tool.job() with the cache in front: a CallbackJob for a step finished before, else the
    step (run_step: the tool's own job generator) run in its cache entry, which it fills."""
    name = runtime_context.name or shortname(tool.tool.get("id", "job"))  # made unique by cwltool's job, or _hit
    builder = _key_builder(tool, job_order, runtime_context)
    image = _image(tool, runtime_context)
    key = resume.step_key(key_parts(tool, builder, runtime_context, image))
    entry = resume.Entry(runtime_context.cachedir, key)
    if entry.finished or not entry.claim():
        yield _hit(tool, name, entry, builder, output_callbacks)
        return
    _logger.info("[job %s] Output of job will be cached in %s", name, entry.path)
    runtime_context = runtime_context.copy()
    runtime_context.cachedir = None  # this one step: the workflow's context keeps it (outputs are copied out)
    runtime_context.outdir = entry.path
    run = tool.backend.run
    jobs = []

    def finished(outputs, status):
        job_id = getattr(jobs[0], "job_id", "") if jobs else ""
        entry.finish(status, resume.origin_here(tool.backend.workflow, run.settings.run_dir or "", job_id))
        output_callbacks(outputs, status)

    try:
        for job in run_step(job_order, finished, runtime_context):
            jobs.append(job)
            yield job
    except BaseException:
        entry.close()
        raise


def _hit(tool, name, entry, builder, output_callbacks) -> CallbackJob:
    name, origin = uniquename(name), entry.origin()
    _logger.info("[job %s] Using cached output in %s (from %s)", name, entry.path, origin or "an earlier run")
    tool.backend.run.cached(name, str(origin or ""))
    builder.outdir = entry.path  # where the step ran: its outputs' paths are under it
    job = CallbackJob(tool, output_callbacks, builder, entry.path)
    entry.close()  # the outputs are read after this; a run that retakes the entry does so only if it failed
    return job


def _key_builder(tool, job_order, runtime_context):
    """cwltool's Builder for the step laid out at fixed container paths, its input files
    checksummed."""
    context = runtime_context.copy()
    context.outdir, context.tmpdir, context.stagedir = KEY_OUTDIR, KEY_TMPDIR, KEY_STAGEDIR
    context.docker_outdir, context.docker_tmpdir, context.docker_stagedir = KEY_OUTDIR, KEY_TMPDIR, KEY_STAGEDIR
    builder = tool._init_job(job_order, context)
    builder.pathmapper = tool.make_path_mapper(builder.files, builder.stagedir, context, separateDirs=False)
    visit_files_directories([builder.files, builder.bindings], partial(check_adjust, tool.path_check_mode.value,
                                                                       builder))
    visit_files([builder.files, builder.bindings], partial(compute_checksums, context.make_fs_access(context.basedir)))
    tool._initialworkdir(None, builder)  # as cwltool: a bad InitialWorkDir fails here, before the step
    return builder


def key_parts(tool, builder, runtime_context, image: str | None) -> dict:
    """What decides the step's result, as resume.step_key takes it."""
    requirements = {}
    for cls in RESULT_REQUIREMENTS:
        requirement, _ = tool.get_requirement(cls)
        if requirement is not None:
            requirements[cls] = requirement
    return {
        "cmdline": [str(a) for a in flatten(list(map(builder.generate_arg, builder.bindings)))],
        "stdio": {k: tool.tool[k] for k in ("stdin", "stdout", "stderr") if k in tool.tool},
        "inputs": _contents(builder.job),
        "image": tool.backend.run.image_identity(image) if image else None,
        "environment": _environment(tool, builder, runtime_context),
        "requirements": requirements,
    }


def _image(tool, runtime_context) -> str | None:
    """The image the step runs in (as ScailfinJob takes it), None for a step run here."""
    if not runtime_context.use_container:
        return None
    requirement, _ = tool.get_requirement("DockerRequirement")
    if requirement is not None:
        return requirement.get("dockerImageId") or requirement.get("dockerPull")
    return runtime_context.default_container


def _environment(tool, builder, runtime_context) -> dict:
    required = {}
    requirement, _ = tool.get_requirement("EnvVarRequirement")
    for entry in (requirement or {}).get("envDef", []):
        value = entry["envValue"]
        required[entry["envName"]] = builder.do_eval(value) if "$(" in value or "${" in value else value
    return dict(JobBase.extract_environment(runtime_context, required))


def _contents(value):
    """value with every File and Directory replaced by its name and content (not its location)."""
    if isinstance(value, dict):
        if value.get("class") == "File":
            return _file(value)
        if value.get("class") == "Directory":
            return _directory(value)
        return {k: _contents(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_contents(v) for v in value]
    return value


def _file(obj: dict) -> dict:
    out = {"class": "File", "basename": obj.get("basename")}
    if "contents" in obj:
        out["contents"] = obj["contents"]
    elif obj.get("checksum") and obj["checksum"] != "sha1$hash":
        out["checksum"] = obj["checksum"]
    elif str(obj.get("location", "")).startswith("file://"):
        out["checksum"] = resume.file_identity(uri_file_path(obj["location"]))
    else:
        out["location"] = obj.get("location")
    for k in ("format", "secondaryFiles"):
        if k in obj:
            out[k] = _contents(obj[k])
    return out


def _directory(obj: dict) -> dict:
    out = {"class": "Directory", "basename": obj.get("basename")}
    if "listing" in obj:
        out["listing"] = _contents(obj["listing"])
    elif str(obj.get("location", "")).startswith("file://"):
        out["tree"] = resume.tree_identity(uri_file_path(obj["location"]))
    else:
        out["location"] = obj.get("location")
    return out
