# Shifter (NERSC): images through its image gateway (shifterimg, whose pulls are asynchronous),
# user volumes refused under /etc, /var (but /var/tmp) and /opt/udiImage (src/VolumeMap.c), only
# the job's variables handed to the container; the keeper ends what it leaves (a subreaper).
# No registry credentials are passed: a private image needs the site's `shifterimg login`.

import os
import shutil
import time

from .. import images, procs
from ..images import ResolvedImage
from . import ContainerRuntime, Invocation, forbidden_target, register

FORBIDDEN_PREFIXES = ("/etc", "/var", "/opt/udiImage")  # later releases allow /var/tmp


class ShifterRuntime(ContainerRuntime):
    name = program = "shifter"
    preference = 30

    def detect(self, environ):
        found = super().detect(environ)
        if found.usable and shutil.which("shifterimg", path=environ.get("PATH", os.defpath)) is None:
            return found._replace(usable=False, reason="shifter found but shifterimg is not on PATH")
        return found

    def bind_problem(self, bind):
        if any(c in bind.source + bind.target for c in ":;"):
            return "shifter's --volume cannot express a path containing ':' or ';'"
        return forbidden_target(bind.target, FORBIDDEN_PREFIXES)

    def resolve(self, ref, exe, found, cache, sources, tried, options, environ):
        shifterimg = os.path.join(os.path.dirname(exe), "shifterimg")
        name = ref.shifter_name
        if procs.run([shifterimg, "lookup", name], timeout=60).returncode == 0:
            return ResolvedImage(str(ref), "shifter", name, "Shifter image gateway")
        tried.append("not in Shifter's image gateway ({})".format(name))
        if not sources.pull:
            return None
        out = procs.run([shifterimg, "pull", name], timeout=images.PULL_TIMEOUT)
        if out.returncode != 0:
            raise images.pull_failure(self.name, "shifterimg pull", ref, out, cache)
        deadline = time.monotonic() + images.PULL_TIMEOUT
        while procs.run([shifterimg, "lookup", name], timeout=60).returncode != 0:  # pulls are asynchronous
            if time.monotonic() > deadline:
                raise images.ImageError("shifterimg pull {}: not ready after {} s".format(name, images.PULL_TIMEOUT))
            time.sleep(2)
        return ResolvedImage(str(ref), "shifter", name, "pulled through Shifter's image gateway")

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


register(ShifterRuntime())
