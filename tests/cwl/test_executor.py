# The executor scailfin-cwl runs a workflow's steps with: as many in flight as the scheduler's
# capacity, the rest waiting their turn in order and started as steps end (a deque, so a wide
# scatter costs the same per step at 5,000 steps as at 100), and a step that could never fit
# refused by name without holding back the others. Driven here as cwltool's run_jobs drives it,
# with cwltool's own task queue and threads; the steps only wait to be let go.
import logging
import threading
import time
import types

import pytest
from cwltool.context import RuntimeContext
from cwltool.job import CommandLineJob
from cwltool.task_queue import TaskQueue

from scailfin_exec.cwl import ScaledExecutor

pytestmark = pytest.mark.fast


class Step(CommandLineJob):
    """A step that records when it starts and runs until it is let go."""

    def __init__(self, name, log, cores=1):  # noqa: super().__init__ needs a whole tool
        self.name, self.log = name, log
        self.builder = types.SimpleNamespace(resources={"ram": 64, "cores": cores, "cudaDeviceCount": 0})
        self.go = threading.Event()

    def run(self, runtimeContext, tmpdir_lock=None):
        self.log.append(self.name)
        assert self.go.wait(30)


def drive(capacity, steps):
    """An executor of capacity with steps handed to it, its task queue running; returns
    (executor, runtime context) with the context's lock held, as run_jobs holds it."""
    executor = ScaledExecutor(capacity)
    executor.taskqueue = TaskQueue(threading.Lock(), capacity)
    context = RuntimeContext()
    context.workflow_eval_lock = threading.Condition(threading.RLock())
    context.workflow_eval_lock.acquire()
    for step in steps:
        executor.run_job(step, context)
    return executor, context


def settle(log, count):
    deadline = time.monotonic() + 10
    while len(log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # and nothing more starts
    return list(log)


def finish(executor, context, steps):
    for step in steps:
        step.go.set()
    while executor.taskqueue.in_flight > 0:
        executor.wait_for_next_completion(context)
        executor.run_job(None, context)
    context.workflow_eval_lock.release()
    executor.taskqueue.join()


def test_steps_beyond_the_capacity_wait_and_start_in_order_as_steps_end():
    log = []
    steps = [Step(f"step{i}", log) for i in range(5)]
    executor, context = drive(2, steps)
    try:
        assert settle(log, 2) == ["step0", "step1"]
        assert len(executor.pending_jobs) == 3
        steps[1].go.set()
        executor.wait_for_next_completion(context)
        executor.run_job(None, context)
        assert settle(log, 3) == ["step0", "step1", "step2"]
        steps[0].go.set()
        steps[2].go.set()
        while len(log) < 5:
            executor.wait_for_next_completion(context)
            executor.run_job(None, context)
        assert log == [f"step{i}" for i in range(5)] and not executor.pending_jobs
    finally:
        finish(executor, context, steps)
    assert executor.allocated_cores == 0 and not executor.exceptions


def test_a_step_asking_for_more_than_the_scheduler_runs_at_once_is_refused_by_name(caplog):
    log = []
    steps = [Step("huge", log, cores=8), Step("small", log)]
    with caplog.at_level(logging.ERROR, logger="cwltool"):
        executor, context = drive(4, steps)
        try:
            assert settle(log, 1) == ["small"]
        finally:
            finish(executor, context, steps)
    assert 'Job "huge" cannot be run' in caplog.text and "4 cores" in caplog.text
