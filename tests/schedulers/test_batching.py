# How jobs ready together are gathered into one submission (no scheduler: the batcher alone,
# sending to a list). The schedulers' own tests show the batches reaching a real schedd and Slurm.
import threading
import time

import pytest

from scailfin_exec.schedulers import SchedulerError, batching

pytestmark = pytest.mark.fast


class Handle:
    cancelled = False

    def __init__(self, name):
        self.name = name


@pytest.fixture
def sent():
    batches = []
    batcher = batching.Batcher(lambda batch: batches.append([h.name for h in batch]),
                               lambda handle, error: None, "test-batcher")
    yield batcher, batches
    batcher.close()


def submit(batcher, name, preparing_s=0.0):
    """What a scheduler's submit() does: prepare the job (here: take preparing_s), then add it."""
    with batcher.arriving():
        time.sleep(preparing_s)
        batcher.add(Handle(name))


def wait_for(batches, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while sum(len(b) for b in batches) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_jobs_each_slower_to_prepare_than_the_quiet_time_still_go_as_one_batch(sent):
    batcher, batches = sent
    for i in range(4):  # a submitter slowed down (a loaded node, a big workspace to ship)
        submit(batcher, f"step-{i}", preparing_s=3 * batching.QUIET_S)
    wait_for(batches, 4)
    assert batches == [["step-0", "step-1", "step-2", "step-3"]]


def test_jobs_from_many_threads_at_once_go_as_one_batch(sent):
    batcher, batches = sent
    ready = threading.Barrier(20)  # a scatter's steps, ready at once (cwltool runs each on a thread)

    def step(i):
        ready.wait()
        submit(batcher, f"step-{i}", 0.01)
    threads = [threading.Thread(target=step, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(batches, 20)
    assert len(batches) == 1 and sorted(batches[0]) == sorted(f"step-{i}" for i in range(20))


def test_a_lone_job_leaves_after_the_quiet_time_not_the_whole_window(sent):
    batcher, batches = sent
    start = time.monotonic()
    submit(batcher, "alone")
    wait_for(batches, 1)
    assert batches == [["alone"]]
    assert time.monotonic() - start < batching.WINDOW_S / 2


def test_a_stream_longer_than_the_window_goes_in_parts(sent, monkeypatch):
    monkeypatch.setattr(batching, "WINDOW_S", 0.3)
    batcher, batches = sent
    for i in range(8):  # 0.8 s of jobs without a pause
        submit(batcher, f"step-{i}", preparing_s=0.1)
    wait_for(batches, 8)
    assert len(batches) >= 2
    assert [name for batch in batches for name in batch] == [f"step-{i}" for i in range(8)]


def test_a_closed_batcher_refuses_a_job_before_it_is_prepared(sent):
    batcher, batches = sent
    assert batcher.close() == []
    prepared = []
    with pytest.raises(SchedulerError, match="the scheduler is closed"):
        with batcher.arriving():
            prepared.append("job directory")
    assert prepared == [] and batches == []


def test_a_job_withdrawn_before_its_batch_leaves_is_never_sent(sent):
    batcher, batches = sent
    kept, withdrawn = Handle("kept"), Handle("withdrawn")
    with batcher.arriving():
        batcher.add(kept)
        batcher.add(withdrawn)
        assert batcher.withdraw(withdrawn)
    wait_for(batches, 1)
    time.sleep(2 * batching.QUIET_S)
    assert batches == [["kept"]]
    assert not batcher.withdraw(kept)  # sent: too late to withdraw
