"""Claiming ahead (config `claim_ahead`): a worker claims several short jobs in
one transaction, runs them one after another and records them together
(Store.finish_all), giving back those it did not start (Store.release).

Only the SQLite backend claims ahead (PostgreSQL workers record each job in
one round trip already), so these tests run on SQLite only.
"""

from __future__ import annotations

import pytest

from queuectl.model import NewJob
from queuectl.policy import COMPLETE
from queuectl.runner import Outcome
from queuectl.store.base import Store

pytestmark = pytest.mark.backends("sqlite")   # the only backend that claims ahead

OK = Outcome("succeeded", 0, duration=0.001)


def nj(job_id, max_retries=3, **kw) -> NewJob:
    return NewJob(id=job_id, command="true", max_retries=max_retries, **kw)


def _worker(store, worker_id="w1"):
    store.register_worker(worker_id, "testhost", 1, 30)
    return worker_id


def test_finish_all_claims_the_next_job_and_up_to_ahead_more_in_order(store):
    w = _worker(store)
    store.enqueue([nj(f"j{i}") for i in range(6)])
    claimed, lost = store.finish_all(w, [], 30, None, ahead=3)
    assert [j.id for j in claimed] == ["j0", "j1", "j2", "j3"] and lost == []
    assert {j.state for j in store.list_jobs()} == {"processing", "pending"}
    assert all(store.get_job(j.id).worker_id == w for j in claimed)
    # Recording all four and claiming again is one call, one transaction.
    claimed2, lost = store.finish_all(w, [(j, OK, COMPLETE) for j in claimed], 30, None,
                                      ahead=3)
    assert [j.id for j in claimed2] == ["j4", "j5"] and lost == []
    assert [store.get_job(f"j{i}").state for i in range(4)] == ["completed"] * 4
    assert [e["event"] for e in store.history("j0")] == ["enqueued", "processing",
                                                         "completed"]


def test_only_fresh_jobs_with_a_retry_to_spare_are_taken_ahead_and_order_is_kept(store):
    # A crash of its worker costs a job taken ahead an attempt it never ran:
    # never one without a retry left, nor one that already ran (its last
    # output would be cleared). The claim stops at the first such job rather
    # than skip it, so priority and FIFO order hold.
    w = _worker(store)
    store.enqueue([nj("a"), nj("b"), nj("c", max_retries=0), nj("d")])
    claimed, _ = store.finish_all(w, [], 30, None, ahead=5)
    assert [j.id for j in claimed] == ["a", "b"]
    claimed, _ = store.finish_all(w, [(j, OK, COMPLETE) for j in claimed], 30, None, ahead=5)
    assert [j.id for j in claimed] == ["c", "d"]      # c is next in line: claimed, not ahead


def test_a_result_whose_lease_was_lost_is_reported_and_the_rest_recorded(store, clock):
    w = _worker(store)
    store.enqueue([nj("a"), nj("b")])
    claimed, _ = store.finish_all(w, [], 30, None, ahead=1)
    a, b = claimed
    retry = lambda job: COMPLETE.__class__("retry", 0.0)
    assert store.rescue_expired(retry) == []        # (the rescuer starts watching)
    clock.advance(31)                              # both leases run out ...
    rescued = store.rescue_expired(retry)
    assert {j.id for j in rescued} == {"a", "b"}
    claimed, lost = store.finish_all(w, [(a, OK, COMPLETE)], 30, None, ahead=0)
    assert [j.id for j in lost] == ["a"]            # ... its result is not recorded
    assert store.get_job("a").state == "processing" and claimed[0].id == "a"


def test_heartbeat_renews_every_job_the_worker_holds(store, clock):
    w = _worker(store)
    store.enqueue([nj("a"), nj("b"), nj("c")])
    claimed, _ = store.finish_all(w, [], 30, None, ahead=2)
    clock.advance(20)
    assert store.heartbeat(w, "a", 30) is True
    leases = {store.get_job(j.id).lease_expires_at for j in claimed}
    assert leases == {clock.now_ms() + 30_000}
    assert store.heartbeat(w, "nope", 30) is False


