# Settings shared by every front end (scailfin-exec, scailfin-cwl, the yadage backend): declared
# once as dataclass fields whose help text becomes the command-line options. Precedence:
# command line > environment variable > YAML config file (--config or SCAILFIN_CONFIG) > default.

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .worker.jobspec import DEFAULT_RUNTIME_ORDER, TRANSFER_MODES, JobError, check_runtime_names


class ConfigError(ValueError):
    """A setting with a value we cannot use; the message names the setting and its source."""


def _setting(default, help, env=None, metavar=None, cli=True, **kw):
    metadata = {"help": help, "env": env, "metavar": metavar, "cli": cli}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


@dataclass
class Settings:
    scheduler: str = _setting("local", "where steps run: 'local' (this machine, no batch system) or 'htcondor'",
                              env="SCAILFIN_SCHEDULER", metavar="NAME")
    runtime: list[str] = _setting([], "container runtime preference on the worker, comma-separated, or 'auto' for the "
                                  "default order " + ",".join(DEFAULT_RUNTIME_ORDER) + " (a worker's own SCAILFIN_RUNTIME "
                                  "applies when this is auto)", env="SCAILFIN_RUNTIME", metavar="LIST")
    transfer: str = _setting("shared", "how the workspace reaches the worker: " + ", ".join(TRANSFER_MODES),
                             env="SCAILFIN_TRANSFER", metavar="MODE")
    image_roots: list[str] = _setting([], "directories laid out like /cvmfs/unpacked.cern.ch "
                                      "(ROOT/registry.hub.docker.com/library/alpine:latest, as a directory, .sif or "
                                      ".tar.gz), searched before any pull; ':'-separated in the environment",
                                      env="SCAILFIN_IMAGE_ROOTS", metavar="DIR")
    image_cache: str | None = _setting(None, "shared directory for prepared images (pulled SIFs, unpacked archives); "
                                       "default on the worker: ~/.cache/scailfin-exec/images",
                                       env="SCAILFIN_IMAGE_CACHE", metavar="DIR")
    pull: bool = _setting(True, "let workers pull images from a registry when no local copy exists",
                          env="SCAILFIN_PULL", metavar="yes|no")
    runtime_options: dict[str, list[str]] = _setting({}, "extra global options per runtime, e.g. "
                                                     "{podman: [--runtime, runc]} (config file only)", cli=False)
    max_parallel: int | None = _setting(None, "steps run at once: local scheduler, default this machine's cores; "
                                        "htcondor, default 1000 (the pool decides)",
                                        env="SCAILFIN_MAX_PARALLEL", metavar="N")
    worker_python: str | None = _setting(None, "Python that runs the worker shim (default: this Python locally, "
                                         "python3 on HTCondor workers)", env="SCAILFIN_WORKER_PYTHON", metavar="PATH")
    run_dir: str | None = _setting(None, "where job files, result records and per-step logs go (default: a new "
                                   "temporary directory, removed after a successful workflow run); a "
                                   "directory an earlier run used keeps that run's jobs beside the new ones",
                                   env="SCAILFIN_RUN_DIR", metavar="DIR")
    # htcondor scheduler: where to submit, and site policy
    pool: str | None = _setting(None, "htcondor: the collector to ask for the schedd (default: the HTCondor "
                                "configuration's COLLECTOR_HOST)", env="SCAILFIN_POOL", metavar="HOST[:PORT]")
    schedd: str | None = _setting(None, "htcondor: the schedd to submit to, by name (default: the pool's only or "
                                  "first schedd)", env="SCAILFIN_SCHEDD", metavar="NAME")
    accounting_group: str | None = _setting(None, "htcondor: accounting_group of every job",
                                            env="SCAILFIN_ACCOUNTING_GROUP", metavar="GROUP")
    requirements: str | None = _setting(None, "htcondor: a requirements expression every job gets (e.g. "
                                        "'HasSingularity')", env="SCAILFIN_REQUIREMENTS", metavar="EXPR")
    submit_commands: dict[str, str] = _setting({}, "htcondor: extra submit commands for every job, e.g. "
                                               "{periodic_remove: 'JobStatus == 5'} (config file only)", cli=False)
    job_attributes: dict[str, str] = _setting({}, "htcondor: extra job ClassAd attributes (+Name = value), values "
                                              "as ClassAd expressions (config file only)", cli=False)
    max_retries: int = _setting(3, "htcondor: how often an evicted job, or one held for a transient reason "
                                "(e.g. a failed transfer), is run again before its step fails",
                                env="SCAILFIN_MAX_RETRIES", metavar="N")
    explicit: set = field(default_factory=set, repr=False, metadata={"cli": False, "internal": True})

    def validate(self) -> "Settings":
        if self.scheduler not in ("local", "htcondor"):
            raise ConfigError(f"scheduler: unknown scheduler {self.scheduler!r} (known: local, htcondor)")
        if self.transfer not in TRANSFER_MODES:
            raise ConfigError(f"transfer: unknown transfer mode {self.transfer!r} (known: {', '.join(TRANSFER_MODES)})")
        if self.runtime == ["auto"]:
            self.runtime = []
        try:
            check_runtime_names("runtime", self.runtime)
            check_runtime_names("runtime_options", list(self.runtime_options))
        except JobError as e:
            raise ConfigError(str(e)) from None
        for name in ("image_roots",):
            for path in getattr(self, name):
                if not os.path.isabs(path):
                    raise ConfigError(f"{name}: {path!r} must be an absolute path")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"max_parallel: must be at least 1, got {self.max_parallel}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries: must be at least 0, got {self.max_retries}")
        if self.accounting_group and not all(c.isalnum() or c in "_.-@" for c in self.accounting_group):
            raise ConfigError(f"accounting_group: {self.accounting_group!r} is not a group name (letters, digits, "
                              "'_', '.', '-', '@')")
        return self


