"""Contract tests for managing jobs: remove, requeue, edit, cancel --all's
cancel_candidates/cancel_many, remove_queue and list_jobs(queues=...).

Both backends, the fixture's fake clock, only the abstract Store interface (as
tests/test_store_contract.py)."""

from __future__ import annotations

import pytest

from queuectl.errors import Conflict, NotFound
from queuectl.model import NewJob
from queuectl.policy import Decision

from test_store_contract import (FAIL, OK, claim_one, job_events, nj, put_in_state, register,
                                 snapshot)


def dep(job_id, *after, queue="default"):
    return NewJob(job_id, "true", max_retries=0, queue=queue, after=list(after))


# ---------------------------------------------------------------- remove

@pytest.mark.parametrize("state", ["pending", "failed", "completed", "dead", "cancelled"])
def test_remove_deletes_a_job_that_is_not_running_with_its_events(store, clock, state):
    register(store, "w1")
    put_in_state(store, clock, "j", state)
    store.enqueue([nj("other")])
    assert store.remove("j") == []
    with pytest.raises(NotFound):
        store.get_job("j")
    assert store.history("j") == []
    assert [j.id for j in store.list_jobs()] == ["other"]


def test_remove_refuses_a_running_or_missing_job_and_changes_nothing(store, clock):
    register(store, "w1")
    put_in_state(store, clock, "run", "processing")
    before = snapshot(store, "run")
    with pytest.raises(Conflict, match="job run is processing; cancel it first"):
        store.remove("run")
    with pytest.raises(NotFound, match="job nope not found"):
        store.remove("nope")
    assert snapshot(store, "run") == before


def test_remove_of_a_job_with_waiting_dependents_needs_force_which_cancels_them(store, clock):
    store.enqueue([nj("a"), dep("b", "a"), dep("c", "b"), nj("x"), dep("d", "a", "x")])
    before = snapshot(store, "a")
    with pytest.raises(Conflict, match=r"job a has 2 waiting dependents \(b, d\); --force"):
        store.remove("a")
    assert snapshot(store, "a") == before
    assert store.remove("a", force=True) == ["b", "d"]
    for job_id in ("b", "c", "d"):             # c waited for b: settled as well
        job = store.get_job(job_id)
        assert job.state == "cancelled" and job.finished_at is not None
    assert store.get_job("b").last_error == "dependency a was removed"
    assert job_events(store, "b")[-1] == ("cancelled", 0)
    assert store.get_job("x").state == "pending"


def test_remove_of_a_completed_dependency_leaves_its_dependents_waiting_on_the_rest(store, clock):
    register(store, "w1")
    store.enqueue([nj("a"), nj("x", run_at=clock.now_ms() + 60_000), dep("b", "a", "x")])
    store.finish(claim_one(store, "w1", "a"), OK, Decision("complete"))
    assert store.get_job("b").blocked
    assert store.remove("a") == []              # a completed dependency did its part
    assert store.get_job("b").blocked and store.get_job("b").state == "pending"
    clock.advance(61)
    store.finish(claim_one(store, "w1", "x"), OK, Decision("complete"))
    assert not store.get_job("b").blocked
    assert claim_one(store, "w1", "b").id == "b"


# ---------------------------------------------------------------- requeue

@pytest.mark.parametrize("state", ["completed", "dead", "cancelled"])
def test_requeue_puts_an_ended_job_back_with_its_history(store, clock, state):
    register(store, "w1")
    put_in_state(store, clock, "j", state)
    history = store.history("j")
    clock.advance(5)
    assert store.requeue("j") == state
    job = store.get_job("j")
    assert (job.state, job.attempts, job.finished_at) == ("pending", 0, None)
    assert job.run_at == clock.now_ms()
    after = store.history("j")
    assert after[:-1] == history
    assert after[-1]["event"] == "enqueued" and after[-1]["requeued"] == state
    assert claim_one(store, "w1", "j").attempts == 1


@pytest.mark.parametrize("state", ["pending", "failed", "processing"])
def test_requeue_of_a_waiting_or_running_job_is_a_conflict_naming_its_state(store, clock, state):
    register(store, "w1")
    put_in_state(store, clock, "j", state)
    before = snapshot(store, "j")
    with pytest.raises(Conflict, match=f"job j is {state}; only completed, dead or cancelled"):
        store.requeue("j")
    with pytest.raises(NotFound):
        store.requeue("nope")
    assert snapshot(store, "j") == before


