# The submit side's half of each transfer mode (the worker's half is scailfin_exec/worker/transfers/,
# module for module): what a job sends (ship), which files a batch system must carry for it
# (inputs), whether it needs HTCondor's I/O proxy, and what is done once it has ended
# (bring_back: move returned outputs into the workspace, clear a killed attempt's leftovers).

from __future__ import annotations

import importlib

from ..worker.transfers import MODES


def mode(name: str):
    """The submit half of a transfer mode (its module)."""
    if name not in MODES:
        raise ValueError(f"unknown transfer mode {name!r} (known: {', '.join(MODES)})")
    return importlib.import_module("." + name, __name__)