def test_release_makes_unstarted_jobs_pending_as_if_never_claimed(store):
    w = _worker(store)
    store.enqueue([nj("a"), nj("b"), nj("c")])
    before = {j.id: j.to_dict() for j in store.list_jobs()}
    claimed, _ = store.finish_all(w, [], 30, None, ahead=2)
    store.release(w, claimed[1:])
    for job_id in ("b", "c"):
        after = store.get_job(job_id).to_dict()
        same = lambda d: {k: v for k, v in d.items() if k not in ("updated_at", "after")}
        assert same(after) == same(before[job_id])
        assert [e["event"] for e in store.history(job_id)] == ["enqueued"]
    assert store.get_job("a").state == "processing"
    # Another worker can take them now.
    other = _worker(store, "w2")
    assert store.claim(other, 30).id == "b"


def test_a_job_cancelled_while_it_waited_ahead_ends_cancelled_when_released(store):
    w = _worker(store)
    store.enqueue([nj("a"), nj("b")])
    claimed, _ = store.finish_all(w, [], 30, None, ahead=1)
    assert store.cancel("b") == "cancelling"        # flagged: its worker must stop it
    store.release(w, [claimed[1]])
    b = store.get_job("b")
    assert b.state == "cancelled" and b.lease_expires_at is None
    assert [e["event"] for e in store.history("b")][-1] == "cancelled"


def test_the_default_store_does_not_claim_ahead():
    assert Store.can_claim_ahead is False


# ---------------------------------------------------------------- the worker's side

def _worker_with_batch(store, jobs, ahead=7):
    """A Worker whose last claim took `jobs` (the first to run now, the rest ahead)."""
    import time
    from queuectl.worker import Worker
    store.enqueue(jobs)
    worker = Worker(store, "w1", quiet=True)
    _worker(store)
    claimed, _ = store.finish_all("w1", [], 30, None, ahead=ahead)
    worker.ahead, worker._batch_at = claimed[1:], time.monotonic()
    return worker, claimed


def test_a_result_a_rescue_would_bury_is_recorded_before_the_next_job_starts(store):
    # `a` has no retry left: were its worker to die with a's result unrecorded,
    # the rescue would bury it. So it is recorded before b starts.
    worker, (a, b, c) = _worker_with_batch(store, [nj("a", max_retries=0), nj("b"), nj("c")])
    nxt, waited = worker.execute(a)
    assert (nxt.id, waited) == ("b", True)
    assert store.get_job("a").state == "completed"
    # b has retries to spare: its result may wait for c's.
    nxt, waited = worker.execute(b)
    assert (nxt.id, waited) == ("c", True)
    assert store.get_job("b").state == "processing"
    worker.execute(c)
    assert {j.id: j.state for j in store.list_jobs()} == {
        "a": "completed", "b": "completed", "c": "completed"}


def test_jobs_taken_back_from_a_frozen_worker_are_not_started(store):
    import time
    worker, (a, b, c) = _worker_with_batch(store, [nj("a"), nj("b"), nj("c")])
    store.release("w1", [b])                # (as a rescue would: b is no longer ours)
    worker._batch_at = time.monotonic() - 60          # the worker was frozen a minute
    nxt, waited = worker.execute(a)
    assert (nxt.id, waited) == ("c", True)            # b skipped, c still ours
    assert worker.ahead == []


def test_jobs_a_failed_release_could_not_give_back_stay_the_workers(store, monkeypatch):
    from queuectl.errors import StoreError
    worker, (a, b, c) = _worker_with_batch(store, [nj("a"), nj("b"), nj("c")])

    def broken(*args):
        raise StoreError("database q.db: database or disk is full")
    monkeypatch.setattr(store, "release", broken)
    worker._release()
    assert [j.id for j in worker.ahead] == ["b", "c"]     # kept: to run, or give back later
