# Podman, and Docker (which needs an engine): binds as -v or --mount, the container's own PID
# namespace and a name, so that a container a killed client leaves is removed (keeper.py,
# "runtime"); images live in the engine's own storage, imported once from an unpacked tree or
# archive, or pulled.

import csv
import io
import json
import os
import subprocess
from typing import Optional

from .. import disk, images, procs
from ..images import ResolvedImage
from . import ContainerRuntime, Invocation, register


class PodmanRuntime(ContainerRuntime):
    name = program = "podman"
    preference = 60
    global_options = ["--log-level=error"]  # its warnings would land in the step's stderr
    import_command = ["import", "-q"]

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

    def resolve(self, ref, exe, found, cache, sources, tried, options, environ):
        """Podman and Docker keep images in their own storage: unpacked trees are imported into it."""
        name = os.path.basename(exe)
        base = [exe] + list(options)
        # the engine's name for the image: a pinned one by its digest (as pulled); one imported
        # from an unpacked tree by its tag (an import cannot carry a digest)
        known, imported = str(ref.pinned), str(ref._replace(digest=None) if ref.tag else ref)
        # asking the engine costs ~0.1 s; its image index file changes whenever an image comes or goes
        index = _storage_index(name, options, environ)
        seen = os.path.join(cache, "present", "{}-{}-{}".format(name, os.getuid(), ref.cache_name))
        if index is not None and _read(seen) == str(os.stat(index).st_mtime_ns):
            return ResolvedImage(str(ref), "ref", known, "{} storage".format(name))
        if procs.run(base + ["image", "inspect", "--format", "{{.Id}}", known], timeout=60).returncode == 0:
            if index is not None:
                _write(seen, str(os.stat(index).st_mtime_ns))
            return ResolvedImage(str(ref), "ref", known, "{} storage".format(name))
        tried.append("not in {}'s storage".format(name))
        source = found.get("dir") or found.get("archive")
        if source is not None:
            # the import is serialised per image so two jobs do not import it twice
            marker = os.path.join(cache, "imported", "{}-{}-{}".format(name, os.getuid(), ref.cache_name))

            def produce(tmp):
                if os.path.isdir(source):
                    out = _import_tree(base + self.import_command, source, imported)
                else:
                    out = procs.run(base + self.import_command + [source, imported], timeout=images.PULL_TIMEOUT)
                images.checked(out, "{} import {}".format(name, source))
                with open(tmp, "w") as f:
                    f.write(source + "\n")
            if os.path.exists(marker):
                os.unlink(marker)  # the storage lost it since: import again
            images.prepare_cached(marker, produce)
            return ResolvedImage(str(ref), "ref", imported, "imported {} into {} storage".format(source, name))
        if not sources.pull:
            return None
        out = procs.run(self._pull(exe, options, sources) + [known], timeout=images.PULL_TIMEOUT)
        if out.returncode != 0:
            raise images.pull_failure(self.name, name + " pull", ref, out, cache)
        return ResolvedImage(str(ref), "ref", known, "pulled {} into {} storage".format(known, name))

    def _pull(self, exe, options, sources):
        """The pull command, with the job's registry credentials where it has them."""
        return [exe] + list(options) + ["pull", "-q"] + images.auth_file(sources)

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
    preference = 70
    global_options = []
    import_command = ["import"]  # (no -q)

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

    def _pull(self, exe, options, sources):
        # docker pull has no --authfile: its client reads DIR/config.json, where --config says
        credentials = ["--config", sources.credentials] if sources.credentials else []
        return [exe] + credentials + list(options) + ["pull", "-q"]

    def _cleanup(self, exe, spec):
        return [exe] + list(spec.options) + ["rm", "--force", spec.name]


def _storage_index(name, options, environ) -> Optional[str]:
    """Podman's image index (containers/storage), in its default place; None if elsewhere."""
    if name != "podman" or any(o.startswith(("--root", "--storage")) for o in options):
        return None
    if os.getuid() == 0:
        root = "/var/lib/containers/storage"
    else:
        data = environ.get("XDG_DATA_HOME") or os.path.join(environ.get("HOME", "/nonexistent"), ".local", "share")
        root = os.path.join(data, "containers", "storage")
    for driver in ("overlay", "vfs"):
        path = os.path.join(root, driver + "-images", "images.json")
        if os.path.isfile(path):
            return path
    return None


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path: str, text: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        disk.write_whole(path, text, 0o644)
    except OSError:
        pass


def _import_tree(command, directory, ref) -> procs.Output:
    tar = subprocess.Popen(["tar", "-C", directory, "-c", "."], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        return procs.run(command + ["-", ref], timeout=images.PULL_TIMEOUT, stdin=tar.stdout)
    finally:
        tar.stdout.close()
        tar.wait()


register(PodmanRuntime())
register(DockerRuntime())
