# Charliecloud: ch-run has no PID namespace and cannot bind read-only or onto a mount point a
# read-only image lacks, so it runs inside the keeper's own namespaces (keeper.py, "namespace");
# images are unpacked trees (from the image roots, an archive unpacked into the cache, or a pull
# with ch-image).

import hashlib
import os
from typing import Dict, List

from .. import images, procs
from ..images import ResolvedImage
from ..jobspec import inside
from . import DEFAULT_PATH, BindError, ContainerRuntime, Invocation, register


class CharliecloudRuntime(ContainerRuntime):
    name = "charliecloud"
    program = "ch-run"
    preference = 40

    def detect(self, environ):
        return super().detect(_with_user(environ))

    def bind_problem(self, bind):
        if ":" in bind.target:
            return "ch-run's -b SRC:DST cannot express a target path containing ':'"
        return None

    def command(self, exe, version, spec, environ):
        image = spec.image.location
        # this run's own (two jobs may share a directory; each removes its area when it ends)
        area = os.path.join(spec.scratch, ".{}-ns".format(spec.name))
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

    def resolve(self, ref, exe, found, cache, sources, tried, options, environ):
        if "dir" in found:
            return ResolvedImage(str(ref), "dir", found["dir"], "unpacked tree: " + found["dir"])
        final = os.path.join(cache, "dir", ref.cache_name)
        if os.path.isdir(final):
            return ResolvedImage(str(ref), "dir", final, "cached directory: " + final)
        tried.append("not in the cache ({})".format(final))
        archive = images.archive_to_dir(ref, found, cache, tried)
        if archive is not None:
            return archive
        if not sources.pull:
            return None
        bindir = os.path.dirname(exe)
        storage = os.path.join(cache, "ch-image")

        # ch-image is Python (requests): it trusts certifi's bundle unless told, not the system store
        # that a site adds its registry's CA to; ch-convert (0.31) knows the storage only from the
        # environment; --no-cache: no git build cache (it needs a git identity the job may lack)
        env = dict(procs.without_python_environment(environ), CH_IMAGE_STORAGE=storage)
        bundle = next((b for b in CA_BUNDLES if os.path.isfile(b)), None)
        if bundle and "REQUESTS_CA_BUNDLE" not in env:
            env["REQUESTS_CA_BUNDLE"] = bundle
        login = images.login(sources.credentials, ref.registry)  # --auth reads them from its environment
        if login:
            env.update(CH_IMAGE_USERNAME=login[0], CH_IMAGE_PASSWORD=login[1])

        def pull(tmp):
            # ch-image locks its whole storage directory: serialise every use of it
            with images.locked(storage + ".lock", images.LOCK_TIMEOUT):
                downloads = os.path.join(storage, "dlcache")
                before = set(os.listdir(downloads)) if os.path.isdir(downloads) else set()
                ch_image = [os.path.join(bindir, "ch-image"), "--no-cache", "-s", storage] + (["--auth"] if login else [])
                out = procs.run(ch_image + ["pull", str(ref.pinned)], timeout=images.PULL_TIMEOUT, env=env)
                damaged = _damaged(downloads, before)  # ch-image (0.31) does not check what it downloads
                if out.returncode != 0 or damaged:
                    procs.run(ch_image + ["delete", str(ref.pinned)], timeout=60, env=env)  # what it unpacked
                    if damaged:
                        out = procs.Output(1, "", "downloaded {} does not match its digest".format(damaged[0]))
                    raise images.pull_failure(self.name, "ch-image pull", ref, out, cache)
                out = procs.run([os.path.join(bindir, "ch-convert"), "-i", "ch-image", str(ref.pinned), tmp], env=env,
                                timeout=images.PULL_TIMEOUT)
                if out.returncode != 0:
                    raise images.pull_failure(self.name, "ch-convert", ref, out, cache)
        made = images.prepare_cached(final, pull)
        return ResolvedImage(str(ref), "dir", final, ("pulled {} into {}" if made else "cached directory {1} (pulled by another job)").format(ref, final))


# the system's CA bundle (Debian, Fedora), where a site's own CA is added
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def _damaged(downloads: str, before) -> List[str]:
    """The blobs new in ch-image's download cache whose content does not match the digest they are
    named by (sha256:HEX), removed so that no later pull takes them."""
    damaged = []
    for name in sorted(set(os.listdir(downloads)) - before) if os.path.isdir(downloads) else []:
        digest = name.split(".")[0]
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            continue
        path = os.path.join(downloads, name)
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
        if sha.hexdigest() != digest:
            os.unlink(path)
            damaged.append("sha256:" + digest)
    return damaged


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


register(CharliecloudRuntime())
