# The run's record of its arrays (RUN_DIR/arrays.jsonl, a line per sbatch: the array's job id and
# its stem, RUN_DIR/array-K, whose .dirs file lists the jobs' directories in task order). A process
# taking the run over (adopt: `scailfin-exec serve` after a restart) reads here which array task
# each job is.

from __future__ import annotations

import json
import os

ARRAYS = "arrays.jsonl"


def note(run_dir: str, array: str, stem: str) -> None:
    """Append a submitted array (raises OSError if it cannot)."""
    with open(os.path.join(run_dir, ARRAYS), "a") as f:
        f.write(json.dumps({"array": array, "stem": os.path.basename(stem)}) + "\n")


def tasks(run_dir: str, array: str, stem: str) -> dict[str, tuple[str, int, str]]:
    """{job id: (array, task, stem)} of one array, from its .dirs file."""
    stem = os.path.join(run_dir, os.path.basename(stem))
    try:
        with open(stem + ".dirs") as f:
            return {os.path.basename(line.rstrip("\n")): (array, task, stem) for task, line in enumerate(f)}
    except FileNotFoundError:
        return {}


def noted(run_dir: str) -> dict[str, tuple[str, int, str]]:
    """{job id: (array, task, stem)} of every array this run noted; a line that cannot be read (a
    process cut off while writing) is skipped."""
    found = {}
    try:
        with open(os.path.join(run_dir, ARRAYS)) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    found.update(tasks(run_dir, str(entry["array"]), str(entry["stem"])))
                except (ValueError, KeyError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return found


def next_number(run_dir: str) -> int:
    """The number of the run's last array so far (array-K.sh), so that a new process on the same
    run directory never writes over an earlier one's."""
    numbers = [int(name[6:-3]) for name in os.listdir(run_dir)
               if name.startswith("array-") and name.endswith(".sh") and name[6:-3].isdigit()]
    return max(numbers, default=0)