def test_requeue_after_a_dead_dependency_needs_the_dependency_requeued_first(store, clock):
    register(store, "w1")
    store.enqueue([nj("a", max_retries=0), dep("b", "a")])
    store.finish(claim_one(store, "w1", "a"), FAIL, Decision("bury"))
    assert store.get_job("b").state == "cancelled"       # settled when a died
    before = snapshot(store, "b")
    with pytest.raises(Conflict, match=r"job b runs after a, which is dead; requeue that "
                                       r"first \(queuectl requeue a b\)"):
        store.requeue("b")
    assert snapshot(store, "b") == before
    store.requeue("a")
    assert store.get_job("b").state == "cancelled", "dependents are not requeued with it"
    store.requeue("b")
    assert store.get_job("b").blocked, "b waits for a again"
    assert claim_one(store, "w1", "a").id == "a"
    assert store.claim("w1", 30) is None
    store.finish(store.get_job("a"), OK, Decision("complete"))
    assert claim_one(store, "w1", "b").id == "b"


# ---------------------------------------------------------------- edit

@pytest.mark.parametrize("state", ["pending", "failed"])
def test_edit_changes_a_waiting_job(store, clock, state):
    register(store, "w1")
    put_in_state(store, clock, "j", state)
    store.edit("j", priority=7, max_retries=9, timeout=12.5)
    job = store.get_job("j")
    assert (job.priority, job.max_retries, job.timeout, job.state) == (7, 9, 12.5, state)
    store.edit("j", delay=30)
    assert store.get_job("j").run_at == clock.now_ms() + 30_000
    store.edit("j", run_at=clock.now_ms() + 1000)
    assert store.get_job("j").run_at == clock.now_ms() + 1000
    assert store.get_job("j").priority == 7, "a field not given is unchanged"
    assert store.claim("w1", 30) is None
    store.edit("j", delay=0)
    assert claim_one(store, "w1", "j").id == "j"


@pytest.mark.parametrize("state", ["processing", "completed", "dead", "cancelled"])
def test_edit_of_a_running_or_ended_job_is_a_conflict_naming_its_state(store, clock, state):
    register(store, "w1")
    put_in_state(store, clock, "j", state)
    before = snapshot(store, "j")
    with pytest.raises(Conflict, match=f"job j is {state}; only a waiting job"):
        store.edit("j", priority=5)
    with pytest.raises(NotFound):
        store.edit("nope", priority=5)
    assert snapshot(store, "j") == before


# ---------------------------------------------------------------- cancel many

def test_cancel_candidates_and_cancel_many(store, clock):
    register(store, "w1")
    store.enqueue([NewJob("r", "true", max_retries=0, queue="a")])
    claim_one(store, "w1", "r")
    store.enqueue([NewJob("p1", "true", max_retries=0, queue="a"),
                   NewJob("p2", "true", max_retries=0, queue="b"),
                   NewJob("p3", "true", max_retries=0)])
    waiting = ["pending", "failed"]
    everything = waiting + ["processing"]
    assert store.cancel_candidates(everything) == [
        ("r", "processing"), ("p1", "pending"), ("p2", "pending"), ("p3", "pending")]
    assert store.cancel_candidates(everything, ["a"]) == [("r", "processing"), ("p1", "pending")]
    assert store.cancel_candidates(waiting, ["a", "b"]) == [("p1", "pending"), ("p2", "pending")]
    # Not running=True: a running job is left alone; a missing one is skipped.
    assert store.cancel_many(["r", "p1", "gone"], running=False) == (["p1"], [])
    assert store.get_job("r").state == "processing" and not store.cancel_requested("r")
    assert store.cancel_many(["r", "p1", "p2"], running=True) == (["p2"], ["r"])
    assert store.cancel_requested("r")
    assert store.get_job("p3").state == "pending"


# ---------------------------------------------------------------- queues, lists

def test_remove_queue_only_without_jobs(store, clock):
    with pytest.raises(NotFound, match="queue nosuch not found"):
        store.remove_queue("nosuch")
    store.set_queue("empty", paused=True)
    store.set_queue("busy", limit=2)
    store.enqueue([NewJob("j", "true", max_retries=0, queue="busy")])
    with pytest.raises(Conflict, match="queue busy has 1 job; remove or purge them first"):
        store.remove_queue("busy")
    store.remove_queue("empty")
    assert [q["name"] for q in store.queues()] == ["busy"]
    assert store.queues()[0]["limit"] == 2


def test_list_jobs_of_some_queues(store, clock):
    register(store, "w1")
    store.enqueue([NewJob(f"j{i}", "true", max_retries=0, queue=q)
                   for i, q in enumerate(["a", "b", "c", "a", "b"])])
    ids = [j.id for j in store.list_jobs(queues=["a", "b"])]
    assert ids == ["j0", "j1", "j3", "j4"]
    assert [j.id for j in store.list_jobs(None, 2, queues=["a", "b"], newest_first=True)] == [
        "j4", "j3"]
    claim_one(store, "w1", "j0")
    assert [j.id for j in store.list_jobs("pending", queues=["a"])] == ["j3"]
    assert [j.id for j in store.list_jobs(queues=["a"], search="J3")] == ["j3"]
