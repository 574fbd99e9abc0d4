# packtivity's local state model writes the workdir into a step's parameters leaf by leaf, each
# leaf copying and normalising the whole set again (N^2: minutes for yadage's init step of a
# 5,000-item scatter), and its TypedLeafs compile their jq program each time. scailfin_exec.yadage
# installs a one-pass model giving the same values, and compiles each jq program once.
import pytest
from packtivity import typedleafs
from packtivity.statecontexts.posixfs_context import LocalFSState
from packtivity.typedleafs import TypedLeafs

import scailfin_exec.yadage  # noqa: F401  (installs the fixes)
from scailfin_exec.yadage import packtivityfix

pytestmark = pytest.mark.fast


class Thing:
    """A typed leaf, as a yadage data model declares them."""

    def __init__(self, where):
        self.where = where

    @classmethod
    def fromJSON(cls, data):
        return cls(data["where"])

    def json(self):
        return {"where": self.where}


LEAFMODEL = {"keyword": "$type", "types": {"Thing": Thing}}
PARAMETERS = {"items": list(range(5)) + ["{workdir}/out.txt", None, True, 1.5],
              "nested": {"file": "{workdir}/a", "empty": {}, "none": [], "thing": {"$type": "Thing", "where": "x"}},
              "plain": "no placeholder", "braces": "{{literal}}"}


def test_the_one_pass_model_gives_what_packtivity_s_own_gives(tmp_path):
    state = LocalFSState(readwrite=[str(tmp_path)])
    for data in (PARAMETERS, "{workdir}/scalar", 7, {}, []):
        ours = packtivityfix.model(state, TypedLeafs(data, LEAFMODEL))
        theirs = packtivityfix._original_model(state, TypedLeafs(data, LEAFMODEL))
        assert ours.json() == theirs.json()
    assert ours.leafmodel == LEAFMODEL
    modelled = state.model(TypedLeafs(PARAMETERS, LEAFMODEL)).typed()
    assert modelled["items"][5] == f"{tmp_path}/out.txt" and modelled["braces"] == "{literal}"
    assert isinstance(modelled["nested"]["thing"], Thing)


def test_a_placeholder_the_state_does_not_know_fails_as_in_packtivity(tmp_path):
    state = LocalFSState(readwrite=[str(tmp_path)])
    for modelled in (packtivityfix.model, packtivityfix._original_model):
        with pytest.raises(KeyError, match="nowhere"):
            modelled(state, TypedLeafs({"a": "{nowhere}/x"}, None))


def test_a_long_parameter_list_is_normalised_once_not_once_per_item(tmp_path, monkeypatch):
    state = LocalFSState(readwrite=[str(tmp_path)])
    calls = []
    original = TypedLeafs._TypedLeafs__normalize

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TypedLeafs, "_TypedLeafs__normalize", counted)
    data = TypedLeafs({"items": list(range(300))}, None)
    calls.clear()
    state.model(data)
    assert len(calls) == 1
    calls.clear()
    packtivityfix._original_model(state, data)
    assert len(calls) > 300  # packtivity's own: the whole list again for every item


def test_each_jq_program_is_compiled_once():
    TypedLeafs({"a": 1}, None)
    misses = typedleafs.jq.jq.cache_info().misses
    for i in range(20):
        assert TypedLeafs({"a": [i, "b"]}, None).jq(".a[0]").json() == i
    assert typedleafs.jq.jq.cache_info().misses == misses + 1  # the ".a[0]" program, once
