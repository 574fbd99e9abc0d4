# Settings shared by every front end (scailfin-exec, scailfin-cwl, the yadage backend): declared
# once as dataclass fields whose help text becomes the command-line options; each scheduler
# declares its own the same way (its module's Settings class), read from the same file,
# environment and command line. Precedence: command line > environment variable > YAML config
# file (--config or SCAILFIN_CONFIG) > default.

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .worker.jobspec import JobError, check_runtime_names
from .worker.runtimes import default_order
from .worker.transfers import MODES as TRANSFER_MODES


class ConfigError(ValueError):
    """A setting with a value we cannot use; the message names the setting and its source."""


def setting(default, help, env=None, metavar=None, cli=True, **kw):
    """A settings field: its default, the help text its option shows, its environment variable."""
    metadata = {"help": help, "env": env, "metavar": metavar, "cli": cli}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


@dataclass
class Settings:
    scheduler: str = setting("local", "where steps run (default: local)", env="SCAILFIN_SCHEDULER", metavar="NAME")
    runtime: list[str] = setting([], "container runtime preference on the worker, comma-separated, or 'auto' for the "
                                 "default order " + ",".join(default_order()) + " (a worker's own SCAILFIN_RUNTIME "
                                 "applies when this is auto)", env="SCAILFIN_RUNTIME", metavar="LIST")
    transfer: str = setting("shared", "how the workspace reaches the worker: " + ", ".join(TRANSFER_MODES) +
                            " (each scheduler takes some of them)", env="SCAILFIN_TRANSFER", metavar="MODE")
    image_roots: list[str] = setting([], "directories laid out like /cvmfs/unpacked.cern.ch "
                                     "(ROOT/registry.hub.docker.com/library/alpine:latest, as a directory, .sif or "
                                     ".tar.gz), searched before any pull; ':'-separated in the environment",
                                     env="SCAILFIN_IMAGE_ROOTS", metavar="DIR")
    image_cache: str | None = setting(None, "shared directory for prepared images (pulled SIFs, unpacked archives); "
                                      "default on the worker: ~/.cache/scailfin-exec/images",
                                      env="SCAILFIN_IMAGE_CACHE", metavar="DIR")
    pull: bool = setting(True, "let workers pull images from a registry when no local copy exists",
                         env="SCAILFIN_PULL", metavar="yes|no")
    registry_auth: str | None = setting(None, "login file with credentials for private registries, as `podman login` "
                                        "or `docker login` write it; default: $REGISTRY_AUTH_FILE, "
                                        "$XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json, the first that "
                                        "exists. Each job gets only its image's registry's entry, as a private file",
                                        env="SCAILFIN_REGISTRY_AUTH", metavar="FILE")
    runtime_options: dict[str, list[str]] = setting({}, "extra global options per runtime, e.g. "
                                                    "{podman: [--runtime, runc]} (config file only)", cli=False)
    max_parallel: int | None = setting(None, "steps run at once: local scheduler, default this machine's cores; "
                                       "htcondor, default 1000 (the pool decides)",
                                       env="SCAILFIN_MAX_PARALLEL", metavar="N")
    worker_python: str | None = setting(None, "Python that runs the worker shim (default: this Python locally, "
                                        "python3 on batch workers)", env="SCAILFIN_WORKER_PYTHON", metavar="PATH")
    run_dir: str | None = setting(None, "where job files, result records and per-step logs go (default: a new "
                                  "temporary directory, removed after a successful workflow run); a "
                                  "directory an earlier run used keeps that run's jobs beside the new ones",
                                  env="SCAILFIN_RUN_DIR", metavar="DIR")
    report: str | None = setting(None, "write an HTML report of the run there when it ends (summary, a timeline "
                                 "of every step's phases, a sortable table of the steps; works offline); "
                                 "`scailfin-exec report RUN_DIR` makes one afterwards", env="SCAILFIN_REPORT",
                                 metavar="FILE")
    trace: str | None = setting(None, "write one tab-separated row per step there as each step ends (name, ids, "
                                "state, exit code, times, each phase's seconds, CPU, bytes, runtime, image, host); "
                                "RUN_DIR/trace.tsv always has them", env="SCAILFIN_TRACE", metavar="FILE")
    progress: bool = setting(True, "show progress on stderr: a live bar on a terminal, else a one-line summary at "
                             "most every 10 s", env="SCAILFIN_PROGRESS", metavar="yes|no")
    pilots: dict = setting({}, "the pilots' own settings (`scailfin-exec pilots --help` names them), e.g. "
                           "{cpus: 8, memory: 16000, max: 20} (config file only)", cli=False)
    explicit: set = field(default_factory=set, repr=False, metadata={"cli": False, "internal": True})
    # each scheduler's own settings (its options_class), by scheduler name
    schedulers: dict = field(default_factory=dict, repr=False, metadata={"cli": False, "internal": True})

    def of(self, scheduler: str):
        """That scheduler's own settings (an instance of its options_class), or None if it has none."""
        from .schedulers import scheduler_class

        cls = scheduler_class(scheduler).options_class
        if cls is not None and scheduler not in self.schedulers:
            self.schedulers[scheduler] = cls()
        return self.schedulers.get(scheduler)

    def validate(self) -> "Settings":
        from .schedulers import SCHEDULERS, scheduler_class

        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler: unknown scheduler {self.scheduler!r} (known: {', '.join(SCHEDULERS)})")
        if self.transfer not in TRANSFER_MODES:
            raise ConfigError(f"transfer: unknown transfer mode {self.transfer!r} (known: {', '.join(TRANSFER_MODES)})")
        supported = scheduler_class(self.scheduler).transfers
        if self.transfer not in supported:
            works = [f"scheduler: {name} with transfer: {mode}" for name in SCHEDULERS
                     for mode in scheduler_class(name).transfers if mode == self.transfer or name == self.scheduler]
            raise ConfigError(f"transfer: the {self.scheduler} scheduler cannot use transfer mode {self.transfer!r} "
                              f"(it takes {', '.join(supported)}); what would work: {'; '.join(works)}")
        if self.runtime == ["auto"]:
            self.runtime = []
        try:
            check_runtime_names("runtime", self.runtime)
            check_runtime_names("runtime_options", list(self.runtime_options))
        except JobError as e:
            raise ConfigError(str(e)) from None
        if self.registry_auth is not None and not os.path.isfile(self.registry_auth):
            raise ConfigError(f"registry_auth: {self.registry_auth!r} is not a file")
        for path in self.image_roots:
            if not os.path.isabs(path):
                raise ConfigError(f"image_roots: {path!r} must be an absolute path")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"max_parallel: must be at least 1, got {self.max_parallel}")
        for name in SCHEDULERS:
            options = self.of(name)
            if options is not None and hasattr(options, "validate"):
                try:
                    options.validate()
                except ValueError as e:
                    raise ConfigError(str(e)) from None
        return self


