# Container runtime adapters: one small class per runtime, each saying whether it is usable on
# this node (and why not), building the command line from the same inputs (image, binds,
# working directory, environment, GPUs), and saying how the keeper holds its step (keeper.py).
# Standard library only (worker side).

import csv
import io
import json
import os
import re
import shutil
from typing import Dict, List, NamedTuple, Optional, Tuple

from . import procs
from .images import ResolvedImage
from .jobspec import Bind, inside

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
    name = ""
    program = ""
    version_args = ["--version"]

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

    def command(self, exe: str, version: str, spec: RunSpec, environ) -> Invocation:
        raise NotImplementedError


def _version_tuple(version: str):
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def _host_env(environ, drop_prefixes=()) -> Dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(drop_prefixes)}


class ApptainerRuntime(ContainerRuntime):
    name = program = "apptainer"
    env_prefix = "APPTAINERENV_"
    _strip = ("APPTAINERENV_", "SINGULARITYENV_")  # the host's own would leak into the container
    no_eval_since = (1, 1)  # --no-eval: variables are not evaluated by a shell in the container

    def bind_problem(self, bind):
        if "\n" in bind.source or "\n" in bind.target:
            return "a newline in the path"
        return None

    def command(self, exe, version, spec, environ):
        notes = []
        verb = "exec"
        if spec.entrypoint:
            # a SIF (or a sandbox built from one) carries the image's ENTRYPOINT as its runscript
            if spec.image.kind == "sif" or os.path.isfile(os.path.join(spec.image.location, ".singularity.d", "runscript")):
                verb = "run"
            else:
                notes.append("{}: the image has no runscript, so no ENTRYPOINT was run".format(self.name))
        variables = dict(spec.env)
        # without --no-eval, Apptainer evaluates each variable's value in a shell in the container
        # ($HOME, $(...) and backquotes expanded); older releases have no way to pass one verbatim
        no_eval = self._has_no_eval(version)
        if not no_eval:
            for key, value in variables.items():
                if any(c in value for c in "$`\\\"\n"):
                    raise BindError("{} {} would evaluate the value of {} in a shell (no --no-eval before {}): "
                                    "refusing rather than passing it changed".format(
                                        self.name, version, key, ".".join(map(str, self.no_eval_since))))
        # --pid: the step's processes end with it, even when this process is killed
        argv = [exe] + list(spec.options) + [verb] + (["--no-eval"] if no_eval else []) + \
            ["--pid", "--contain", "--cleanenv", "--pwd", spec.workdir]
        for bind in spec.binds:
            if ":" in bind.source + bind.target or "," in bind.source + bind.target:
                # --bind splits on ':' and ','; --mount takes one CSV-quoted bind
                fields = ["type=bind", "source=" + bind.source, "destination=" + bind.target]
                if not bind.writable:
                    fields.append("ro")
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow(fields)
                argv += ["--mount", buf.getvalue()]
            else:
                argv += ["--bind", "{}:{}:{}".format(bind.source, bind.target, "rw" if bind.writable else "ro")]
        if spec.gpus:
            argv.append("--nv")
        home = variables.pop("HOME", None)  # Apptainer refuses HOME from APPTAINERENV_: only --home sets it
        if home is not None:
            mounted = [b for b in spec.binds if inside(home, b.target)]
            source = mounted[-1].source + home[len(mounted[-1].target):] if mounted else None
            if source is not None and ":" not in source + home:
                argv += ["--home", "{}:{}".format(source, home)]
            else:
                notes.append("{}: HOME={} was not set (--home needs it mounted, at a path without ':')".format(self.name, home))
        argv += [spec.image.location] + list(spec.argv)
        env = _host_env(environ, self._strip)
        env.update({self.env_prefix + k: v for k, v in variables.items()})
        if not spec.network:
            notes.append("{} shares the host network (no isolation without root)".format(self.name))
        return Invocation(argv, env, notes, contain="subreaper")

    def _has_no_eval(self, version: str) -> bool:
        return _version_tuple(version) >= self.no_eval_since


class SingularityRuntime(ApptainerRuntime):
    name = program = "singularity"
    env_prefix = "SINGULARITYENV_"

    def check(self, found, version_text, environ):
        if "apptainer" in version_text.lower():
            return found._replace(reason="this singularity is Apptainer's compatibility link")
        return found

    def _has_no_eval(self, version: str) -> bool:
        # Apptainer's compatibility link reports Apptainer's version (1.x); SingularityCE has
        # --no-eval from 3.10
        number = _version_tuple(version)
        return number >= (3, 10) or (1, 1) <= number < (2, 0)


