# Sarus (CSCS): images pulled into its local store, bind targets refused under /etc, /var (but
# /var/tmp) and /opt/sarus, only the job's variables (and PATH) handed to the container; the
# keeper ends what it leaves (a subreaper). A private image's login goes to `sarus pull --login` on
# its standard input.

from .. import images, procs
from ..images import ResolvedImage
from . import ContainerRuntime, Invocation, forbidden_target, register

FORBIDDEN_PREFIXES = ("/etc", "/var", "/opt/sarus")


class SarusRuntime(ContainerRuntime):
    name = program = "sarus"
    preference = 50

    def bind_problem(self, bind):
        if "," in bind.source + bind.target:
            return "sarus's --mount cannot express a path containing ','"
        return forbidden_target(bind.target, FORBIDDEN_PREFIXES)

    def resolve(self, ref, exe, found, cache, sources, tried, options, environ):
        listing = procs.run([exe, "images"], timeout=60)
        repo_tag = "{}/{}".format(ref.registry, ref.repository), ref.tag or "latest"
        for line in listing.stdout.splitlines():
            cols = line.split()
            if len(cols) >= 2 and (cols[0], cols[1]) in (repo_tag, (ref.repository, repo_tag[1])):
                return ResolvedImage(str(ref), "ref", str(ref), "Sarus local images")
        tried.append("not in Sarus's local images")
        if not sources.pull:
            return None
        login = images.login(sources.credentials, ref.registry)  # --login reads them from its standard input
        out = procs.run([exe, "pull"] + (["--login"] if login else []) + [str(ref.pinned)], timeout=images.PULL_TIMEOUT,
                        input="{}\n{}\n".format(*login) if login else None)
        if out.returncode != 0:
            raise images.pull_failure(self.name, "sarus pull", ref, out, cache)
        return ResolvedImage(str(ref), "ref", str(ref), "pulled by Sarus")

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


register(SarusRuntime())
