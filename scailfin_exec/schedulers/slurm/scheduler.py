# The slurm scheduler: jobs ready together go as one `sbatch --array` per set of resource requests,
# the whole run is followed with one `squeue` per interval (never one query per job), and the
# shim's result record says how a step ended; a job that left the queue without one failed, with
# what Slurm says of it. Ctrl-C or close() cancels the run's jobs with one `scancel`.

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from ... import transfers as transfer_modes
from ...job import Job, Result, read_result
from ...shipping import build_shim
from .. import JobHandle, Scheduler, SchedulerError, ended_result, run_identity, wait_ended
from ..batching import Batcher
from . import arrays, submit
from .settings import SlurmSettings

TOOLS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
COMMAND_TIMEOUT_S = 60
MISSING_GRACE_S = 2.0  # a job gone from squeue without a record yet: the record may still be on its way
RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}


@dataclass
class SlurmJob:
    """What we know of one array task."""
    array: str | None = None
    task: int | None = None
    stem: str = ""  # RUN_DIR/array-K: its batch script, directory list and per-task error files
    state: str = "pending"  # pending (not sent), queued, running, done
    restarts: int = 0
    gone_since: float | None = None
    result: Result | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def id(self) -> str:
        return f"{self.array}_{self.task}"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SchedulerError(f"the slurm scheduler needs Slurm's {name} on PATH "
                             f"(not found in {os.environ.get('PATH')})")
    return found


def run(argv: list[str], what: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env=env)
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"{what}: {os.path.basename(argv[0])} did not answer in {COMMAND_TIMEOUT_S} s") from None
    if check and proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
        raise SchedulerError(f"{what}: {message}")
    return proc


