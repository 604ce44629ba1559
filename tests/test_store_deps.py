"""Contract tests for job dependencies (`after`), on every backend.

Written against the abstract Store through the `store` / `make_store`
fixtures (conftest.BACKENDS parametrises them); time is the FakeClock, except
in the race test, which uses OS processes and the real clock.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from queuectl.clock import SystemClock
from queuectl.errors import InvalidInput
from queuectl.model import NewJob
from queuectl.payload import parse_exported
from queuectl.policy import BURY, COMPLETE
from queuectl.runner import Outcome

OK = Outcome("succeeded", 0, None, "", False, 0.01)
FAIL = Outcome("exit", 3, "exit code 3", "", False, 0.01)


def nj(job_id, after=None, **kw):
    return NewJob(id=job_id, command="true", max_retries=kw.pop("max_retries", 0),
                  after=after, **kw)


def register(store, worker_id="w1"):
    store.register_worker(worker_id, "testhost", os.getpid(), 30.0)


def run(store, job_id, outcome=OK, decision=COMPLETE):
    job = store.claim("w1", 30)
    assert job is not None and job.id == job_id, job
    store.finish(job, outcome, decision)


def test_an_unknown_dependency_is_invalid_input_and_writes_nothing(store):
    store.enqueue([nj("a")])
    before = (store.counts(), store.history())
    with pytest.raises(InvalidInput, match="no job 'ghost'"):
        store.enqueue([nj("b", after=["a"]), nj("c", after=["ghost"])])
    assert (store.counts(), store.history()) == before


def test_a_chain_in_one_batch_runs_in_order(store, clock):
    register(store)
    store.enqueue([nj("a"), nj("b", after=["a"]),
                   nj("c", after=["b"])])
    assert store.get_job("b").blocked and store.get_job("b").after == ["a"]
    order = []
    while (job := store.claim("w1", 30)) is not None:
        assert store.claim("w1", 30) is None, "only one job of the chain is ever ready"
        order.append(job.id)
        store.finish(job, OK, COMPLETE)
    assert order == ["a", "b", "c"]
    assert store.counts()["completed"] == 3


def test_blocked_jobs_are_not_due_but_are_unfinished(store, clock):
    register(store)
    store.enqueue([nj("a", delay=60), nj("b", after=["a"])])
    assert store.next_due_in() == pytest.approx(60, abs=0.01), "b is not due: it waits for a"
    assert store.has_unfinished()
    clock.advance(61)
    run(store, "a")
    assert store.next_due_in() == 0
    run(store, "b")


def test_a_job_waits_for_all_of_its_dependencies(store, clock):
    register(store)
    store.enqueue([nj("a"), nj("b"), nj("d", after=["a", "b"])])
    run(store, "a")
    assert store.get_job("d").blocked
    run(store, "b")
    assert not store.get_job("d").blocked
    run(store, "d")


def test_a_completed_dependency_does_not_block(store, clock):
    register(store)
    store.enqueue([nj("a")])
    run(store, "a")
    store.enqueue([nj("b", after=["a"])])
    assert not store.get_job("b").blocked
    run(store, "b")


def test_a_dead_dependency_cancels_its_dependents_recursively(store, clock):
    register(store)
    store.enqueue([nj("a"), nj("b", after=["a"]), nj("c", after=["b"]), nj("x")])
    run(store, "a", FAIL, BURY)
    b, c = store.get_job("b"), store.get_job("c")
    assert (b.state, b.last_error) == ("cancelled", "dependency a ended dead")
    assert (c.state, c.last_error) == ("cancelled", "dependency b ended cancelled")
    assert not b.blocked and b.finished_at is not None
    assert [e["event"] for e in store.history("c")] == ["enqueued", "cancelled"]
    assert store.history("c")[-1]["error"] == "dependency b ended cancelled"
    assert store.claim("w1", 30).id == "x", "independent jobs are untouched"


def test_cancelling_a_dependency_cancels_its_dependents(store, clock):
    store.enqueue([nj("a"), nj("b", after=["a"])])
    assert store.cancel("a") == "cancelled"
    assert store.get_job("b").state == "cancelled"
    assert store.get_job("b").last_error == "dependency a ended cancelled"


def test_a_running_dependency_cancelled_cancels_its_dependents_when_it_ends(store, clock):
    register(store)
    store.enqueue([nj("a"), nj("b", after=["a"])])
    job = store.claim("w1", 30)
    assert store.cancel("a") == "cancelling"
    assert store.get_job("b").state == "pending"
    store.finish(job, FAIL, BURY)          # the worker killed it; it ends cancelled
    assert store.get_job("a").state == "cancelled"
    assert store.get_job("b").state == "cancelled"


def test_depending_on_a_job_that_already_failed_cancels_at_once(store, clock):
    register(store)
    store.enqueue([nj("a")])
    run(store, "a", FAIL, BURY)
    store.enqueue([nj("b", after=["a"]), nj("c", after=["b"])])
    assert [store.get_job(i).state for i in "bc"] == ["cancelled", "cancelled"]
    assert [e["event"] for e in store.history("b")] == ["enqueued", "cancelled"]


def test_a_rescued_and_buried_dependency_cancels_its_dependents(store, clock):
    register(store)
    store.enqueue([nj("a"), nj("b", after=["a"])])
    store.claim("w1", 30)
    store.deregister_worker("w1")
    assert [j.id for j in store.rescue_expired(lambda job: BURY)] == ["a"]
    assert store.get_job("b").state == "cancelled"


def test_a_purged_completed_dependency_does_not_block_forever(store, clock):
    register(store)
    store.enqueue([nj("a"), nj("b"), nj("d", after=["a", "b"])])
    run(store, "a")
    assert store.purge(["completed"], 0) == 1
    run(store, "b")
    run(store, "d")


def test_skip_existing_counts_an_existing_completed_dependency(store, clock):
    register(store)
    store.enqueue([nj("a")])
    run(store, "a")
    assert store.enqueue([nj("a"), nj("b", after=["a"])], skip_existing=True) == ["a"]
    assert not store.get_job("b").blocked


def test_export_and_import_keep_dependencies(make_store, clock, tmp_path):
    src = make_store()
    register(src)
    src.enqueue([nj("a"), nj("b"), nj("c", after=["a", "b"])])
    run(src, "a")
    lines = [json.dumps(j.to_dict(with_output=True)) for j in src.export_jobs()]
    assert json.loads(lines[2])["after"] == ["a", "b"]
    jobs = [parse_exported(json.loads(line)) for line in lines]
    for j in jobs:
        j.id = "n-" + j.id
        j.after = ["n-" + a for a in j.after] if j.after else None
    src.import_jobs(jobs)
    got = src.get_job("n-c")
    assert got.after == ["n-a", "n-b"] and got.blocked, "n-b is still pending"
    run(src, "b")
    run(src, "c")
    run(src, "n-b")
    assert not src.get_job("n-c").blocked


# ---------------------------------------------------------------- the race

ROUNDS = 150


def _finisher(make_store, stop_path):
    store = make_store(worker=True, clock_=SystemClock())
    store.register_worker("fin", "testhost", os.getpid(), 30.0)
    while True:
        job = store.claim("fin", 30)
        if job is None:
            # (A stuck dependent is never due: it does not keep us here.)
            if os.path.exists(stop_path) and store.next_due_in() is None:
                break
            continue
        store.finish(job, OK, COMPLETE)
    store.close()


def test_a_dependent_enqueued_while_its_dependency_finishes_is_never_stuck(make_store,
                                                                           tmp_path):
    # One process enqueues x_i, then (separately) d_i after x_i, while another
    # claims and completes jobs as fast as it can: d_i's enqueue races with
    # x_i's finish. Every d_i must end up run; none may stay blocked.
    store = make_store(clock_=SystemClock())
    stop = tmp_path / "stop"
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_finisher, args=(make_store, str(stop)))
    proc.start()
    try:
        for i in range(ROUNDS):
            store.enqueue([nj(f"x{i}")])
            store.enqueue([nj(f"d{i}", after=[f"x{i}"])])
        stop.touch()
        proc.join(60)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    assert proc.exitcode == 0
    stuck = [j.id for j in store.list_jobs() if j.state != "completed"]
    assert stuck == []
    assert store.counts()["completed"] == 2 * ROUNDS


@pytest.mark.backends("postgres")   # only PostgreSQL settles after the finish commits
@pytest.mark.parametrize("repair", ["settle_dependents", "purge"])
def test_dependents_left_unsettled_by_a_crash_are_repaired(store, clock, monkeypatch, repair):
    # The worker "dies" between the finish commit and the settling transaction.
    register(store)
    store.enqueue([nj("a"), nj("b"), nj("d1", after=["a"]), nj("d2", after=["b"])])
    monkeypatch.setattr(store, "_settle_now", lambda ended: None)
    run(store, "a")
    run(store, "b", FAIL, BURY)
    assert store.get_job("d1").blocked and store.get_job("d2").state == "pending"
    if repair == "settle_dependents":
        assert store.settle_dependents() == 2
    else:
        # A purge of the dependencies must not delete what d1/d2 wait for unsettled.
        assert store.purge(["completed", "dead"], 0) == 2
    assert not store.get_job("d1").blocked
    assert store.get_job("d2").state == "cancelled"
    assert store.get_job("d2").last_error == "dependency b ended dead"
    run(store, "d1")