def _settable():
    return [f for f in fields(Settings) if not f.metadata.get("internal")]


def _convert(f, value: Any, source: str):
    """Coerce a value from YAML, the environment or the command line to the field's type."""
    kind = f.type  # a string: this module uses postponed annotations
    try:
        if value is None:
            return None
        if kind.startswith("list"):
            if isinstance(value, str):
                sep = os.pathsep if f.name == "image_roots" else ","
                value = [v.strip() for v in value.split(sep) if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of strings")
            return value
        if kind == "dict[str, list[str]]":
            if not isinstance(value, dict) or not all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                                                      for v in value.values()):
                raise ValueError("expected a mapping of runtime name to a list of options")
            return {str(k): list(v) for k, v in value.items()}
        if kind.startswith("dict"):
            if not isinstance(value, dict) or not all(isinstance(v, (str, int, float, bool)) for v in value.values()):
                raise ValueError("expected a mapping of names to values")
            return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}
        if kind == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("1", "yes", "true", "on", "always"):
                return True
            if lowered in ("0", "no", "false", "off", "never"):
                return False
            raise ValueError("expected yes or no")
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{f.name} (from {source}): {e}, got {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser, group_title: str = "scailfin-exec options",
                  only: tuple[str, ...] | None = None) -> None:
    """Add one --option per setting (or those named in `only`), plus --config, to a parser."""
    group = parser.add_argument_group(group_title)
    group.add_argument("--config", metavar="FILE", help="YAML file with any of the settings below as keys "
                       "(default: $SCAILFIN_CONFIG if set)")
    for f in _settable():
        if not f.metadata["cli"] or (only is not None and f.name not in only):
            continue
        env = f.metadata["env"]
        help_text = f.metadata["help"] + (f" (environment: {env})" if env else "")
        group.add_argument("--" + f.name.replace("_", "-"), dest="scailfin_" + f.name, metavar=f.metadata["metavar"],
                           default=None, help=help_text, action="append" if f.name == "image_roots" else "store")


def load_yaml(path: str) -> dict:
    from ruamel.yaml import YAML, YAMLError

    try:
        with open(path, encoding="utf-8") as fh:
            data = YAML(typ="safe").load(fh) or {}
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    except YAMLError as e:
        raise ConfigError(f"config file {path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a mapping of setting names to values")
    return data


def load_settings(args: argparse.Namespace | None = None, environ=None, config_file: str | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    path = config_file or (getattr(args, "config", None) if args else None) or environ.get("SCAILFIN_CONFIG")
    known = {f.name: f for f in _settable()}
    if path:
        data = load_yaml(path)
        unknown = sorted(set(k.replace("-", "_") for k in data) - set(known))
        if unknown:
            raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        for key, value in data.items():
            name = key.replace("-", "_")
            values[name] = _convert(known[name], value, path)
            explicit.add(name)
    for f in known.values():
        env = f.metadata["env"]
        if env and environ.get(env) not in (None, ""):
            values[f.name] = _convert(f, environ[env], "$" + env)
            explicit.add(f.name)
        cli = getattr(args, "scailfin_" + f.name, None) if args else None
        if cli is not None:
            if f.name == "image_roots":
                cli = [p for item in cli for p in item.split(os.pathsep) if p]
            values[f.name] = _convert(f, cli, "--" + f.name.replace("_", "-"))
            explicit.add(f.name)
    return Settings(**values, explicit=explicit).validate()


def settings_from_options(options: dict, environ=None) -> Settings:
    """Settings for engines configured by key=value options (yadage's -k): the YAML file named by
    `config` (or $SCAILFIN_CONFIG), then the environment, then the options themselves."""
    options = dict(options)
    settings = load_settings(None, environ, config_file=options.pop("config", None))
    known = {f.name: f for f in _settable()}
    unknown = sorted(set(k.replace("-", "_") for k in options) - set(known))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} (known: config, {', '.join(sorted(known))})")
    for key, value in options.items():
        name = key.replace("-", "_")
        setattr(settings, name, _convert(known[name], value, f"option {key}"))
        settings.explicit.add(name)
    return settings.validate()
