# yadage/packtivity through scailfin-exec: an asynchronous packtivity backend that turns each
# docker-encapsulated step into a job description (with packtivity's own process handlers) and
# runs it through a scailfin-exec scheduler; packtivity's own publishers then read its outputs.
#
#   yadage-run -b py:scailfin_exec.yadage:Backend -k scheduler=htcondor -k transfer=chirp WORKDIR WORKFLOW
#   PACKTIVITY_ASYNCBACKEND=scailfin_exec.yadage:Backend:Proxy yadage-run -b fromenv WORKDIR WORKFLOW
#
# Options (-k, or Backend(**options)) are the keys of scailfin-cwl's config file (scheduler,
# transfer, runtime, image_roots, pull, ...), plus `config` (a YAML file of them).

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import uuid

from packtivity.asyncbackends import PacktivityProxyBase
from packtivity.statecontexts import load_state
from packtivity.syncbackends import acquire_job_env, finalize_inputs, finalize_outputs, packconfig, prepublish, publish
from packtivity import datamodel as _datamodel

from ..config import ConfigError, Settings, settings_from_options
from ..job import Bind, Job, Resources, Result, read_result
from ..run import Run
from ..schedulers import Scheduler
from . import packtivityfix

log = logging.getLogger(__name__)
__all__ = ["Backend", "Proxy"]
packtivityfix.install()  # packtivity's state model in one pass, its jq programs compiled once, its cache mended


class Proxy(PacktivityProxyBase):
    """A submitted step, as yadage keeps it (and writes it to its snapshot): enough to find the
    job's result record after a restart, and to submit the step again if it never finished."""

    def __init__(self, job_id, result_file, step, spec, statedata, pardata, metadata=None, resultdata=None):
        super().__init__()
        self.job_id, self.result_file, self.step = job_id, result_file, step
        self.spec, self.statedata, self.pardata = spec, statedata, pardata
        self.metadata = metadata or {}
        self.resultdata = resultdata

    def proxyname(self):
        return "ScailfinProxy"

    def details(self):
        return {"job_id": self.job_id, "result_file": self.result_file, "step": self.step, "spec": self.spec,
                "statedata": self.statedata, "pardata": self.pardata, "metadata": self.metadata,
                "resultdata": self.resultdata}

    @classmethod
    def fromJSON(cls, data):
        if data.get("proxyname") != "ScailfinProxy":
            # PACKTIVITY_ASYNCBACKEND sends every proxy of the workflow here, also yadage's own
            # (its init node's ForegroundProxy): hand those to packtivity's loaders
            from packtivity.backendutils import proxyhandlers

            return proxyhandlers[data["proxyname"]]["default"](data, {}, False)
        return cls(**data["proxydetails"])


