# Apptainer, and Singularity (SingularityCE, or Apptainer's compatibility link): binds as data
# (--bind, or CSV-quoted --mount where a path has ':' or ','), variables as APPTAINERENV_ passed
# unevaluated (--no-eval), its own PID namespace (--pid); images from SIFs or unpacked trees in the
# image roots, the shared cache, or a pull into it.

import csv
import io
import os

from .. import images, procs
from ..images import ResolvedImage
from ..jobspec import inside
from . import BindError, ContainerRuntime, Invocation, host_env, register, version_tuple


class ApptainerRuntime(ContainerRuntime):
    name = program = "apptainer"
    preference = 10
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
        env = host_env(environ, self._strip)
        env.update({self.env_prefix + k: v for k, v in variables.items()})
        if not spec.network:
            notes.append("{} shares the host network (no isolation without root)".format(self.name))
        return Invocation(argv, env, notes, contain="subreaper")

    def _has_no_eval(self, version: str) -> bool:
        return version_tuple(version) >= self.no_eval_since

    def resolve(self, ref, exe, found, cache, sources, tried, options, environ):
        if "sif" in found:
            return ResolvedImage(str(ref), "sif", found["sif"], "SIF in the image tree: " + found["sif"])
        if "dir" in found:
            return ResolvedImage(str(ref), "dir", found["dir"], "unpacked tree: " + found["dir"])
        sif = os.path.join(cache, "sif", ref.cache_name + ".sif")
        if os.path.isfile(sif):
            return ResolvedImage(str(ref), "sif", sif, "cached SIF: " + sif)
        tried.append("not in the cache ({})".format(sif))
        archive = images.archive_to_dir(ref, found, cache, tried)
        if archive is not None:
            return archive
        if not sources.pull:
            return None

        def pull(tmp):
            out = procs.run([exe] + list(options) + ["pull"] + images.auth_file(sources) + [tmp, "docker://" + str(ref.pinned)],
                            timeout=images.PULL_TIMEOUT)
            if out.returncode != 0:
                raise images.pull_failure(self.name, os.path.basename(exe) + " pull", ref, out, cache)
        made = images.prepare_cached(sif, pull)
        return ResolvedImage(str(ref), "sif", sif, ("pulled docker://{} into {}" if made else "cached SIF {1} (pulled by another job)").format(ref, sif))


class SingularityRuntime(ApptainerRuntime):
    name = program = "singularity"
    preference = 20
    env_prefix = "SINGULARITYENV_"

    def check(self, found, version_text, environ):
        if "apptainer" in version_text.lower():
            return found._replace(reason="this singularity is Apptainer's compatibility link")
        return found

    def _has_no_eval(self, version: str) -> bool:
        # Apptainer's compatibility link reports Apptainer's version (1.x); SingularityCE has
        # --no-eval from 3.10
        number = version_tuple(version)
        return number >= (3, 10) or (1, 1) <= number < (2, 0)


register(ApptainerRuntime())
register(SingularityRuntime())
