"""Claiming ahead (config `claim_ahead`): a worker claims one short job and
reserves several more in one transaction, runs them one after another and
records them together (Store.finish_all), giving back those it did not start
(Store.release). Reserved jobs stay `pending` until they really start.

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
    # Only the first is claimed; the three taken ahead are reserved, pending.
    assert [store.get_job(f"j{i}").state for i in range(6)] == \
        ["processing"] + ["pending"] * 5
    assert store.counts()["processing"] == 1
    assert [e["event"] for e in store.history("j1")] == ["enqueued"]
    for j in claimed[1:]:
        assert store.held_state(w, j) == "ok"
        j.attempts, j.started_at = j.attempts + 1, store.now_ms()     # (as the worker runs it)
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
    clock.advance(31)                              # the lease and the reservation run out ...
    rescued = store.rescue_expired(retry)
    assert {j.id for j in rescued} == {"a"}         # (b was never running)
    assert store.held_state(w, b) == "ok"           # expired, but nobody took it yet
    other = _worker(store, "w2")
    assert store.claim(other, 30).id == "b"         # anyone may take it now ...
    assert store.held_state(w, b) == "gone"         # ... and then w must not start it
    assert store.claim(other, 30).id == "a"
    b.attempts, b.started_at = 1, store.now_ms()
    claimed, lost = store.finish_all(w, [(a, OK, COMPLETE), (b, OK, COMPLETE)], 30, None,
                                     ahead=0)
    assert {j.id for j in lost} == {"a", "b"}       # ... their results are not recorded
    assert {store.get_job(j).worker_id for j in "ab"} == {other}
    assert {store.get_job(j).state for j in "ab"} == {"processing"}


def test_heartbeat_renews_every_job_the_worker_holds(store, clock):
    w = _worker(store)
    store.enqueue([nj("a"), nj("b"), nj("c")])
    claimed, _ = store.finish_all(w, [], 30, None, ahead=2)
    clock.advance(20)
    assert store.heartbeat(w, "a", 30, ["b", "c"]) is True
    assert store.get_job("a").lease_expires_at == clock.now_ms() + 30_000
    # Reservations too: another worker still skips b and c after the first term.
    clock.advance(20)
    other = _worker(store, "w2")
    assert store.claim(other, 30) is None
    clock.advance(11)
    assert store.claim(other, 30).id == "b"          # b's reservation ran out
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


def test_a_job_cancelled_or_paused_while_it_waited_ahead_is_not_to_start(store):
    w = _worker(store)
    store.enqueue([nj("a"), nj("b"), nj("c", queue="q")])
    claimed, _ = store.finish_all(w, [], 30, None, ahead=2)
    assert store.cancel("b") == "cancelled"         # pending: cancelled at once
    assert store.held_state(w, claimed[1]) == "gone"
    store.set_queue("q", paused=True)
    assert store.held_state(w, claimed[2]) == "paused"
    store.release(w, claimed[1:])
    b = store.get_job("b")
    assert b.state == "cancelled"
    assert [e["event"] for e in store.history("b")] == ["enqueued", "cancelled"]


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
    worker.batch.ahead, worker.batch.claimed_at = claimed[1:], time.monotonic()
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
    assert store.get_job("b").state == "pending"      # ran; recorded with c's end
    worker.execute(c)
    assert {j.id: j.state for j in store.list_jobs()} == {
        "a": "completed", "b": "completed", "c": "completed"}


def test_jobs_taken_back_from_a_frozen_worker_are_not_started(store, clock):
    import time
    worker, (a, b, c) = _worker_with_batch(store, [nj("a"), nj("b"), nj("c")])
    nxt, waited = worker.execute(a)
    assert (nxt.id, waited) == ("b", True)
    # Frozen for a minute before b's turn: b's reservation ran out and
    # another worker took it.
    clock.advance(60)
    worker.batch.claimed_at = worker.batch.renewed_at = time.monotonic() - 60
    other = _worker(store, "w2")
    assert store.claim(other, 30).id == "b"
    nxt, waited = worker.execute(b)                   # not started: everything given back
    assert store.get_job("b").worker_id == "w2"
    assert [e["event"] for e in store.history("b")] == ["enqueued", "processing"]
    assert store.get_job("a").state == "completed"
    assert (nxt.id, waited) == ("c", False)           # claimed again, as a fresh claim


def test_jobs_a_failed_release_could_not_give_back_stay_the_workers(store, monkeypatch):
    from queuectl.errors import StoreError
    worker, (a, b, c) = _worker_with_batch(store, [nj("a"), nj("b"), nj("c")])

    def broken(*args):
        raise StoreError("database q.db: database or disk is full")
    monkeypatch.setattr(store, "release", broken)
    worker.batch.release()
    assert [j.id for j in worker.batch.ahead] == ["b", "c"]     # kept: to run, or give back later


def test_a_job_edited_or_cancelled_and_requeued_while_reserved_is_no_longer_reserved(store):
    # The worker holds the job's old values: an edit takes the job from it
    # (it is not started), and a requeued job is anyone's at once.
    w = _worker(store)
    store.enqueue([nj("a"), nj("b"), nj("c")])
    claimed, _ = store.finish_all(w, [], 30, None, ahead=2)
    store.edit("b", priority=5)
    assert store.held_state(w, claimed[1]) == "gone"
    assert store.cancel("c") == "cancelled"
    assert store.requeue("c") == "cancelled"
    assert store.held_state(w, claimed[2]) == "gone"
    other = _worker(store, "w2")
    assert store.claim(other, 30).id == "b"
    assert store.claim(other, 30).id == "c"