class Backend:
    """packtivity's asynchronous backend interface (submit, ready, successful, result, fail_info,
    prepublish) over a scailfin-exec scheduler."""

    def __init__(self, **options):
        try:
            self.settings: Settings = settings_from_options(options)
        except ConfigError as e:
            raise RuntimeError(f"scailfin-exec yadage backend: {e}") from None
        self.pack_config = packconfig()
        self.run = Run(self.settings, name="yadage", log=log)
        self._handles = {}  # job id -> scheduler handle (this process's submissions)
        self._results: dict[str, Result] = {}
        self._lock = threading.Lock()
        self._run = uuid.uuid4().hex[:8]  # in job ids: a resumed run's jobs are not an earlier process's
        self._exit_registered = False

    @property
    def scheduler(self) -> Scheduler:
        self._close_at_exit()
        return self.run.scheduler

    def _close_at_exit(self) -> None:
        """Once: an interrupted yadage-run leaves no job of the run behind."""
        with self._lock:
            if not self._exit_registered:
                atexit.register(self.close)
                self._exit_registered = True

    # -- packtivity's interface ----------------------------------------------------------------

    def prepublish(self, spec, parameters, state):
        return prepublish(spec, parameters, state, self.pack_config)

    def submit(self, spec, parameters, state, metadata=None):
        metadata = metadata or {"name": "packtivity"}
        proxy = Proxy(None, None, metadata.get("name", "step"), spec, state.json(), parameters.json(), metadata)
        self._submit(proxy)
        return proxy

    def ready(self, proxy) -> bool:
        # yadage asks every ~20 ms: answered from memory, or from the record on disk
        result = self._result(proxy)
        return result is not None

    def successful(self, proxy) -> bool:
        result = self._result(proxy)
        return result is not None and result.ok

    def result(self, proxy):
        state = load_state(proxy.statedata, {})
        if proxy.resultdata is not None:
            return _datamodel.create(proxy.resultdata, state.datamodel)
        parameters, state = finalize_inputs(_datamodel.create(proxy.pardata, state.datamodel), state)
        pubdata = finalize_outputs(publish(proxy.spec["publisher"], parameters, state, self.pack_config))
        proxy.resultdata = pubdata.json()
        return pubdata

    def fail_info(self, proxy):
        result = self._results.get(proxy.job_id)
        if result is None:
            return "not finished"
        message = f"step {proxy.step} ({proxy.job_id}) failed: {result.reason()}"
        tail = result.stderr_tail(10)
        log.error("%s\n  last lines of its stderr:\n%s", message, "\n".join("    " + line for line in tail.splitlines()))
        return message

    def step_cached(self, step: str, origin: str) -> None:
        """yadage's checksum cache answered the step (packtivityfix.py): the run shows it as cached."""
        self._close_at_exit()
        self.run.cached(step, origin)

    # -- underneath ----------------------------------------------------------------------------

    def _submit(self, proxy: Proxy) -> None:
        state = load_state(proxy.statedata, {})
        parameters = _datamodel.create(proxy.pardata, state.datamodel)
        parameters, state = finalize_inputs(parameters, state)
        job_spec, environment = acquire_job_env(proxy.spec, parameters, state, proxy.metadata, self.pack_config)
        if not job_spec or environment.get("environment_type") != "docker-encapsulated":
            raise RuntimeError(f"step {proxy.step}: scailfin-exec runs docker-encapsulated steps, not "
                               f"{(environment or {}).get('environment_type')!r}")
        job_id = self.run.job_id(f"{proxy.step[:70]}-{self._run}")
        job = self._describe(job_id, proxy.step, job_spec, environment, state)
        self._close_at_exit()
        handle = self.run.submit(job)
        proxy.job_id, proxy.result_file = job_id, handle.result_file
        self._handles[job_id] = handle
        log.info("step %s submitted to the %s scheduler as %s (%s)", proxy.step, self.scheduler.name, job_id,
                 handle.job.image)

    def _result(self, proxy: Proxy) -> Result | None:
        if proxy.job_id in self._results:
            return self._results[proxy.job_id]
        handle = self._handles.get(proxy.job_id)
        if handle is not None:
            result = self.scheduler.poll(handle)
        elif proxy.result_file and os.path.exists(proxy.result_file) and \
                _ended_by_itself(read_result(proxy.job_id, proxy.result_file, None)):
            result = read_result(proxy.job_id, proxy.result_file, None)  # it finished before a restart
        else:  # submitted by an earlier run that did not see it finish (or stopped it): run it again
            log.info("step %s (%s) did not finish before the restart: submitting it again", proxy.step, proxy.job_id)
            self._submit(proxy)
            return None
        if result is not None:
            self._results[proxy.job_id] = result
            if result.ok:
                log.info("step %s: %s", proxy.step, result.describe())
            else:  # yadage itself only says "reason: unknown"
                self.fail_info(proxy)
        return result

    def _describe(self, job_id: str, step: str, job_spec: dict, environment: dict, state) -> Job:
        workspace = os.path.abspath(state.readwrite[0])
        for directory in list(state.readwrite) + list(state.readonly):  # as docker would create them
            os.makedirs(directory, exist_ok=True)
        envscript = environment.get("envscript") or ""
        prefix = f"source {envscript} && " if envscript else ""
        script = None
        if "command" in job_spec:
            argv = ["sh", "-c", prefix + job_spec["command"]]
        elif "script" in job_spec:
            argv, script = ["sh", "-c", prefix + job_spec["interpreter"]], job_spec["script"]
        else:
            raise RuntimeError(f"step {step}: no command or script to run")
        # every state directory at its own absolute path; the read-only ones read-only
        binds = [Bind(os.path.abspath(d), os.path.abspath(d), True) for d in state.readwrite[1:]]
        binds += [Bind(os.path.abspath(d), os.path.abspath(d), False) for d in state.readonly]
        for number, mount in enumerate(environment.get("par_mounts") or []):
            path = os.path.join(workspace, f"_yadage_parmount_{number}.txt")
            with open(path, "w") as f:
                f.write(mount["mountcontent"])
            binds.append(Bind(path, mount["mountpath"], False))
        for resource in environment.get("resources") or []:
            if resource == "CVMFS" or (isinstance(resource, dict) and "cvmfs" in str(resource).lower()):
                binds.append(Bind("/cvmfs", "/cvmfs", False, on_worker=True))
            else:
                log.warning("step %s: resource %s is not provided by scailfin-exec; the step runs without it",
                            step, json.dumps(resource))
        image = environment["image"]
        tag = environment.get("imagetag") or "latest"
        return self.run.job(
            job_id, image if "@" in image else f"{image}:{tag}", argv, workspace,
            script=script,
            workdir=environment.get("workdir") or workspace,
            binds=binds,
            env={str(k): str(v) for k, v in (environment.get("env") or {}).items()},
            outputs=[workspace],
            resources=Resources(),
            labels={"workflow": "yadage", "step": step},
        )

    def close(self) -> None:
        self.run.close()


def _ended_by_itself(result: Result) -> bool:
    """A record of a step that ended on its own (not stopped by an interruption)."""
    return result.record is not None and result.record.stopped != "signal"

