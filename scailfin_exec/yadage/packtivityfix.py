# Two of packtivity's costs that grow with a workflow, mended in place at import of
# scailfin_exec.yadage (as scailfin_exec/cwl/yamlcopy.py mends ruamel.yaml's copy for cwltool):
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

from __future__ import annotations

import functools
import types

import jq as _jq
from packtivity import typedleafs
from packtivity.statecontexts import posixfs_context

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


def install() -> None:
    """Idempotent: the state model and the compiled-program cache, once per process."""
    posixfs_context.LocalFSState.model = model
    if getattr(typedleafs.jq, "jq", None) is _jq.jq:
        typedleafs.jq = types.SimpleNamespace(jq=functools.lru_cache(maxsize=1024)(_jq.jq))