class SlurmScheduler(Scheduler):
    name = "slurm"
    help = "a Slurm cluster, through sbatch, squeue and scancel (one array per batch)"
    transfers = ("shared",)
    options_class = SlurmSettings

    @classmethod
    def doctor(cls) -> list[str]:
        """Whether sbatch works here (a --test-only submission: checked by slurmctld, never queued)
        and the partitions it sees."""
        try:
            tools = {name: tool(name) for name in TOOLS}
            check_cluster(tools, None)
        except SchedulerError as e:
            return [f"scheduler slurm: unusable: {e}"]
        version = run([tools["sbatch"], "--version"], "sbatch", check=False).stdout.strip()
        lines = [f"scheduler slurm: {tools['sbatch']} ({version or 'version unknown'}); slurmctld answers"]
        test = run([tools["sbatch"], "--test-only", "--wrap=true", "--output=/dev/null"], "sbatch --test-only",
                   check=False)
        said = (test.stderr.strip() or test.stdout.strip() or f"exit {test.returncode}").splitlines()[-1]
        lines.append(f"scheduler slurm: sbatch {'works' if test.returncode == 0 else 'refuses a job'} here: {said}")
        info = run([tools["sinfo"], "--noheader", "--format=%P|%a|%D|%C|%l"], "sinfo", check=False)
        for row in info.stdout.splitlines():
            name, avail, nodes, cpus, limit = (row.split("|") + ["?"] * 5)[:5]
            idle = cpus.split("/")[1] if cpus.count("/") == 3 else "?"  # allocated/idle/other/total
            lines.append(f"scheduler slurm: partition {name.rstrip('*')} ({avail}, {nodes} node(s), "
                         f"{idle} idle CPU(s), "
                         f"time limit {limit}){' [default]' if name.endswith('*') else ''}")
        return lines

    @classmethod
    def from_settings(cls, settings, batch_name: str = "scailfin") -> "SlurmScheduler":
        return cls(settings.run_dir, settings, batch_name=batch_name)

    def __init__(self, run_dir: str | None = None, settings=None, batch_name: str = "scailfin",
                 options: SlurmSettings | None = None):
        from ...config import Settings

        self.settings = settings or Settings()
        self.options = options or self.settings.of("slurm")
        if os.geteuid() == 0:
            raise SchedulerError("refusing to submit as root: submit as the user whose files the workflow uses")
        self.tools = {name: tool(name) for name in TOOLS}
        check_cluster(self.tools, self.options.partition)
        super().__init__(run_dir)
        submit.one_line("the run directory", self.run_dir)
        self.batch_name = batch_name
        self.run_id = run_identity(self.run_dir)
        self.shim = build_shim(self.run_dir)
        self._cond = threading.Condition()
        self._closing = False
        self._arrays = arrays.next_number(self.run_dir)
        self._batcher = Batcher(self._submit_batch, self._submission_failed, "slurm-submit")
        self._follower = threading.Thread(target=self._follow, name="slurm-follow", daemon=True)
        self._follower.start()

    @property
    def capacity(self) -> int:
        return self.settings.max_parallel or 1000

    def _ready(self, job: Job, directory: str) -> Job:
        return transfer_modes.mode(job.transfer).ship(job, directory, frozenset({submit.JOB_FILE}))

    def submit(self, job: Job) -> JobHandle:
        with self._batcher.arriving():
            handle = self._prepare(job)
            handle.native = SlurmJob()
            self._batcher.add(handle)
        return handle

    # -- submitting ----------------------------------------------------------------------------

    def _submit_batch(self, batch: list[JobHandle]) -> None:
        groups: dict[tuple, list[JobHandle]] = {}
        for handle in batch:
            groups.setdefault(submit.resources(handle.job), []).append(handle)
        for shared, handles in groups.items():
            try:
                self._submit_array(shared, handles)
            except SchedulerError as e:
                for handle in handles:
                    self._submission_failed(handle, e)

    def _submit_array(self, shared: tuple, handles: list[JobHandle]) -> None:
        with self._cond:
            self._arrays += 1
            number = self._arrays
        stem = os.path.join(self.run_dir, f"array-{number}")
        with open(stem + ".dirs", "w") as f:
            f.write("".join(h.directory + "\n" for h in handles))
        python = self.settings.worker_python or "python3"
        with open(stem + ".sh", "w") as f:
            f.write(submit.script(self.options, stem + ".dirs", python, self.shim))
        argv = submit.sbatch_argv(self.options, submit.job_name([h.job for h in handles], self.batch_name),
                                  f"scailfin-run-{self.run_id}", len(handles), shared, stem + ".sh",
                                  stem + "-%a.err", self.tools["sbatch"])
        answer = run(argv, f"sbatch of {len(handles)} job(s)").stdout.strip()
        array = answer.split(";")[0]
        if not array.isdigit():
            raise SchedulerError(f"sbatch answered {answer!r}, not a job id")
        try:
            arrays.note(self.run_dir, array, stem)
        except OSError as e:  # the jobs are submitted: they stay so (only a takeover would miss them)
            print(f"scailfin-exec: slurm: cannot note array {array} in {self.run_dir}: {e}", file=sys.stderr)
        with self._cond:
            for task, handle in enumerate(handles):
                handle.native.array, handle.native.task, handle.native.state = array, task, "queued"
                handle.native.stem = stem
            self._cond.notify_all()

    def _submission_failed(self, handle: JobHandle, error: Exception) -> None:
        self._complete(handle, Result(handle.job.id, None, error=f"submission to Slurm failed: {error}"))

    # -- following -----------------------------------------------------------------------------

    def _outstanding(self) -> list[JobHandle]:
        with self._cond:
            return [h for h in self._handles if h.native.array is not None and not h.native.done.is_set()]

    def _follow(self) -> None:
        failing_since = None
        while True:
            with self._cond:
                while not self._closing and not self._outstanding():
                    self._cond.wait()
                if self._closing:
                    return
            outstanding = self._outstanding()
            try:
                seen = self._queue_states({h.native.array for h in outstanding})
                failing_since = None
            except SchedulerError as e:
                failing_since = failing_since or time.monotonic()
                print(f"scailfin-exec: slurm: cannot read the queue ({e}); trying again", file=sys.stderr)
                time.sleep(min(10.0, 1 + time.monotonic() - failing_since))
                continue
            for handle in outstanding:
                self._update(handle, seen.get(handle.native.id))
            with self._cond:
                self._cond.wait(self.options.poll_interval)

    def _queue_states(self, arrays: set[str]) -> dict[str, str]:
        """One squeue for the whole run: each task still in the queue, and its state."""
        argv = [self.tools["squeue"], "--noheader", "--array", "--format=%i|%T", f"--jobs={','.join(sorted(arrays))}"]
        proc = run(argv, "reading the queue", check=False)
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # all of them gone: not an error
            raise SchedulerError((proc.stderr.strip() or f"exit {proc.returncode}").splitlines()[-1])
        states = {}
        for line in proc.stdout.splitlines():
            task, _, state = line.strip().partition("|")
            states[task] = state
        return states

    def _update(self, handle: JobHandle, state: str | None) -> None:
        native = handle.native
        if state is not None:
            native.gone_since = None
            now = "running" if state in RUNNING_STATES else "queued"
            if native.state == "running" and now == "queued":
                native.restarts += 1  # requeued (by an administrator, a node failure or preemption)
            native.state = now
            return
        if os.path.exists(handle.result_file):
            result = self._collect(handle, None)
            if result.record is not None and result.record.stopped == "signal" and not handle.cancelled:
                result.error = self._what_slurm_says(native, "the step was stopped by a signal")  # TIMEOUT, ...
            self._complete(handle, result)
            return
        native.gone_since = native.gone_since or time.monotonic()
        if time.monotonic() - native.gone_since >= MISSING_GRACE_S:
            self._complete(handle, self._collect(handle, self._what_slurm_says(native, "without a result record "
                                                                                         "from the shim")))

    def _what_slurm_says(self, native: SlurmJob, what: str) -> str:
        """How a job ended, as Slurm tells it (scontrol, while it keeps the job; sacct where
        accounting exists): for a job that left no record, or whose step a signal stopped."""
        proc = run([self.tools["scontrol"], "--oneliner", "show", "job", native.id], "scontrol", check=False)
        fields = dict(part.split("=", 1) for part in proc.stdout.split() if "=" in part)
        if proc.returncode == 0 and fields.get("JobState"):
            reason = fields.get("Reason", "None")
            limit = f", time limit {fields['TimeLimit']}" if fields.get("JobState") == "TIMEOUT" else ""
            return (f"Slurm job {native.id} ended {fields['JobState']}" + (f" ({reason})" if reason != "None" else "")
                    + f"{limit}, exit code {fields.get('ExitCode', '?')}, "
                    f"on node {fields.get('NodeList', '?')}: {what}")
        proc = run(["sacct", "--noheader", "--parsable2", "--format=State,ExitCode,NodeList", "--jobs", native.id],
                   "sacct", check=False) if shutil.which("sacct") else None
        if proc is not None and proc.returncode == 0 and proc.stdout.strip():
            state, code, node = (proc.stdout.splitlines()[0].split("|") + ["?", "?", "?"])[:3]
            return f"Slurm job {native.id} ended {state}, exit code {code}, on node {node}: {what}"
        return f"Slurm job {native.id} left the queue (Slurm no longer knows it): {what}"

    def _collect(self, handle: JobHandle, error: str | None) -> Result:
        transfer_modes.mode(handle.job.transfer).bring_back(handle.job, handle.directory, handle.directory)
        if handle.cancelled:
            return Result(handle.job.id, None, error="cancelled", stdout_log=handle.stdout_log,
                          stderr_log=handle.stderr_log)
        result = read_result(handle.job.id, handle.result_file, None, stdout_log=handle.stdout_log,
                             stderr_log=handle.stderr_log)
        if error is not None:
            result.error = error + self._batch_error(handle)
        return result

    def _batch_error(self, handle: JobHandle) -> str:
        """What the batch script itself said (it writes only when it cannot start the shim)."""
        try:
            with open(f"{handle.native.stem}-{handle.native.task}.err", errors="replace") as f:
                text = f.read().strip()
        except OSError:
            return ""
        return ": " + text.splitlines()[-1] if text else ""

    def _complete(self, handle: JobHandle, result: Result) -> None:
        with self._cond:
            if handle.native.done.is_set():
                return
            handle.native.result, handle.native.state = result, "done"
            handle.native.done.set()
            self._cond.notify_all()

    # -- the Scheduler interface ---------------------------------------------------------------

    def poll(self, handle: JobHandle) -> Result | None:
        return ended_result(handle)

    def wait(self, handle: JobHandle, timeout: float | None = None) -> Result:
        return wait_ended(handle, timeout)

    def state(self, handle: JobHandle) -> str:
        native = handle.native
        return "ended" if native.done.is_set() else "running" if native.state == "running" else "queued"

    def native_id(self, handle: JobHandle) -> str | None:
        return handle.native.id if handle.native.array is not None else None

    def restarts(self, handle: JobHandle) -> int:
        return handle.native.restarts

    def cancel(self, handle: JobHandle) -> None:
        with self._cond:
            handle.cancelled = True
        if self._batcher.withdraw(handle) or handle.native.array is None:
            self._complete(handle, Result(handle.job.id, None, error="cancelled"))
        elif not handle.native.done.is_set():
            run([self.tools["scancel"], handle.native.id], f"scancel of {handle.native.id}", check=False)

    def adopt(self, jobs: list[tuple[Job, str | None]]) -> list[JobHandle | None]:
        """Jobs of this run an earlier process submitted, found as array tasks by RUN_DIR/arrays.jsonl,
        or by the run's comment in the queue (an array sent just before that process stopped, not
        noted yet); the queue and each job's result record then tell what became of it. A job
        never sent, with no record, is None (the caller submits it again)."""
        found = arrays.noted(self.run_dir)
        mine = f"scailfin-run-{self.run_id}"
        queue = run([self.tools["squeue"], "--noheader", "--format=%F|%k|%o"], "reading the queue").stdout
        for line in queue.splitlines():
            array, comment, command = (line.strip().split("|") + ["", ""])[:3]
            if comment == mine and command.endswith(".sh") and os.path.dirname(command) == self.run_dir:
                found.update({k: v for k, v in arrays.tasks(self.run_dir, array, command[:-3]).items() if k not in found})
        handles = []
        for job, _ in jobs:
            handle = self._handle(job)
            handle.submitted = os.path.getmtime(handle.job_file) if os.path.exists(handle.job_file) else handle.submitted
            if job.id in found:
                array, task, stem = found[job.id]
                handle.native = SlurmJob(array, task, stem, state="queued")
            elif os.path.exists(handle.result_file):  # it ran and ended, though no array says so
                handle.native = SlurmJob()
                self._complete(handle, self._collect(handle, None))
            else:
                self._handles.remove(handle)
                handles.append(None)
                continue
            handles.append(handle)
        with self._cond:
            self._cond.notify_all()
        return handles

    def detach(self) -> None:
        """Stop submitting and following; the run's jobs stay queued or running (adopt() finds them).
        Jobs still waiting to be sent are not sent: adopt() says so of them."""
        self._batcher.close()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._follower.join(timeout=5)

    def close(self) -> None:
        """Cancel every job of this run still queued or running (one scancel), stop following."""
        for handle in self._batcher.close():
            handle.cancelled = True
            self._complete(handle, Result(handle.job.id, None, error="cancelled"))
        outstanding = self._outstanding()
        for handle in outstanding:
            handle.cancelled = True
        if outstanding:
            run([self.tools["scancel"], *sorted({h.native.id for h in outstanding})], "scancel", check=False)
            deadline = time.monotonic() + 30
            while self._outstanding() and time.monotonic() < deadline:
                time.sleep(0.2)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._follower.join(timeout=5)


def check_cluster(tools: dict[str, str], partition: str | None) -> None:
    """Before anything is submitted: the controller answers, and the partition exists."""
    ping = run([tools["scontrol"], "ping"], "Slurm's controller", check=False)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        said = (ping.stdout.strip() or ping.stderr.strip() or f"exit {ping.returncode}").splitlines()[-1]
        raise SchedulerError(f"Slurm's controller (slurmctld) does not answer: {said}")
    if partition:
        known = run([tools["sinfo"], "--noheader", "--format=%R"], "sinfo").stdout.split()
        if partition not in known:
            raise SchedulerError(f"partition {partition!r} does not exist on this cluster (it has: "
                                 f"{', '.join(known) or 'none'})")

