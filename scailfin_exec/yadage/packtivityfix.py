# Two of packtivity's costs that grow with a workflow, and one of its failures, mended in place at
# import of scailfin_exec.yadage (as scailfin_exec/cwl/yamlcopy.py mends ruamel.yaml's copy for
# cwltool):
#
# 1. LocalFSState.model (the local state context yadage gives every step, and its init step)
#    writes the workdir into a step's parameters leaf by leaf, and each leaf's replacement copies
#    and normalises the whole parameter set again: N^2 in the number of leaves. The init step of
#    a scatter over N items pays it on the N-item list: 19 s for 1,000 items and 68 s for 2,000
#    (cProfile of yadage-run's main thread), about 4 minutes of a 5,000-step run. Here: one walk
#    over the parameters, one normalisation, the same values (packtivity's contextualize_value
#    on every leaf, typed leaves included).
# 2. TypedLeafs compiles a jq program each time one is built (1.1 ms, and a step builds ~18):
#    jq.py's compiled programs can be reused, from any thread (each keeps a pool of jq states),
#    so each program text is compiled once.
# 3. LocalFSState.state_hash, which yadage's checksum cache (`yadage-run -c checksums`) asks for
#    every step's directories, calls dirhash, and dirhash >= 0.2 raises "Nothing to hash" for a
#    directory without files (the init step's is one): every cached run failed at its first step.
#    Here such a directory has a hash too (of its subdirectories' names); others keep dirhash's.
# 4. yadage's CachedBackend (the same cache) answers a cached step itself and says nothing to the
#    backend it wraps: here it tells ours (Backend.step_cached), so the trace, the progress and the
#    report show the step as cached, with where it came from.

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import types

import jq as _jq
from packtivity import typedleafs
from packtivity.statecontexts import posixfs_context
from yadage.backends import caching
from yadage.backends.trivialbackend import TrivialProxy

from ..resume import tree_identity

_original_model = posixfs_context.LocalFSState.model


def model(self, data):
    """LocalFSState.model in one pass (packtivity's own for data that is not TypedLeafs)."""
    if not isinstance(data, typedleafs.TypedLeafs):
        return _original_model(self, data)

    def walk(node):
        if type(node) is dict:
            return {key: walk(value) for key, value in node.items()}
        if type(node) is list:
            return [walk(value) for value in node]
        return self.contextualize_value(node)

    return typedleafs.TypedLeafs(walk(data.typed()), data.leafmodel)


def _dirhash(directory: str) -> str:
    try:
        return posixfs_context.dirhash(directory, "sha1")
    except ValueError as e:
        if not str(e).endswith("Nothing to hash"):
            raise
        return hashlib.sha1(json.dumps(tree_identity(directory)).encode()).hexdigest()  # noqa: S324  (as dirhash's)


def state_hash(self) -> str:
    """LocalFSState.state_hash (the same value), with a hash for a directory without files."""
    upstream = [_dirhash(d) for d in self.readonly if os.path.isdir(d)]
    own = [_dirhash(d) for d in self.readwrite if os.path.isdir(d)]
    return hashlib.sha1(json.dumps([upstream, own]).encode("utf-8")).hexdigest()  # noqa: S324


_original_routedsubmit = caching.CachedBackend.routedsubmit


def routedsubmit(self, task):
    """CachedBackend.routedsubmit, telling the backend it wraps when a step came from the cache."""
    proxy = _original_routedsubmit(self, task)
    told = getattr(self.backends["primary"], "step_cached", None)
    if isinstance(proxy, TrivialProxy) and told is not None:
        entry = self.cache.cache.get(self.cache.cacheid(task), {}).get("result", {})
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(entry.get("cachingtime", 0)))
        told(task.metadata["name"], f"yadage's checksum cache {self.cache.cachefile}, stored {when}")
    return proxy


def install() -> None:
    """Idempotent: each mend once per process."""
    posixfs_context.LocalFSState.model = model
    posixfs_context.LocalFSState.state_hash = state_hash
    caching.CachedBackend.routedsubmit = routedsubmit
    if getattr(typedleafs.jq, "jq", None) is _jq.jq:
        typedleafs.jq = types.SimpleNamespace(jq=functools.lru_cache(maxsize=1024)(_jq.jq))