class CharliecloudRuntime(ContainerRuntime):
    """ch-run has no PID namespace and cannot bind read-only or onto a mount point a read-only
    image lacks: the keeper's own namespaces do all three (keeper.py, "namespace")."""
    name = "charliecloud"
    program = "ch-run"

    def detect(self, environ):
        return super().detect(_with_user(environ))

    def bind_problem(self, bind):
        if ":" in bind.target:
            return "ch-run's -b SRC:DST cannot express a target path containing ':'"
        return None

    def command(self, exe, version, spec, environ):
        image = spec.image.location
        area = os.path.join(spec.scratch, ".scailfin-ns")
        if ":" in area:
            raise BindError("charliecloud: the job's scratch directory {} contains ':', which ch-run's -b cannot "
                            "express".format(spec.scratch))
        # --private-tmp: the host's /tmp is never the container's
        argv = [exe] + list(spec.options) + ["--private-tmp", "--unset-env=*", "--env-no-expand"]
        if os.path.isfile(os.path.join(image, "ch", "environment")):
            argv.append("--set-env")  # the image's own environment (ch-image keeps it there)
        env = dict(spec.env)
        if "PATH" not in env and not os.path.isfile(os.path.join(image, "ch", "environment")):
            env["PATH"] = DEFAULT_PATH
        argv += ["--set-env={}={}".format(k, v) for k, v in sorted(env.items())]
        # the container's /tmp is a directory of the keeper's own, holding the mount points of
        # what is bound under /tmp (ch-run would make a directory even for a file)
        tmp = os.path.join(area, "tmp")
        argv += ["-b", "{}:/tmp".format(tmp)]
        kept, targets = [], []
        for number, bind in enumerate(spec.binds):
            source = bind.source
            if not bind.writable or ":" in source:  # read-only (or unexpressible): mounted by the keeper
                source = os.path.join(area, "bind", str(number))
                kept.append((bind.source, source, bind.writable))
            argv += ["-b", source if source == bind.target else "{}:{}".format(source, bind.target)]
            if not any(inside(bind.target, t) for t, _ in targets):
                targets.append((bind.target, os.path.isdir(bind.source)))
        if not any(inside(spec.workdir, t) for t, _ in targets):
            targets.append((spec.workdir, True))
        points = [(image, "/tmp", True), (tmp, "/", True)] + [
            (tmp, t[len("/tmp"):], d) if inside(t, "/tmp") else (image, t, d) for t, d in targets]
        argv += ["-c", spec.workdir, image, "--"] + list(spec.argv)
        notes = [] if spec.network else ["charliecloud shares the host network"]
        if spec.gpus:
            notes.append("charliecloud: GPU libraries must be in the image (ch-fromhost --nvidia)")
        if spec.entrypoint:
            notes.append("charliecloud does not run image ENTRYPOINTs: the command ran as given")
        return Invocation(argv, _with_user(environ), notes, contain="namespace", binds=kept, mount_points=points,
                          image=image, area=area)


def _with_user(environ) -> Dict[str, str]:
    """ch-run refuses to start without $USER, which batch jobs often lack."""
    environ = dict(environ)
    if not environ.get("USER"):
        try:
            import pwd
            environ["USER"] = pwd.getpwuid(os.getuid()).pw_name
        except (KeyError, ImportError):
            environ["USER"] = str(os.getuid())
    return environ


class PodmanRuntime(ContainerRuntime):
    name = program = "podman"

    def bind_problem(self, bind):
        if ("," in bind.source + bind.target) and (":" in bind.source + bind.target):
            return "podman can express a path with ':' (--mount) or with ',' (-v) but not both"
        return None

    def _mount(self, bind):
        if ":" in bind.source + bind.target:
            return ["--mount", "type=bind,source={},destination={}{}".format(bind.source, bind.target, "" if bind.writable else ",ro=true")]
        return ["-v", "{}:{}:{}".format(bind.source, bind.target, "rw" if bind.writable else "ro")]

    def _user(self):
        return ["--userns=keep-id"] if os.getuid() != 0 else []

    def _gpus(self, gpus):
        return ["--device", "nvidia.com/gpu=all"] if gpus else []

    def _entrypoint(self, argv0):
        return "--entrypoint=" + json.dumps([argv0])

    global_options = ["--log-level=error"]  # its warnings would land in the step's stderr

    def _cleanup(self, exe, spec):
        return [exe] + list(spec.options) + ["rm", "--force", "--ignore", "--time", "0", spec.name]

    def command(self, exe, version, spec, environ):
        # a name, so that a container a killed client leaves running can be removed
        argv = [exe] + self.global_options + list(spec.options) + ["run", "--rm", "--pull=never", "--name", spec.name]
        if spec.interactive:
            argv.append("-i")
        argv += self._user()
        if not spec.network:
            argv.append("--network=none")
        for bind in spec.binds:
            argv += self._mount(bind)
        argv += ["-w", spec.workdir]
        for key, value in sorted(spec.env.items()):
            argv += ["-e", "{}={}".format(key, value)]
        argv += self._gpus(spec.gpus)
        if spec.entrypoint:  # the image's ENTRYPOINT gets argv as its arguments
            argv += [spec.image.location] + list(spec.argv)
        else:
            argv += [self._entrypoint(spec.argv[0]), spec.image.location] + list(spec.argv[1:])
        return Invocation(argv, dict(environ), [], contain="runtime", cleanup=[self._cleanup(exe, spec)])


