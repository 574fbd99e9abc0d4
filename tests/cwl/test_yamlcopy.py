# cwltool deep-copies a workflow's job order (read from the job file as ruamel.yaml's commented
# types) before its steps run; ruamel.yaml copies a list's YAML attributes once per item, so a
# 5,000-item scatter input cost N^2. scailfin_exec.cwl makes that copy copy them once, and the
# copy is still whole: items, comments, line and column of every item.
import copy
import io

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase

import scailfin_exec.cwl  # noqa: F401  (installs the copy)

pytestmark = pytest.mark.fast

JOB = "# a scatter's inputs\nitems:\n" + "".join(f"  - {i}  # item {i}\n" for i in range(2000))


def test_a_deep_copy_of_a_long_yaml_list_copies_its_attributes_once_not_per_item(monkeypatch):
    order = YAML(typ="rt").load(JOB)
    calls = []
    original = CommentedBase.copy_attributes

    def counted(self, t, memo=None):
        calls.append(type(self).__name__)
        return original(self, t, memo)

    monkeypatch.setattr(CommentedBase, "copy_attributes", counted)
    copied = copy.deepcopy(order)
    assert calls.count("CommentedSeq") == 1  # ruamel.yaml's own: 2,000
    assert copied == order


def test_the_copy_of_a_yaml_list_keeps_its_items_comments_and_positions():
    order = YAML(typ="rt").load(JOB)
    copied = copy.deepcopy(order)
    items, mine = order["items"], copied["items"]
    assert mine == items == list(range(2000)) and mine is not items
    assert mine.lc.item(1234) == items.lc.item(1234) == (1236, 4)
    out = io.StringIO()
    YAML(typ="rt").dump(copied, out)
    assert "# item 1999" in out.getvalue() and out.getvalue().startswith("# a scatter's inputs")
    mine.append(5)
    assert len(items) == 2000  # a copy, not a view
