# A deep copy of a YAML list (ruamel.yaml's CommentedSeq) that costs what the list holds, for the
# job orders cwltool copies: ruamel.yaml (0.18 and 0.19, the newest) copies a list's YAML
# attributes (its comments, the line and column of every item) once per item, each time whole,
# so copying an N-item list costs N^2 (4,000 items: 17 s, measured) and cwltool deep-copies a
# workflow's job order more than once before its first step runs: a 5,000-way scatter over a
# list from the job file spent most of its submit-side CPU there. Upstream: ruamel-yaml ticket
# 513. The copy is the same (items copied, then the list's attributes, once).

from __future__ import annotations

import copy

from ruamel.yaml.comments import CommentedSeq


def _deepcopy(self, memo):
    res = self.__class__()
    memo[id(self)] = res
    for item in self:
        res.append(copy.deepcopy(item, memo))
    self.copy_attributes(res, memo=memo)
    return res


def install() -> None:
    """Make copy.deepcopy of every CommentedSeq in this process take the linear path."""
    CommentedSeq.__deepcopy__ = _deepcopy