class DockerRuntime(PodmanRuntime):
    name = program = "docker"
    global_options = []

    def check(self, found, version_text, environ):
        out = procs.run([found.path, "version", "--format", "{{.Server.Version}}"], timeout=15, env=dict(environ))
        if out.returncode != 0 or not out.stdout.strip():
            return found._replace(usable=False, reason="client {} found ({}) but no engine answers: {}".format(
                found.version, found.path, out.tail(1) or "no server version"))
        return found._replace(version=out.stdout.strip())

    def bind_problem(self, bind):
        return None  # --mount is CSV: any path can be quoted

    def _mount(self, bind):
        fields = ["type=bind", "source=" + bind.source, "target=" + bind.target] + ([] if bind.writable else ["readonly"])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(fields)
        return ["--mount", buf.getvalue()]

    def _user(self):
        return ["--user={}:{}".format(os.getuid(), os.getgid())]

    def _gpus(self, gpus):
        return ["--gpus", "all"] if gpus else []

    def _entrypoint(self, argv0):
        return "--entrypoint=" + argv0

    def _cleanup(self, exe, spec):
        return [exe] + list(spec.options) + ["rm", "--force", spec.name]


# Shifter refuses user volumes onto these (NERSC/shifter src/VolumeMap.c); later releases allow /var/tmp.
_SHIFTER_FORBIDDEN_PREFIXES = ("/etc", "/var", "/opt/udiImage")
_SARUS_FORBIDDEN_PREFIXES = ("/etc", "/var", "/opt/sarus")


def _forbidden(target: str, prefixes) -> Optional[str]:
    if target == "/var/tmp" or target.startswith("/var/tmp/"):
        return None
    if target == "/opt":
        return "/opt itself may not be a bind target"
    for prefix in prefixes:
        if target.startswith(prefix):
            return "bind targets under {} are forbidden (only /var/tmp is allowed under /var); " \
                   "stage the workspace elsewhere (e.g. transfer: htcondor) or prefer another runtime".format(prefix)
    return None


class ShifterRuntime(ContainerRuntime):
    name = program = "shifter"

    def detect(self, environ):
        found = super().detect(environ)
        if found.usable and shutil.which("shifterimg", path=environ.get("PATH", os.defpath)) is None:
            return found._replace(usable=False, reason="shifter found but shifterimg is not on PATH")
        return found

    def bind_problem(self, bind):
        if any(c in bind.source + bind.target for c in ":;"):
            return "shifter's --volume cannot express a path containing ':' or ';'"
        return _forbidden(bind.target, _SHIFTER_FORBIDDEN_PREFIXES)

    def command(self, exe, version, spec, environ):
        argv = [exe] + list(spec.options) + ["--image=" + spec.image.location, "--workdir=" + spec.workdir]
        for bind in spec.binds:
            argv.append("--volume={}:{}{}".format(bind.source, bind.target, "" if bind.writable else ":ro"))
        if spec.gpus:
            argv.append("--module=gpu")
        argv += ["--"] + list(spec.argv)
        notes = [] if spec.network else ["shifter shares the host network"]
        if spec.entrypoint:  # shifter --entrypoint fails on images without one, and we cannot tell
            notes.append("shifter: the image's ENTRYPOINT was not run")
        # shifter hands its own environment to the container: give it only the job's variables
        env = {k: environ[k] for k in ("USER", "LOGNAME", "HOME") if k in environ}
        env.update(spec.env)
        return Invocation(argv, env, notes, contain="subreaper")


class SarusRuntime(ContainerRuntime):
    name = program = "sarus"

    def bind_problem(self, bind):
        if "," in bind.source + bind.target:
            return "sarus's --mount cannot express a path containing ','"
        return _forbidden(bind.target, _SARUS_FORBIDDEN_PREFIXES)

    def command(self, exe, version, spec, environ):
        argv = [exe] + list(spec.options) + ["run", "--workdir=" + spec.workdir]
        for bind in spec.binds:
            argv.append("--mount=type=bind,source={},destination={}{}".format(bind.source, bind.target, "" if bind.writable else ",readonly"))
        if not spec.entrypoint:
            argv += ["--entrypoint", ""]
        argv += [spec.image.location] + list(spec.argv)
        # sarus hands its own environment to the container: give it only the job's variables
        env = {k: environ[k] for k in ("USER", "LOGNAME", "HOME", "PATH") if k in environ}
        env.update(spec.env)
        return Invocation(argv, env, [] if spec.network else ["sarus shares the host network"], contain="subreaper")


RUNTIMES = {r.name: r for r in (ApptainerRuntime(), SingularityRuntime(), CharliecloudRuntime(), PodmanRuntime(),
                                DockerRuntime(), ShifterRuntime(), SarusRuntime())}