def _declared() -> dict[str, tuple[Any, Any]]:
    """Every setting by name: (the field, the scheduler it belongs to or None for a global one)."""
    from .schedulers import SCHEDULERS, scheduler_class

    found = {f.name: (f, None) for f in fields(Settings) if not f.metadata.get("internal")}
    for name in SCHEDULERS:
        cls = scheduler_class(name).options_class
        for f in fields(cls) if cls is not None else ():
            found[f.name] = (f, name)
    return found


def setting_names() -> list[str]:
    """Every setting's name, global and each scheduler's."""
    return list(_declared())


def _convert(f, value: Any, source: str):
    """Coerce a value from YAML, the environment or the command line to the field's type."""
    kind = f.type  # a string: this module (and the schedulers') use postponed annotations
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
            return _boolean(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{f.name} (from {source}): {e}, got {value!r}") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "yes", "true", "on", "always"):
        return True
    if lowered in ("0", "no", "false", "off", "never"):
        return False
    raise ValueError("expected yes or no")


def add_arguments(parser: argparse.ArgumentParser, group_title: str = "scailfin-exec options",
                  only: tuple[str, ...] | None = None) -> None:
    """Add one --option per setting (or those named in `only`), plus --config, to a parser: the
    global ones in one group, each scheduler's in a group of its own."""
    from .schedulers import SCHEDULERS, scheduler_class

    groups = {None: parser.add_argument_group(group_title)}
    groups[None].add_argument("--config", metavar="FILE", help="YAML file with any of the settings below as keys "
                              "(default: $SCAILFIN_CONFIG if set)")
    for name, (f, owner) in _declared().items():
        if not f.metadata["cli"] or (only is not None and name not in only):
            continue
        if owner not in groups:
            groups[owner] = parser.add_argument_group(f"{owner} scheduler options ({scheduler_class(owner).help})")
        extra = ""
        if name == "scheduler":  # what the registry holds, and the transfer modes each takes
            extra = "; one of: " + "; ".join(
                f"{s} ({scheduler_class(s).help}; transfer {', '.join(scheduler_class(s).transfers)})" for s in SCHEDULERS)
        _add_option(groups[owner], f, extra)


def _add_option(group, f, extra: str = "") -> None:
    env = f.metadata["env"]
    group.add_argument("--" + f.name.replace("_", "-"), dest="scailfin_" + f.name, metavar=f.metadata["metavar"],
                       default=None, help=f.metadata["help"] + (f" (environment: {env})" if env else "") + extra,
                       action="append" if f.name == "image_roots" else "store")


def add_group_arguments(parser: argparse.ArgumentParser, cls, title: str) -> None:
    """One --option per field of a settings group of its own (e.g. the pilots'), under `title`."""
    group = parser.add_argument_group(title)
    for f in fields(cls):
        if f.metadata.get("cli"):
            _add_option(group, f)


def load_group(cls, mapping: dict, source: str, args: argparse.Namespace | None = None, environ=None):
    """A settings group of its own (a dataclass of setting() fields) from a mapping in the config
    file (its values as _convert left them), then its environment variables, then the command line."""
    environ = os.environ if environ is None else environ
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(str(k).replace("-", "_") for k in mapping) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    group = cls()
    for key, value in mapping.items():
        setattr(group, key.replace("-", "_"), _convert(known[key.replace("-", "_")], value, source))
    for name, f in known.items():
        for value in _overrides(f, environ, args):
            setattr(group, name, value)
    try:
        return group.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None


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


def _assign(settings: Settings, name: str, value: Any) -> None:
    f, owner = _declared()[name]
    setattr(settings if owner is None else settings.of(owner), name, value)
    settings.explicit.add(name)


def load_settings(args: argparse.Namespace | None = None, environ=None, config_file: str | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    settings = Settings()
    path = config_file or (getattr(args, "config", None) if args else None) or environ.get("SCAILFIN_CONFIG")
    known = _declared()
    if path:
        data = load_yaml(path)
        unknown = sorted(set(str(k).replace("-", "_") for k in data) - set(known))
        if unknown:
            raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        for key, value in data.items():
            name = key.replace("-", "_")
            _assign(settings, name, _convert(known[name][0], value, path))
    for name, (f, _) in known.items():
        for value in _overrides(f, environ, args):
            _assign(settings, name, value)
    return settings.validate()


def _overrides(f, environ, args):
    """A setting's values from its environment variable, then from the command line (the later wins)."""
    env = f.metadata["env"]
    if env and environ.get(env) not in (None, ""):
        yield _convert(f, environ[env], "$" + env)
    cli = getattr(args, "scailfin_" + f.name, None) if args else None
    if cli is not None:
        if f.name == "image_roots":
            cli = [p for item in cli for p in item.split(os.pathsep) if p]
        yield _convert(f, cli, "--" + f.name.replace("_", "-"))


def settings_from_options(options: dict, environ=None) -> Settings:
    """Settings for engines configured by key=value options (yadage's -k): the YAML file named by
    `config` (or $SCAILFIN_CONFIG), then the environment, then the options themselves."""
    options = dict(options)
    settings = load_settings(None, environ, config_file=options.pop("config", None))
    known = _declared()
    unknown = sorted(set(k.replace("-", "_") for k in options) - set(known))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} (known: config, {', '.join(sorted(known))})")
    for key, value in options.items():
        name = key.replace("-", "_")
        _assign(settings, name, _convert(known[name][0], value, f"option {key}"))
    return settings.validate()
