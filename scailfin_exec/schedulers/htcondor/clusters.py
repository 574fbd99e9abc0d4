# The run's record of its batches' clusters (RUN_DIR/clusters.jsonl, a line per batch: cluster,
# first proc, job ids in proc order). The schedd makes a batch's jobs itself, after the submit
# call (late materialization), and a site's max_materialize can hold some back for long: a
# process taking the run over finds those jobs neither in the queue nor in the history, and
# reads here which proc each will have.

from __future__ import annotations

import json
import os

CLUSTERS = "clusters.jsonl"


def note(run_dir: str, cluster: int, first: int, ids: list[str]) -> None:
    """Append a submitted batch (raises OSError if it cannot)."""
    with open(os.path.join(run_dir, CLUSTERS), "a") as f:
        f.write(json.dumps({"cluster": cluster, "first": first, "ids": ids}) + "\n")


def unmade(run_dir: str, making: dict[int, int]) -> dict[str, tuple[int, int]]:
    """{job id: (cluster, proc)} of the jobs still to be made; making: {cluster: the next proc its
    factory will make} of the run's clusters whose factory is still there."""
    found = {}
    try:
        with open(os.path.join(run_dir, CLUSTERS)) as f:
            for line in f:
                batch = json.loads(line)
                cluster, first = batch["cluster"], batch["first"]
                if cluster in making:
                    found.update((job_id, (cluster, first + offset)) for offset, job_id in enumerate(batch["ids"])
                                 if first + offset >= making[cluster])
    except FileNotFoundError:
        pass
    return found
