# Container runtime adapters: one small class per runtime, each saying whether it is usable on
# this node (and why not) and building the command line from the same inputs (image, binds,
# working directory, environment, GPUs). Standard library only (worker side).

import csv
import io
import json
import os
import re
import shutil
from typing import Dict, List, NamedTuple, Optional

from . import procs
from .images import ResolvedImage
from .jobspec import Bind, inside

# What a container sees when the image says nothing: Docker's default PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BindError(Exception):
    """The runtime cannot mount a path where the job needs it (forbidden target, bad syntax)."""


class ImagePathError(Exception):
    """The runtime could run the job from the same image at a plainer path (no ':' in it)."""


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


class Invocation(NamedTuple):
    argv: List[str]
    env: Dict[str, str]  # the runtime process's own environment
    notes: List[str]  # what the adapter had to adapt, for the result record


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
        argv = [exe] + list(spec.options) + [verb, "--contain", "--cleanenv", "--pwd", spec.workdir]
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
        variables = dict(spec.env)
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
        return Invocation(argv, env, notes)


class SingularityRuntime(ApptainerRuntime):
    name = program = "singularity"
    env_prefix = "SINGULARITYENV_"

    def check(self, found, version_text, environ):
        if "apptainer" in version_text.lower():
            return found._replace(reason="this singularity is Apptainer's compatibility link")
        return found


class CharliecloudRuntime(ContainerRuntime):
    name = "charliecloud"
    program = "ch-run"

    def detect(self, environ):
        return super().detect(_with_user(environ))

    def bind_problem(self, bind):
        if ":" in bind.source or ":" in bind.target:
            return "ch-run's -b SRC:DST cannot express a path containing ':'"
        return None

    def command(self, exe, version, spec, environ):
        image = spec.image.location
        notes = []
        # --private-tmp: the container's /tmp is its own, as with the other runtimes (and ch-run
        # can create mount points there)
        argv = [exe] + list(spec.options) + ["--private-tmp", "--unset-env=*", "--env-no-expand"]
        if os.path.isfile(os.path.join(image, "ch", "environment")):
            argv.append("--set-env")  # the image's own environment (ch-image keeps it there)
        env = dict(spec.env)
        if "PATH" not in env and not os.path.isfile(os.path.join(image, "ch", "environment")):
            env["PATH"] = DEFAULT_PATH
        argv += ["--set-env={}={}".format(k, v) for k, v in sorted(env.items())]
        # ch-run can only mount onto a directory the read-only image has. --write-fake (>= 0.32)
        # overlays a writable layer where mount points can be made, but overlayfs splits its
        # lowerdir at ':', so it cannot use an image directory named like CVMFS's "alpine:3.20".
        # Otherwise a same-path bind can mount the nearest ancestor the image has instead.
        if _version_tuple(version) < (0, 32):
            why_not_fake = "this ch-run has no --write-fake (>= 0.32)"
        elif ":" in os.path.realpath(image):
            why_not_fake = "--write-fake cannot overlay an image path containing ':' ({})".format(image)
        else:
            why_not_fake = None
        needs_fake = False
        bound = set()
        for bind in spec.binds:
            target = bind.target
            if not _exists_in_image(image, target):
                if why_not_fake is None:
                    needs_fake = True
                elif bind.source == bind.target and _nearest_existing(image, target) != "/":
                    target = _nearest_existing(image, target)  # still at the same absolute path
                    notes.append("charliecloud {}: the image lacks {}, so its ancestor {} was bound at the same "
                                 "path ({})".format(version, bind.target, target, why_not_fake))
                elif _version_tuple(version) >= (0, 32):
                    raise ImagePathError(image)  # --write-fake would work from a path without ':'
                else:
                    raise BindError("charliecloud {} cannot bind {} at {}: the image has no such directory (nor, for a "
                                    "same-path bind, any parent of it but /) and {}".format(
                                        version, bind.source, bind.target, why_not_fake))
            if target in bound:
                continue
            bound.add(target)
            source = target if target != bind.target else bind.source
            argv += ["-b", source if source == target else "{}:{}".format(source, target)]
            if not bind.writable:
                notes.append("charliecloud cannot mount read-only: {} is writable".format(target))
        if needs_fake:
            argv.append("--write-fake")
        argv += ["-c", spec.workdir, image, "--"] + list(spec.argv)
        if not spec.network:
            notes.append("charliecloud shares the host network")
        if spec.gpus:
            notes.append("charliecloud: GPU libraries must be in the image (ch-fromhost --nvidia)")
        if spec.entrypoint:
            notes.append("charliecloud does not run image ENTRYPOINTs: the command ran as given")
        return Invocation(argv, _with_user(environ), notes)


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


def _exists_in_image(image: str, path: str) -> bool:
    # with --private-tmp, /tmp is a tmpfs where ch-run can create mount points
    return path == "/tmp" or path.startswith("/tmp/") or os.path.isdir(image.rstrip("/") + path)


def _nearest_existing(image: str, path: str) -> str:
    while path != "/" and not _exists_in_image(image, path):
        path = os.path.dirname(path)
    return path


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

    def command(self, exe, version, spec, environ):
        argv = [exe] + self.global_options + list(spec.options) + ["run", "--rm", "--pull=never"]
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
        return Invocation(argv, dict(environ), [])


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
        return Invocation(argv, env, notes)


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
        return Invocation(argv, env, [] if spec.network else ["sarus shares the host network"])


RUNTIMES = {r.name: r for r in (ApptainerRuntime(), SingularityRuntime(), CharliecloudRuntime(), PodmanRuntime(),
                                DockerRuntime(), ShifterRuntime(), SarusRuntime())}
