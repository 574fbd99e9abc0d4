# Container runtimes on the worker, one module each (apptainer, charliecloud, podman, shifter,
# sarus): a runtime says whether it is usable on this node (and why not), finds or prepares an
# image in a form it runs, builds the command line from the same inputs (image, binds, working
# directory, environment, GPUs), and says how the keeper holds its step (keeper.py). They are
# found through one registry: a name that is not registered cannot be configured.
# Standard library only (worker side).

import importlib
import os
import re
import shutil
from typing import Dict, List, NamedTuple, Optional, Tuple

from .. import procs
from ..images import ResolvedImage
from ..jobspec import Bind

# the modules holding the runtimes, each registering its own (a new runtime is a new module here)
MODULES = ("apptainer", "charliecloud", "podman", "shifter", "sarus")
RUNTIMES = {}  # type: Dict[str, ContainerRuntime]

# What a container sees when the image says nothing: Docker's default PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BindError(Exception):
    """The runtime cannot express what the job needs: a path where it must be mounted (forbidden
    target, bad syntax), or an environment value it would not pass byte for byte."""


class Detection(NamedTuple):
    name: str
    usable: bool
    version: str = ""
    path: str = ""
    reason: str = ""  # why unusable, or a remark when usable

    def line(self) -> str:
        if self.usable:
            return "{}: found {} ({}){}".format(self.name, self.version or "(version unknown)", self.path,
                                               "; " + self.reason if self.reason else "")
        return "{}: {}".format(self.name, self.reason)


class RunSpec(NamedTuple):
    image: ResolvedImage
    argv: List[str]
    binds: List[Bind]
    workdir: str
    env: Dict[str, str]
    gpus: int = 0
    interactive: bool = False  # the payload reads stdin
    network: bool = False
    options: List[str] = []  # extra global options for the runtime (site quirks)
    entrypoint: bool = False  # honour the image's ENTRYPOINT (docker run semantics)
    scratch: str = "/nonexistent"  # a private directory of the job's, for the keeper's mount points
    name: str = "scailfin"  # a unique name for the container, where the runtime names them


class Invocation(NamedTuple):
    argv: List[str]
    env: Dict[str, str]  # the runtime process's own environment
    notes: List[str]  # what the adapter had to adapt, for the result record
    contain: str = "subreaper"  # how the keeper holds the step: namespace, subreaper or runtime
    binds: List[Tuple[str, str, bool]] = []  # namespace: (source, mount point, writable) made by the keeper
    mount_points: List[Tuple[str, str, bool]] = []  # namespace: (root, path, is a directory) to make
    image: Optional[str] = None  # namespace: the image, where mount points are made on a private layer
    area: Optional[str] = None  # namespace: where the keeper's mount points go
    cleanup: List[List[str]] = []  # runtime: commands that remove a container a stopped client left


class ContainerRuntime:
    """One container runtime; a subclass sets name, program and preference, and overrides
    resolve() and command() (and check() or bind_problem() where it has more to say)."""
    name = ""
    program = ""
    version_args = ["--version"]
    # the default order tries lower numbers first: daemonless HPC runtimes before Podman, Docker last
    preference = 100

    def detect(self, environ) -> Detection:
        path = shutil.which(self.program, path=environ.get("PATH", os.defpath))
        if path is None:
            return Detection(self.name, False, reason="{} not on PATH".format(self.program))
        out = procs.version_output(path, self.version_args, environ)
        if out.returncode != 0:
            return Detection(self.name, False, path=path,
                             reason="{} {} failed (exit {}): {}".format(path, " ".join(self.version_args), out.returncode, out.tail(1)))
        match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out.text)
        return self.check(Detection(self.name, True, match.group(1) if match else out.text[:40], path), out.text, environ)

    def check(self, found: Detection, version_text: str, environ) -> Detection:
        """Further checks once the program answered; subclasses refine usability."""
        return found

    def bind_problem(self, bind: Bind) -> Optional[str]:
        return None

    def check_binds(self, binds: List[Bind]) -> None:
        for bind in binds:
            problem = self.bind_problem(bind)
            if problem:
                raise BindError("{} cannot bind {} at {}: {}".format(self.name, bind.source, bind.target, problem))

    def resolve(self, ref, exe: str, found: Dict[str, str], cache: str, sources, tried: List[str],
                options: List[str], environ) -> Optional[ResolvedImage]:
        """The image in a form this runtime runs, from what the image trees hold (found: kind ->
        path), the shared cache, its own storage or a pull; None when it cannot (tried says why)."""
        raise NotImplementedError

    def command(self, exe: str, version: str, spec: RunSpec, environ) -> Invocation:
        raise NotImplementedError


def version_tuple(version: str):
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def host_env(environ, drop_prefixes=()) -> Dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(drop_prefixes)}


def forbidden_target(target: str, prefixes) -> Optional[str]:
    """Why Shifter or Sarus refuse a bind target (user volumes may not go under these), or None."""
    if target == "/var/tmp" or target.startswith("/var/tmp/"):
        return None
    if target == "/opt":
        return "/opt itself may not be a bind target"
    for prefix in prefixes:
        if target.startswith(prefix):
            return "bind targets under {} are forbidden (only /var/tmp is allowed under /var); " \
                   "stage the workspace elsewhere (e.g. transfer: htcondor) or prefer another runtime".format(prefix)
    return None


def register(runtime: ContainerRuntime) -> ContainerRuntime:
    RUNTIMES[runtime.name] = runtime
    return runtime


def unregister(name: str) -> None:
    RUNTIMES.pop(name, None)


def default_order() -> List[str]:
    return [r.name for r in sorted(RUNTIMES.values(), key=lambda r: (r.preference, r.name))]


for _module in MODULES:
    importlib.import_module("." + _module, __name__)
