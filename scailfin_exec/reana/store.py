# The service's memory: every job it accepted, in one SQLite file (WAL, one connection behind a
# lock), written before the job is handed to a scheduler and on every change of status, so a
# service started again answers for all of them and can take over those that had not ended.

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, fields

from ..job import Job, job_from_dict, job_to_dict

TERMINAL = ("finished", "failed", "stopped")


@dataclass
class Row:
    job_id: str
    workflow_uuid: str
    job_name: str
    placement: str  # mapping.Placement as JSON: which scheduler, and what its jobs share
    run_dir: str  # the scheduler's run directory: where a restarted service finds the job again
    job: str  # the Job, as JSON
    docker_img: str
    cmd: str
    cvmfs_mounts: str
    status: str = "queued"  # queued, running, finished, failed, stopped
    native: str | None = None  # the scheduler's id (HTCondor cluster.proc, the local shim's pid)
    restart_count: int = 0
    outcome: str | None = None  # once ended, in one line: what ran it where, or why it did not finish
    accepted: float = 0.0
    started: float | None = None
    ended: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def the_job(self) -> Job:
        return job_from_dict(json.loads(self.job))

    @staticmethod
    def job_json(job: Job) -> str:
        return json.dumps(job_to_dict(job))


_COLUMNS = [f.name for f in fields(Row)]


class Store:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        # job rows hold command lines and environments: the service user's alone
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash of the process loses nothing committed
        self._db.execute(f"CREATE TABLE IF NOT EXISTS jobs ({', '.join(_column(f) for f in fields(Row))})")
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)")

    def add(self, row: Row) -> None:
        row.accepted = row.accepted or time.time()
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                             [getattr(row, c) for c in _COLUMNS])

    def update(self, job_id: str, **changes) -> None:
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in changes)} WHERE job_id = ?",
                             [*changes.values(), job_id])

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def all(self) -> list[Row]:
        return self._select("ORDER BY accepted", ())

    def unfinished(self) -> list[Row]:
        return self._select(f"WHERE status NOT IN ({', '.join('?' * len(TERMINAL))}) ORDER BY accepted", TERMINAL)

    def _select(self, where: str, args) -> list[Row]:
        with self._lock:
            cursor = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs {where}", args)
            return [Row(*values) for values in cursor.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _column(f) -> str:
    kind = {"int": "INTEGER", "float": "REAL", "float | None": "REAL"}.get(f.type, "TEXT")
    return f"{f.name} {kind}" + (" PRIMARY KEY" if f.name == "job_id" else "")

