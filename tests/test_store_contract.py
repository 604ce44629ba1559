"""The store contract suite.

Written only against the abstract `Store` interface (queuectl/store/base.py)
through the `store` / `make_store` fixtures, so every backend listed in
conftest.BACKENDS runs it unchanged. No backend-specific SQL here: raw state is
inspected through get_job / list_jobs / history / counts.

Time is the fixture's FakeClock (`clock.advance(seconds)`), except in the
concurrent claim test, which uses several OS processes and the real clock.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import Counter

import pytest

from queuectl import config as cfgmod
from queuectl import policy
from queuectl.clock import SystemClock, iso
from queuectl.errors import Conflict, DuplicateJob, LeaseLost, NotFound, QueueError
from queuectl.model import STATES, NewJob
from queuectl.policy import BURY, COMPLETE, Decision
from queuectl.runner import Outcome

REQUIRED_JOB_KEYS = {"id", "command", "state", "attempts", "max_retries", "priority",
                     "run_at", "timeout", "created_at", "updated_at", "started_at",
                     "finished_at", "exit_code", "last_error", "worker_id"}

OK = Outcome("succeeded", 0, None, "hello\n", False, 0.01)
FAIL = Outcome("exit", 3, "exit code 3: boom", "boom\n", False, 0.01)


# ---------------------------------------------------------------- helpers

def nj(job_id, command="true", max_retries=3, priority=0, run_at=None, delay=0.0,
       timeout=0.0) -> NewJob:
    return NewJob(id=job_id, command=command, max_retries=max_retries, priority=priority,
                  run_at=run_at, delay=delay, timeout=timeout)


def register(store, worker_id):
    store.register_worker(worker_id, "testhost", os.getpid(), store.config()["lease_timeout"])


def events(store, job_id=None):
    """History as (job_id, event, attempt) triples."""
    return [(e["job_id"], e["event"], e["attempt"]) for e in store.history(job_id)]


def job_events(store, job_id):
    return [(e["event"], e["attempt"]) for e in store.history(job_id)]


def snapshot(store, job_id=None):
    """Everything a failing call must leave untouched."""
    out = {"counts": store.counts(), "jobs": store.list_jobs(), "history": store.history()}
    if job_id is not None:
        out["job"] = store.get_job(job_id, with_output=True)
    return out


def decide_with(cfg, rand=lambda: 0.0):
    """The real retry policy as rescue_expired's decide callback (no jitter)."""
    calls = []

    def decide(job):
        calls.append(job.replace())
        lost = Outcome("lease_expired", error="lease expired")
        return policy.decide(lost, job.attempts, job.max_retries, cfg, rand=rand)

    decide.calls = calls
    return decide


def watch(store):
    """A rescue round that must take nothing back: the rescuer starts watching
    the leases it sees (on SQLite a lease counts as expired only once the
    rescuer itself has seen it go unrenewed for a lease term)."""
    assert store.rescue_expired(lambda job: pytest.fail("rescued too early")) == []


def claim_one(store, worker_id, job_id, lease=30.0):
    job = store.claim(worker_id, lease)
    assert job is not None and job.id == job_id, job
    return job


def put_in_state(store, clock, job_id, state, worker_id="w1"):
    """Drive a fresh job into `state` (the caller keeps other ready jobs away)."""
    store.enqueue([nj(job_id, max_retries=0 if state == "dead" else 3)])
    if state == "pending":
        return store.get_job(job_id)
    if state == "cancelled":
        assert store.cancel(job_id) == "cancelled"
        return store.get_job(job_id)
    job = claim_one(store, worker_id, job_id)
    if state == "processing":
        return job
    decision = {"completed": COMPLETE, "failed": Decision("retry", 1000.0),
                "dead": BURY}[state]
    store.finish(job, OK if state == "completed" else FAIL, decision)
    got = store.get_job(job_id)
    assert got.state == state
    return got


# ---------------------------------------------------------------- enqueue

def test_enqueue_then_get_job_has_every_field(store, clock):
    now = clock.now_ms()
    store.enqueue([nj("job-1", command="echo hi", max_retries=5, priority=7, timeout=2.5)])
    j = store.get_job("job-1")
    assert (j.id, j.command, j.state, j.attempts) == ("job-1", "echo hi", "pending", 0)
    assert (j.max_retries, j.priority, j.timeout) == (5, 7, 2.5)
    assert j.run_at == now
    assert j.created_at == now and j.updated_at == now
    assert j.started_at is None and j.finished_at is None
    assert j.exit_code is None and j.last_error is None
    assert j.worker_id is None and j.lease_expires_at is None
    assert REQUIRED_JOB_KEYS <= set(j.to_dict())
    with_output = store.get_job("job-1", with_output=True)
    assert not with_output.output and with_output.output_truncated is False

    hist = store.history("job-1")
    assert [(e["job_id"], e["event"], e["attempt"], e["at"]) for e in hist] == [
        ("job-1", "enqueued", 0, iso(now))]


def test_enqueue_delay_and_absolute_run_at(store, clock):
    now = clock.now_ms()
    store.enqueue([nj("d", delay=1.5), nj("r", run_at=now + 60_000),
                   nj("past", run_at=now - 5_000)])
    assert store.get_job("d").run_at == now + 1500
    assert store.get_job("r").run_at == now + 60_000
    assert store.get_job("past").run_at == now - 5_000


def test_enqueue_is_visible_to_another_connection(make_store):
    a, b = make_store(), make_store()
    a.enqueue([nj("shared", command="echo shared")])
    assert b.get_job("shared").command == "echo shared"


def test_get_job_of_missing_id_raises_not_found(store):
    with pytest.raises(NotFound):
        store.get_job("nope")


def test_duplicate_id_raises_and_leaves_existing_job_untouched(store, clock):
    store.enqueue([nj("a", command="original", priority=1, max_retries=2)])
    before = snapshot(store, "a")
    clock.advance(1)
    with pytest.raises(DuplicateJob) as exc:
        store.enqueue([nj("a", command="changed", priority=9, max_retries=7)])
    assert exc.value.job_id == "a"
    assert str(exc.value) == "job a already exists"
    assert isinstance(exc.value, QueueError) and exc.value.exit_code == 1
    assert snapshot(store, "a") == before


def test_duplicate_id_in_batch_writes_nothing(store, clock):
    store.enqueue([nj("a", command="original")])
    before = snapshot(store, "a")
    with pytest.raises(DuplicateJob):
        store.enqueue([nj("b"), nj("c"), nj("a", command="changed"), nj("d")])
    for missing in ("b", "c", "d"):
        with pytest.raises(NotFound):
            store.get_job(missing)
    assert snapshot(store, "a") == before
    # The store is still usable afterwards (the failed transaction was rolled back).
    store.enqueue([nj("b")])
    assert store.get_job("b").state == "pending"


def test_duplicate_id_in_batch_names_the_existing_job(store):
    store.enqueue([nj("a")])
    with pytest.raises(DuplicateJob) as exc:
        store.enqueue([nj("b"), nj("c"), nj("a", command="changed")])
    assert exc.value.job_id == "a", str(exc.value)
    assert str(exc.value) == "job a already exists"


def test_duplicate_id_inside_one_batch_writes_nothing_and_names_it(store):
    before = snapshot(store)
    with pytest.raises(DuplicateJob) as exc:
        store.enqueue([nj("x"), nj("y"), nj("y")])
    assert snapshot(store) == before
    assert exc.value.job_id == "y", str(exc.value)


def test_large_batch_keeps_every_field_and_the_input_order(store, clock):
    # Large batches take the backends' bulk paths (SQLite: runs of alike rows
    # read from JSON; PostgreSQL: COPY). Mixed runs must come back exactly.
    now = clock.now_ms()
    jobs = []
    # Segments of 80 alike jobs; each differs from the one before in one field.
    fields = {"max_retries": 3, "priority": 0, "delay": 0.0, "timeout": 0.0,
              "queue": "default", "options": None}
    changes = [("max_retries", 5), ("priority", 7), ("delay", 2.5), ("timeout", 1.5),
               ("queue", "other"), ("options", {"env": {"K": "v"}, "cwd": "/tmp"}),
               ("priority", -1), ("max_retries", 0)]
    for seg in range(len(changes) + 1):
        for i in range(80):
            job = nj(f"s{seg}-{i:02d}", command=f"echo {seg} {i} \u00e9\U0001f600 'q' \"d\"",
                     max_retries=fields["max_retries"], priority=fields["priority"],
                     delay=fields["delay"], timeout=fields["timeout"])
            job.queue, job.options = fields["queue"], fields["options"]
            jobs.append(job)
        if seg < len(changes):
            fields[changes[seg][0]] = changes[seg][1]
    store.enqueue(jobs)
    got = {j.id: j for j in store.list_jobs()}
    assert list(got) == [j.id for j in jobs]              # enqueue order (oldest first)
    for job in jobs:
        g = got[job.id]
        assert (g.command, g.max_retries, g.priority, g.timeout, g.queue, g.options) == (
            job.command, job.max_retries, job.priority, job.timeout, job.queue, job.options)
        assert g.run_at == now + round(job.delay * 1000)
        assert g.state == "pending" and g.created_at == now
    assert [e["job_id"] for e in store.history() if e["event"] == "enqueued"] == list(got)


def test_duplicate_in_a_large_batch_writes_nothing(store):
    store.enqueue([nj("dup")])
    before = snapshot(store)
    with pytest.raises(DuplicateJob) as exc:
        store.enqueue([nj(f"x{i}") for i in range(200)] + [nj("dup")])
    assert exc.value.job_id == "dup"
    assert snapshot(store) == before


# ---------------------------------------------------------------- claim

def test_claim_order_priority_then_run_at_then_enqueue_order(store, clock):
    register(store, "w1")
    now = clock.now_ms()
    store.enqueue([nj("a")])                                   # p0, now
    store.enqueue([nj("b", priority=5), nj("c", run_at=now - 10_000)])
    store.enqueue([nj("d", priority=5), nj("e"), nj("neg", priority=-1)])
    store.enqueue([nj("f", priority=5, run_at=now - 1)])       # earlier run_at beats b, d
    store.enqueue([nj("g", run_at=now - 10_000)])              # same run_at as c, later
    order = []
    while (job := store.claim("w1", 30)) is not None:
        order.append(job.id)
    assert order == ["f", "b", "d", "c", "g", "a", "e", "neg"]


def test_claim_ties_run_first_in_first_out(store):
    register(store, "w1")
    ids = [f"{(i * 7919) % 101:03d}-job" for i in range(30)]   # not sorted by id
    store.enqueue([nj(i) for i in ids[:10]])
    for i in ids[10:]:
        store.enqueue([nj(i)])
    claimed = [store.claim("w1", 30).id for _ in ids]
    assert claimed == ids
    assert store.claim("w1", 30) is None


def test_future_run_at_is_not_claimable_until_the_clock_passes_it(store, clock):
    register(store, "w1")
    now = clock.now_ms()
    store.enqueue([nj("delayed", delay=10), nj("at", run_at=now + 5_000)])
    assert store.claim("w1", 30) is None
    clock.advance(4.999)
    assert store.claim("w1", 30) is None
    clock.advance(0.001)
    assert store.claim("w1", 30).id == "at"
    clock.advance(4.999)
    assert store.claim("w1", 30) is None
    clock.advance(0.001)
    assert store.claim("w1", 30).id == "delayed"
    assert store.claim("w1", 30) is None


def test_claim_sets_processing_attempt_worker_lease_and_appends_event(store, clock):
    register(store, "w1")
    store.enqueue([nj("j")])
    clock.advance(3)
    now = clock.now_ms()
    job = store.claim("w1", 12.5)
    stored = store.get_job("j")
    for j in (job, stored):
        assert j.id == "j"
        assert j.state == "processing"
        assert j.attempts == 1
        assert j.worker_id == "w1"
        assert j.started_at == now
        assert j.lease_expires_at == now + 12_500
        assert j.finished_at is None
    assert stored.updated_at == now
    hist = store.history("j")
    assert [(e["event"], e["attempt"]) for e in hist] == [("enqueued", 0), ("processing", 1)]
    assert hist[-1]["at"] == iso(now)
    assert hist[-1].get("worker_id") == "w1"
    # A job being processed is not claimable again, by anyone.
    register(store, "w2")
    assert store.claim("w2", 30) is None
    assert store.claim("w1", 30) is None


def test_claim_on_an_empty_queue_returns_none_and_writes_nothing(store):
    register(store, "w1")
    before = snapshot(store)
    assert store.claim("w1", 30) is None
    assert snapshot(store) == before


def test_claim_ignores_completed_and_dead_jobs(store, clock):
    register(store, "w1")
    put_in_state(store, clock, "done", "completed")
    put_in_state(store, clock, "gone", "dead")
    clock.advance(10_000)
    assert store.claim("w1", 30) is None


# ---------------------------------------------------------------- finish

def test_finish_complete(store, clock):
    register(store, "w1")
    store.enqueue([nj("j")])
    run_at = store.get_job("j").run_at
    job = store.claim("w1", 30)
    clock.advance(2)
    now = clock.now_ms()
    assert store.finish(job, OK, COMPLETE) is None
    j = store.get_job("j", with_output=True)
    assert j.state == "completed"
    assert j.attempts == 1
    assert j.exit_code == 0
    assert j.last_error is None
    assert j.finished_at == now and j.updated_at == now
    assert j.run_at == run_at
    assert j.lease_expires_at is None
    assert j.output == "hello\n" and j.output_truncated is False
    assert job_events(store, "j") == [("enqueued", 0), ("processing", 1), ("completed", 1)]
    assert store.history("j")[-1]["at"] == iso(now)


def test_finish_retry_schedules_the_next_attempt(store, clock):
    register(store, "w1")
    store.enqueue([nj("j")])
    job = store.claim("w1", 30)
    clock.advance(1)
    now = clock.now_ms()
    outcome = Outcome("exit", 3, "exit code 3: boom", "x" * 100 + "boom\n", True, 1.0)
    store.finish(job, outcome, Decision("retry", 4.0))
    j = store.get_job("j", with_output=True)
    assert j.state == "failed"
    assert j.run_at == now + 4000
    assert j.finished_at is None
    assert j.exit_code == 3
    assert j.last_error == "exit code 3: boom"
    assert j.output == "x" * 100 + "boom\n" and j.output_truncated is True
    assert j.lease_expires_at is None
    assert j.attempts == 1
    assert job_events(store, "j")[-1] == ("retry_scheduled", 1)
    # Claimable again exactly when the backoff has passed; the attempt is counted.
    clock.advance(3.999)
    assert store.claim("w1", 30) is None
    clock.advance(0.001)
    again = store.claim("w1", 30)
    assert again.id == "j" and again.attempts == 2
    stored = store.get_job("j")
    assert stored.state == "processing" and stored.finished_at is None
    assert job_events(store, "j")[-1] == ("processing", 2)


def test_finish_bury_moves_the_job_to_the_dlq(store, clock):
    register(store, "w1")
    store.enqueue([nj("j", max_retries=0)])
    job = store.claim("w1", 30)
    clock.advance(1)
    now = clock.now_ms()
    store.finish(job, Outcome("timeout", None, "timed out after 1s", "partial", False, 1.0), BURY)
    j = store.get_job("j", with_output=True)
    assert j.state == "dead"
    assert j.finished_at == now
    assert j.exit_code is None
    assert j.last_error == "timed out after 1s"
    assert j.output == "partial"
    assert j.lease_expires_at is None
    assert job_events(store, "j")[-1] == ("dead", 1)
    clock.advance(100_000)
    assert store.claim("w1", 30) is None
    assert not store.has_unfinished()


def test_finish_with_next_lease_claims_the_next_job_for_the_same_worker(store, clock):
    register(store, "w1")
    store.enqueue([nj("a"), nj("b")])
    a = store.claim("w1", 30)
    now = clock.now_ms()
    b = store.finish(a, OK, COMPLETE, next_lease=20)
    assert b is not None and b.id == "b"
    assert b.worker_id == "w1" and b.attempts == 1 and b.state == "processing"
    stored = store.get_job("b")
    assert stored.state == "processing" and stored.lease_expires_at == now + 20_000
    assert store.get_job("a").state == "completed"
    assert store.finish(b, OK, COMPLETE, next_lease=20) is None
    assert store.counts()["completed"] == 2


def test_always_failing_job_runs_max_retries_plus_one_times_then_dead(store, clock):
    register(store, "w1")
    cfg = store.config()
    store.enqueue([nj("flaky", max_retries=2)])
    starts = []
    for _ in range(10):
        due = store.next_due_in()
        if due is None:
            break
        clock.advance(due)
        job = store.claim("w1", 30)
        starts.append(clock.now_ms())
        decision = policy.decide(FAIL, job.attempts, job.max_retries, cfg, rand=lambda: 0.0)
        store.finish(job, FAIL, decision)
    j = store.get_job("flaky")
    assert j.state == "dead" and j.attempts == 3
    assert [e for e in job_events(store, "flaky") if e[0] == "processing"] == [
        ("processing", 1), ("processing", 2), ("processing", 3)]
    # Backoff 2**1, 2**2 seconds between the attempts.
    assert [b - a for a, b in zip(starts, starts[1:])] == [2000, 4000]


# ---------------------------------------------------------------- negative cases

def test_completing_a_completed_job_raises_lease_lost_and_changes_nothing(store, clock):
    register(store, "w1")
    store.enqueue([nj("j")])
    job = store.claim("w1", 30)
    store.finish(job, OK, COMPLETE)
    before = snapshot(store, "j")
    clock.advance(5)
    for decision in (COMPLETE, Decision("retry", 1.0), BURY):
        with pytest.raises(LeaseLost):
            store.finish(job, FAIL, decision)
        assert snapshot(store, "j") == before


def test_finishing_with_the_wrong_worker_raises_lease_lost(store, clock):
    register(store, "w1")
    register(store, "w2")
    store.enqueue([nj("j")])
    job = store.claim("w1", 30)
    before = snapshot(store, "j")
    clock.advance(1)
    impostor = job.replace(worker_id="w2")
    with pytest.raises(LeaseLost):
        store.finish(impostor, OK, COMPLETE)
    assert snapshot(store, "j") == before
    # The real holder still can.
    store.finish(job, OK, COMPLETE)
    assert store.get_job("j").state == "completed"


def test_finishing_a_job_that_was_never_claimed_raises_lease_lost(store):
    register(store, "w1")
    store.enqueue([nj("j")])
    pending = store.get_job("j")
    before = snapshot(store, "j")
    for job in (pending, pending.replace(worker_id="w1", attempts=1)):
        with pytest.raises(LeaseLost):
            store.finish(job, OK, COMPLETE)
    assert snapshot(store, "j") == before


def test_finishing_after_a_rescue_raises_lease_lost(store, clock):
    register(store, "w1")
    cfg = store.config()
    store.enqueue([nj("j")])
    stale = store.claim("w1", cfg["lease_timeout"])
    watch(store)
    clock.advance(cfg["lease_timeout"] + 1)
    assert [j.id for j in store.rescue_expired(decide_with(cfg))] == ["j"]
    before = snapshot(store, "j")
    with pytest.raises(LeaseLost):
        store.finish(stale, OK, COMPLETE)
    assert snapshot(store, "j") == before
    # ... also once another worker holds the job again.
    clock.advance(100)
    register(store, "w2")
    fresh = store.claim("w2", 30)
    assert fresh.id == "j" and fresh.attempts == 2
    before = snapshot(store, "j")
    with pytest.raises(LeaseLost):
        store.finish(stale, OK, COMPLETE)
    assert snapshot(store, "j") == before


@pytest.mark.parametrize("state", ["pending", "processing", "completed", "failed"])
def test_dlq_retry_of_a_job_that_is_not_dead_raises_conflict(store, clock, state):
    register(store, "w1")
    put_in_state(store, clock, "j", state)
    before = snapshot(store, "j")
    clock.advance(1)
    with pytest.raises(Conflict) as exc:
        store.dlq_retry("j")
    assert not isinstance(exc.value, NotFound)
    assert snapshot(store, "j") == before


def test_dlq_retry_of_a_missing_id_raises_not_found(store, clock):
    register(store, "w1")
    put_in_state(store, clock, "dead-one", "dead")
    before = snapshot(store)
    with pytest.raises(NotFound):
        store.dlq_retry("no-such-job")
    assert snapshot(store) == before


# ---------------------------------------------------------------- heartbeat and rescue

def test_heartbeat_renews_the_lease(store, clock):
    store.config_set("lease_timeout", 10)
    cfg = store.config()
    register(store, "w1")
    store.enqueue([nj("j")])
    t0 = clock.now_ms()
    store.claim("w1", 10)
    assert store.get_job("j").lease_expires_at == t0 + 10_000
    clock.advance(8)
    assert store.heartbeat("w1", "j", 10) is True
    assert store.get_job("j").lease_expires_at == t0 + 18_000
    clock.advance(8)                       # 16 s after the claim: lease still good
    assert store.rescue_expired(decide_with(cfg)) == []
    assert store.get_job("j").state == "processing"
    assert store.heartbeat("w1", "j", 10) is True
    clock.advance(10)                      # exactly at the renewed expiry: not yet
    assert store.rescue_expired(decide_with(cfg)) == []
    assert store.heartbeat("w1", None, 10) is True


def test_heartbeat_returns_false_once_the_job_was_rescued(store, clock):
    cfg = store.config()
    register(store, "w1")
    store.enqueue([nj("j")])
    store.claim("w1", cfg["lease_timeout"])
    watch(store)
    clock.advance(cfg["lease_timeout"] + 0.001)
    assert [j.id for j in store.rescue_expired(decide_with(cfg))] == ["j"]
    assert store.heartbeat("w1", "j", cfg["lease_timeout"]) is False
    assert store.get_job("j").state == "failed"     # the heartbeat did not resurrect it


def test_rescue_happens_only_after_lease_timeout(store, clock):
    store.config_set("lease_timeout", 10)
    cfg = store.config()
    register(store, "w1")
    store.enqueue([nj("j", max_retries=3)])
    store.claim("w1", cfg["lease_timeout"])
    watch(store)
    decide = decide_with(cfg)
    clock.advance(10)
    assert store.rescue_expired(decide) == []
    assert store.get_job("j").state == "processing"
    assert job_events(store, "j") == [("enqueued", 0), ("processing", 1)]

    clock.advance(0.001)
    now = clock.now_ms()
    rescued = store.rescue_expired(decide)
    assert [j.id for j in rescued] == ["j"]
    assert [c.attempts for c in decide.calls] == [1]
    j = store.get_job("j")
    assert j.state == "failed"
    assert j.attempts == 1                       # the lost attempt counts
    assert j.run_at == now + 2000                # backoff_base ** 1, no jitter
    assert j.lease_expires_at is None and j.finished_at is None
    assert "lease" in (j.last_error or "")
    assert job_events(store, "j") == [("enqueued", 0), ("processing", 1),
                                      ("lease_expired", 1), ("retry_scheduled", 1)]
    assert store.rescue_expired(decide) == []    # only once

    clock.advance(2)
    register(store, "w2")
    again = store.claim("w2", 10)
    assert again.id == "j" and again.attempts == 2


def test_rescue_buries_a_job_whose_retries_are_exhausted(store, clock):
    cfg = store.config()
    register(store, "w1")
    store.enqueue([nj("j", max_retries=0)])
    store.claim("w1", cfg["lease_timeout"])
    watch(store)
    clock.advance(cfg["lease_timeout"] + 1)
    now = clock.now_ms()
    assert [j.id for j in store.rescue_expired(decide_with(cfg))] == ["j"]
    j = store.get_job("j")
    assert j.state == "dead" and j.attempts == 1 and j.finished_at == now
    assert job_events(store, "j")[-2:] == [("lease_expired", 1), ("dead", 1)]


def test_job_of_a_deregistered_worker_is_rescued_at_once(store, clock):
    cfg = store.config()
    register(store, "w1")
    register(store, "w2")
    store.enqueue([nj("gone"), nj("alive")])
    assert store.claim("w1", 30).id == "gone"
    assert store.claim("w2", 30).id == "alive"
    store.deregister_worker("w1")
    rescued = store.rescue_expired(decide_with(cfg))      # no clock movement at all
    assert [j.id for j in rescued] == ["gone"]
    assert store.get_job("gone").state == "failed"
    assert store.get_job("gone").attempts == 1
    assert job_events(store, "gone")[-2:] == [("lease_expired", 1), ("retry_scheduled", 1)]
    assert store.get_job("alive").state == "processing"


def test_rescue_spares_the_job_of_a_worker_that_keeps_beating(store, clock):
    cfg = store.config()
    register(store, "w1")
    register(store, "w2")
    store.enqueue([nj("beating"), nj("silent")])
    store.claim("w1", cfg["lease_timeout"])
    store.claim("w2", cfg["lease_timeout"])
    watch(store)
    for _ in range(4):
        clock.advance(cfg["lease_timeout"] / 2)
        assert store.heartbeat("w1", "beating", cfg["lease_timeout"])
    rescued = store.rescue_expired(decide_with(cfg))
    assert [j.id for j in rescued] == ["silent"]
    assert store.get_job("beating").state == "processing"
    assert store.get_job("silent").state == "failed"


# ---------------------------------------------------------------- DLQ

def test_dlq_retry_resets_attempts_and_makes_the_job_claimable(store, clock):
    register(store, "w1")
    put_in_state(store, clock, "j", "dead")
    assert store.get_job("j").attempts == 1
    clock.advance(5)
    now = clock.now_ms()
    store.dlq_retry("j")
    j = store.get_job("j")
    assert j.state == "pending"
    assert j.attempts == 0
    assert j.finished_at is None
    assert j.run_at <= now
    assert job_events(store, "j")[-1] == ("dlq_retry", 0)
    again = store.claim("w1", 30)
    assert again.id == "j" and again.attempts == 1


def test_dlq_retry_all_returns_the_count_and_touches_only_dead_jobs(store, clock):
    register(store, "w1")
    for i in range(3):
        put_in_state(store, clock, f"dead{i}", "dead")
    put_in_state(store, clock, "done", "completed")
    put_in_state(store, clock, "later", "failed")
    store.enqueue([nj("waiting", delay=1000)])
    untouched = {i: store.get_job(i) for i in ("done", "later", "waiting")}
    assert store.dlq_retry_all() == 3
    for i in range(3):
        j = store.get_job(f"dead{i}")
        assert (j.state, j.attempts) == ("pending", 0)
        assert job_events(store, f"dead{i}")[-1] == ("dlq_retry", 0)
    for job_id, job in untouched.items():
        assert store.get_job(job_id) == job
    assert store.counts()["dead"] == 0
    before = snapshot(store)
    assert store.dlq_retry_all() == 0
    assert snapshot(store) == before


# ---------------------------------------------------------------- reads

def test_counts_has_every_state(store, clock):
    assert store.counts() == dict.fromkeys(STATES, 0)
    register(store, "w1")
    for state in ("dead", "completed", "failed", "processing", "pending", "cancelled"):
        put_in_state(store, clock, f"job-{state}", state)
    assert store.counts() == dict.fromkeys(STATES, 1)
    store.enqueue([nj("p2"), nj("p3")])
    assert store.counts() == {**dict.fromkeys(STATES, 1), "pending": 3}


def test_list_jobs_oldest_first_with_state_and_limit(store, clock):
    register(store, "w1")
    store.enqueue([nj("z"), nj("a", priority=9), nj("m")])
    assert store.claim("w1", 30).id == "a"
    assert [j.id for j in store.list_jobs()] == ["z", "a", "m"]
    assert [j.id for j in store.list_jobs(limit=2)] == ["z", "a"]
    assert [j.id for j in store.list_jobs(state="pending")] == ["z", "m"]
    assert [j.id for j in store.list_jobs(state="processing")] == ["a"]
    assert store.list_jobs(state="dead") == []


def test_history_is_oldest_first_and_limit_keeps_the_most_recent(store, clock):
    register(store, "w1")
    store.enqueue([nj("a")])
    clock.advance(1)
    store.enqueue([nj("b")])
    clock.advance(1)
    job = store.claim("w1", 30)
    clock.advance(1)
    store.finish(job, OK, COMPLETE)
    full = events(store)
    assert full == [("a", "enqueued", 0), ("b", "enqueued", 0),
                    ("a", "processing", 1), ("a", "completed", 1)]
    ats = [e["at"] for e in store.history()]
    assert ats == sorted(ats) and len(set(ats)) == 4
    assert [(e["job_id"], e["event"], e["attempt"]) for e in store.history(limit=2)] == full[-2:]
    assert [(e["job_id"], e["event"], e["attempt"]) for e in store.history(limit=1)] == full[-1:]
    assert len(store.history(limit=100)) == 4
    assert job_events(store, "b") == [("enqueued", 0)]
    assert [(e["event"], e["attempt"]) for e in store.history("a", limit=2)] == [
        ("processing", 1), ("completed", 1)]
    assert store.history("nobody") == []


def test_has_unfinished_and_next_due_in(store, clock):
    register(store, "w1")
    assert store.has_unfinished() is False
    assert store.next_due_in() is None
    store.enqueue([nj("j", delay=5)])
    assert store.has_unfinished() is True
    assert store.next_due_in() == pytest.approx(5.0)
    clock.advance(2)
    assert store.next_due_in() == pytest.approx(3.0)
    clock.advance(10)
    assert store.next_due_in() == 0
    job = store.claim("w1", 30)
    assert store.has_unfinished() is True          # processing still counts
    assert store.next_due_in() is None             # ... but nothing is waiting
    store.finish(job, FAIL, Decision("retry", 4.0))
    assert store.has_unfinished() is True
    assert store.next_due_in() == pytest.approx(4.0)
    clock.advance(4)
    store.finish(store.claim("w1", 30), OK, COMPLETE)
    assert store.has_unfinished() is False
    assert store.next_due_in() is None
    put_in_state(store, clock, "buried", "dead")
    assert store.has_unfinished() is False


# ---------------------------------------------------------------- workers

def test_request_stop_flags_only_workers_registered_at_that_time(store, clock):
    register(store, "stale")
    clock.advance(store.config()["lease_timeout"] + 1)
    register(store, "w1")
    register(store, "w2")
    flagged = store.request_stop()
    assert sorted(flagged) == ["w1", "w2"]
    assert store.stop_requested("w1") and store.stop_requested("w2")
    register(store, "w3")
    assert store.stop_requested("w3") is False
    assert store.stop_requested("never-registered") is False


def test_active_workers_excludes_stale_heartbeats(store, clock):
    lease = store.config()["lease_timeout"]
    register(store, "w1")
    register(store, "w2")
    register(store, "w3")
    store.enqueue([nj("j")])
    store.claim("w2", lease)
    assert sorted(w["id"] for w in store.active_workers()) == ["w1", "w2", "w3"]
    store.deregister_worker("w3")
    clock.advance(lease * 2 / 3)
    assert store.heartbeat("w2", "j", lease)
    clock.advance(lease * 2 / 3)                 # w1: 4/3 lease old, w2: 2/3
    active = store.active_workers()
    assert [w["id"] for w in active] == ["w2"]
    assert active[0]["job_id"] == "j"


# ---------------------------------------------------------------- config

def test_config_defaults_and_set_get_round_trip(make_store):
    a = make_store()
    assert a.config() == cfgmod.defaults()
    a.config_set("max_retries", 7)
    a.config_set("backoff_base", 1.5)
    b = make_store()
    cfg = b.config()
    assert cfg["max_retries"] == 7 and isinstance(cfg["max_retries"], int)
    assert cfg["backoff_base"] == 1.5
    for key in ("backoff_max", "job_timeout", "lease_timeout"):
        assert cfg[key] == cfgmod.defaults()[key]
    assert set(cfg) == set(cfgmod.KEYS)
    b.config_set("max_retries", 0)
    assert a.config()["max_retries"] == 0


# ---------------------------------------------------------------- concurrency

N_JOBS = 300
N_PROCS = 4


def _claim_until_empty(make_store, index, start, out_path):
    """Child process: own connection, real clock, claim and finish until empty."""
    store = make_store(worker=True, clock_=SystemClock())
    wid = f"proc-{index}"
    store.register_worker(wid, "testhost", os.getpid(), store.config()["lease_timeout"])
    start.wait(30)
    chained = index % 2 == 0          # half use finish(..., next_lease) chaining
    claimed = []
    job = None
    while True:
        if job is None:
            job = store.claim(wid, 30)
        if job is None:
            break
        claimed.append(job.id)
        if len(claimed) % 20 == 0:
            store.rescue_expired(lambda j: Decision("retry", 0.0))
        job = store.finish(job, OK, COMPLETE, 30 if chained else None)
    store.deregister_worker(wid)
    store.close()
    with open(out_path, "w") as f:
        json.dump(claimed, f)


def test_concurrent_claims_from_several_processes_run_each_job_exactly_once(make_store, tmp_path):
    parent = make_store(clock_=SystemClock())
    ids = [f"c{i:04d}" for i in range(N_JOBS)]
    parent.enqueue([nj(i) for i in ids])
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    outs = [tmp_path / f"claimed-{i}.json" for i in range(N_PROCS)]
    procs = [ctx.Process(target=_claim_until_empty, args=(make_store, i, start, outs[i]))
             for i in range(N_PROCS)]
    for p in procs:
        p.start()
    start.set()
    try:
        for p in procs:
            p.join(60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    assert [p.exitcode for p in procs] == [0] * N_PROCS

    per_proc = [json.loads(o.read_text()) for o in outs]
    claimed = Counter(i for lst in per_proc for i in lst)
    assert set(claimed) == set(ids)
    assert [i for i, n in claimed.items() if n != 1] == []

    processing = Counter(e["job_id"] for e in parent.history() if e["event"] == "processing")
    assert [i for i in ids if processing[i] != 1] == []
    assert parent.counts() == {**dict.fromkeys(STATES, 0), "completed": N_JOBS}
    assert all(parent.get_job(i).attempts == 1 for i in ids)
    # The processes really competed: more than one of them got work.
    assert sum(1 for lst in per_proc if lst) >= 2, [len(lst) for lst in per_proc]


# ---------------------------------------------------------------- the state machine

EVENT_STATE = {"enqueued": "pending", "processing": "processing", "completed": "completed",
               "retry_scheduled": "failed", "dead": "dead", "dlq_retry": "pending",
               "cancelled": "cancelled"}


def test_every_state_change_is_an_allowed_transition(make_store, clock):
    """Drive one job through every path, then replay its history: each change of
    state must be an edge of model.TRANSITIONS, and every event a known one."""
    from queuectl.model import EVENTS, TRANSITIONS
    from queuectl.policy import BURY, COMPLETE, Decision
    from queuectl.runner import Outcome

    store = make_store()
    store.register_worker("w1", "h", 1, 30)
    store.enqueue([NewJob("j", "true", max_retries=1)])
    fail = Outcome("exit", 1, "exit code 1")
    job = store.claim("w1", 30)
    store.finish(job, fail, Decision("retry", 1.0))           # processing -> failed
    clock.advance(2)
    job = store.claim("w1", 30)                                # failed -> processing
    store.finish(job, fail, BURY)                              # processing -> dead
    store.dlq_retry("j")                                       # dead -> pending
    job = store.claim("w1", 30)
    store.deregister_worker("w1")                              # the worker vanishes
    store.rescue_expired(lambda j: Decision("retry", 0.0))     # processing -> failed
    store.register_worker("w2", "h", 2, 30)
    job = store.claim("w2", 30)
    store.finish(job, Outcome("succeeded", 0), COMPLETE)       # processing -> completed

    from queuectl.store.base import CANCEL
    store.enqueue([NewJob("c1", "true", max_retries=1)])
    assert store.cancel("c1") == "cancelled"                   # pending -> cancelled
    store.enqueue([NewJob("c2", "true", max_retries=1)])
    job = store.claim("w2", 30)
    store.finish(job, fail, Decision("retry", 1.0))
    assert store.cancel("c2") == "cancelled"                   # failed -> cancelled
    store.enqueue([NewJob("c3", "true", max_retries=1)])
    job = store.claim("w2", 30)
    assert store.cancel("c3") == "cancelling"
    assert store.cancel_requested("c3")
    store.finish(job, Outcome("interrupted", None, "cancelled"), CANCEL)  # processing -> c.

    seen, ended = [], [("j", "completed"), ("c1", "cancelled"), ("c2", "cancelled"),
                       ("c3", "cancelled"), ("h", "failed")]
    if store.can_claim_ahead:
        # Jobs taken ahead are reserved, still pending: one starts for long
        # (start_held) and is handed back, one's whole attempt is recorded at
        # once (finish_all), one is cancelled while it waits, one is given
        # back (release: its reservation ends, no state changes).
        store.enqueue([NewJob(f"r{i}", "true", max_retries=1) for i in range(1, 6)])
        claimed, lost = store.finish_all("w2", [], next_lease=30, ahead=4)
        assert [j.id for j in claimed] == ["r1", "r2", "r3", "r4", "r5"] and lost == []
        r1, r2, r3, r4, r5 = claimed
        assert [j.state for j in claimed] == ["processing"] + ["pending"] * 4
        for j in (r2, r3):
            assert store.held_state("w2", j) == "ok"
            j.attempts, j.started_at = j.attempts + 1, store.now_ms()
        assert store.start_held("w2", r2, 30)                  # pending -> processing
        r2.state = "processing"
        store.hand_back(r2, Outcome("interrupted", None, "interrupted"))  # -> failed
        claimed, lost = store.finish_all("w2", [(r1, Outcome("succeeded", 0), COMPLETE),
                                                (r3, Outcome("succeeded", 0), COMPLETE)])
        assert claimed == [] and lost == []                    # r3: pending -> p. -> c.
        assert store.cancel("r4") == "cancelled"               # pending -> cancelled
        assert store.held_state("w2", r4) == "gone"
        store.release("w2", [r4, r5])                          # no change of state
        assert (store.get_job("r4").state, store.get_job("r5").state) == \
            ("cancelled", "pending")
        ended += [("r1", "completed"), ("r2", "failed"), ("r3", "completed"),
                  ("r4", "cancelled"), ("r5", "pending")]
    # An attempt interrupted by its worker's stop, handed back (not charged).
    store.enqueue([NewJob("h", "true", max_retries=0, priority=9)])     # (first in line)
    job = store.claim("w2", 30)
    assert job.id == "h"
    store.hand_back(job, Outcome("interrupted", None, "interrupted: worker was stopped"))
    assert store.get_job("h").max_retries == 1                 # processing -> failed
    store.enqueue([NewJob("q", "true", max_retries=1, priority=10)])
    job = store.claim("w2", 30)
    store.finish(job, Outcome("succeeded", 0), COMPLETE)
    assert store.requeue("q") == "completed"                   # completed -> pending
    assert store.requeue("c1") == "cancelled"                  # cancelled -> pending
    ended += [("q", "pending"), ("c1", "pending")]
    ended.remove(("c1", "cancelled"))

    expected = set(TRANSITIONS)
    for job_id, final in ended:
        state = "new"
        for e in store.history(job_id):
            assert e["event"] in EVENTS, e
            if e["event"] == "lease_expired":
                continue
            nxt = EVENT_STATE[e["event"]]
            assert (state, nxt) in TRANSITIONS, (state, nxt)
            seen.append((state, nxt))
            state = nxt
        assert state == final
        assert store.get_job(job_id).state == final
    assert set(seen) == expected, expected - set(seen)


def test_hand_back_is_an_uncharged_retry_due_now_unless_cancelled(make_store, clock):
    store = make_store()
    store.register_worker("w1", "h", 1, 30)
    store.enqueue([NewJob("a", "true", max_retries=0),
                   NewJob("b", "true", max_retries=0, run_at=clock.now_ms() + 1000)])
    stopped = Outcome("interrupted", None, "interrupted: worker was stopped", "out", False, 0.5)
    a = store.claim("w1", 30)
    store.hand_back(a, stopped)
    job = store.get_job("a", with_output=True)
    assert (job.state, job.max_retries, job.attempts) == ("failed", 1, 1)
    assert job.run_at == job.updated_at == clock.now_ms() and job.output == "out"
    ev = store.history("a")[-1]
    assert ev["event"] == "retry_scheduled" and ev["worker_id"] == "w1"
    assert ev["interrupted"] is True and ev["duration"] == 0.5
    assert ev["run_at"] == iso(clock.now_ms()) and ev["error"] == stopped.error
    with pytest.raises(LeaseLost):
        store.hand_back(a, stopped)                    # no longer held
    assert store.claim("w1", 30).id == "a"             # due now, its retry intact
    clock.advance(1)
    b = store.claim("w1", 30)
    assert b.id == "b" and store.cancel("b") == "cancelling"
    store.hand_back(b, stopped)                        # a cancel requested wins
    assert store.get_job("b").state == "cancelled"


def test_held_state_of_a_job_not_taken_ahead_is_gone(make_store):
    # Only a job reserved by the worker (taken ahead, SQLite) is "ok" to
    # start; one merely pending, or running, is not the worker's to start.
    store = make_store()
    store.register_worker("w1", "h", 1, 30)
    store.enqueue([NewJob("a", "true", max_retries=1), NewJob("b", "true", max_retries=1)])
    running = store.claim("w1", 30)
    assert running.id == "a"
    assert store.held_state("w1", running) == "gone"
    assert store.held_state("w1", store.get_job("b")) == "gone"


def test_finish_claims_the_next_job_unless_the_worker_was_told_to_stop(make_store, clock):
    from queuectl.policy import COMPLETE
    from queuectl.runner import Outcome

    store = make_store()
    store.enqueue([NewJob(f"j{i}", "true", max_retries=0) for i in range(4)])
    store.register_worker("w1", "h", 1, 30)
    ok = Outcome("succeeded", 0)
    first = store.claim("w1", 30)
    second = store.finish(first, ok, COMPLETE, next_lease=30)
    assert second is not None and second.id == "j1" and second.state == "processing"
    assert store.get_job("j1").worker_id == "w1"
    store.request_stop()
    assert store.finish(second, ok, COMPLETE, next_lease=30) is None
    assert store.get_job("j2").state == "pending"
    # A worker whose row was swept away (it was frozen) takes no next job either.
    store.deregister_worker("w1")
    store.register_worker("w2", "h", 2, 30)
    third = store.claim("w2", 30)
    store.deregister_worker("w2")
    assert store.finish(third, ok, COMPLETE, next_lease=30) is None
    assert store.get_job("j2").state == "completed"
    assert store.get_job("j3").state == "pending"


def test_finish_of_an_earlier_attempt_is_lease_lost(store, clock):
    """A result retried after its reply was lost must not land on a later attempt
    of the same job by the same worker."""
    store.register_worker("w1", "h", 1, 30)
    store.enqueue([nj("j", max_retries=5)])
    first = store.claim("w1", 30)
    store.finish(first, Outcome("exit", 1, "exit code 1"), Decision("retry", 0.0))
    second = store.claim("w1", 30)
    assert second.attempts == 2
    with pytest.raises(LeaseLost):
        store.finish(first, OK, COMPLETE)
    assert store.get_job("j").state == "processing"
    store.finish(second, OK, COMPLETE)
    assert store.get_job("j").state == "completed"


def test_held_by_lists_the_workers_running_jobs(store, clock):
    store.register_worker("w1", "h", 1, 30)
    store.register_worker("w2", "h", 2, 30)
    store.enqueue([nj("a"), nj("b")])
    store.claim("w1", 30)
    assert [j.id for j in store.held_by("w1")] == ["a"]
    assert store.held_by("w2") == []
    store.claim("w2", 30)
    assert [j.id for j in store.held_by("w2")] == ["b"]


def test_run_settings_round_trip(store, clock):
    opts = {"fatal_exit_codes": [2, 64], "cwd": "/tmp", "env": {"A": "1", "B": "ü"}}
    store.enqueue([NewJob("o", "true", 0, options=opts), nj("plain")])
    assert store.get_job("o").options == opts
    assert store.get_job("plain").options is None
    d = store.get_job("o").to_dict()
    assert (d["fatal_exit_codes"], d["cwd"], d["env"]) == ([2, 64], "/tmp", opts["env"])
    store.register_worker("w1", "h", 1, 30)
    assert store.claim("w1", 30).options == opts
    assert [j.options for j in store.export_jobs()] == [opts, None]


def test_skip_existing_enqueue(store, clock):
    store.enqueue([nj("a", command="echo a")])
    assert store.enqueue([nj("a", command="echo a"), nj("b")], skip_existing=True) == ["a"]
    assert [j.id for j in store.list_jobs()] == ["a", "b"]
    with pytest.raises(Conflict):
        store.enqueue([nj("c"), nj("a", command="echo other")], skip_existing=True)
    assert [j.id for j in store.list_jobs()] == ["a", "b"], "all or nothing"
    with pytest.raises(DuplicateJob):
        store.enqueue([nj("a", command="echo a")])



def test_cancel_rules(store, clock):
    register(store, "w1")
    with pytest.raises(NotFound):
        store.cancel("nope")
    done = put_in_state(store, clock, "done", "completed")
    with pytest.raises(Conflict):
        store.cancel("done")
    assert store.get_job("done") == done, "a terminal job is unchanged"
    # A running job whose worker is lost while cancelling is cancelled, not retried.
    store.enqueue([nj("run", max_retries=5)])
    claim_one(store, "w1", "run")
    assert store.cancel("run") == "cancelling"
    assert store.get_job("run").state == "processing"
    store.deregister_worker("w1")
    store.rescue_expired(lambda j: Decision("retry", 0.0))
    gone = store.get_job("run")
    assert gone.state == "cancelled" and gone.finished_at is not None
    assert gone.last_error == "cancelled (queuectl cancel)"


def test_queues_pause_and_limit_in_the_claim(store, clock):
    register(store, "w1")
    register(store, "w2")
    store.enqueue([NewJob("a1", "true", 0, queue="a"), NewJob("a2", "true", 0, queue="a"),
                   NewJob("b1", "true", 0, queue="b")])
    store.set_queue("a", paused=True)
    assert store.claim("w1", 30).id == "b1", "a paused queue is skipped"
    assert store.claim("w1", 30) is None
    store.set_queue("a", paused=False, limit=1)
    assert store.claim("w1", 30).id == "a1"
    assert store.claim("w2", 30) is None, "the limit of 1 is reached"
    store.set_queue("a", limit=0)
    assert store.claim("w2", 30).id == "a2"
    rows = {q["name"]: q for q in store.queues()}
    assert rows["a"]["processing"] == 2 and rows["a"]["limit"] == 0
    assert rows["a"]["paused"] is False
    assert rows["b"]["processing"] == 1


def test_claim_only_from_the_workers_queues(store, clock):
    register(store, "w1")
    store.enqueue([NewJob("d", "true", 0), NewJob("x", "true", 0, queue="mail")])
    assert store.claim("w1", 30, ["mail", "other"]).id == "x"
    assert store.claim("w1", 30, ["mail"]) is None
    assert store.claim("w1", 30).id == "d"


def test_a_cancel_request_wins_over_a_retry_when_the_attempt_ends_first(store, clock):
    register(store, "w1")
    store.enqueue([nj("r", max_retries=5)])
    job = claim_one(store, "w1", "r")
    assert store.cancel("r") == "cancelling"
    # The command failed before the worker saw the request: no retry.
    store.finish(job, FAIL, Decision("retry", 0.0))
    got = store.get_job("r")
    assert got.state == "cancelled" and got.finished_at is not None
    assert got.last_error == "cancelled (queuectl cancel)"
    assert [e["event"] for e in store.history("r")][-1] == "cancelled"
    assert store.claim("w1", 30) is None
    # Success still wins: a job that completed is completed.
    store.enqueue([nj("s")])
    job = claim_one(store, "w1", "s")
    store.cancel("s")
    store.finish(job, OK, COMPLETE)
    assert store.get_job("s").state == "completed"


def test_idle_looks_ignore_paused_and_other_queues(store, clock):
    register(store, "w1")
    store.enqueue([NewJob("p", "true", 0, queue="held")])
    assert store.next_due_in() == 0 and store.has_unfinished()
    store.set_queue("held", paused=True)
    assert store.next_due_in() is None, "a paused queue's job is not due for anyone"
    assert not store.has_unfinished(), "nothing a burst worker could still run"
    store.set_queue("held", paused=False)
    assert store.next_due_in(["elsewhere"]) is None
    assert not store.has_unfinished(["elsewhere"])
    assert store.next_due_in(["held"]) == 0
    store.set_queue("held", limit=1)
    store.enqueue([NewJob("p2", "true", 0, queue="held")])
    claim_one(store, "w1", "p")
    assert store.next_due_in() is None, "a queue at its limit has nothing due"
    assert store.has_unfinished()


def test_purge_deletes_old_finished_jobs_and_their_events(store, clock):
    register(store, "w1")
    put_in_state(store, clock, "old-done", "completed")
    put_in_state(store, clock, "old-dead", "dead")
    put_in_state(store, clock, "old-cancel", "cancelled")
    clock.advance(100)
    put_in_state(store, clock, "new-done", "completed")
    store.enqueue([nj("waiting")])
    assert store.purge(["completed"], 50) == 1
    assert store.history("old-done") == []
    with pytest.raises(NotFound):
        store.get_job("old-done")
    assert store.purge(["dead", "cancelled"], 50) == 2
    assert store.purge(["completed"], 0) == 1
    assert [j.id for j in store.list_jobs()] == ["waiting"]


def test_dead_jobs_and_retry_all_filters(store, clock):
    register(store, "w1")
    store.enqueue([NewJob("a", "exit 2", 0, queue="q1"), NewJob("b", "exit 3", 0, queue="q1"),
                   NewJob("c", "exit 2", 0, queue="q2")])
    for code in (2, 3, 2):
        job = store.claim("w1", 30)
        store.finish(job, Outcome("exit", code, f"exit code {code}"), BURY)
    assert [j.id for j in store.dead_jobs()] == ["a", "b", "c"]
    assert [j.id for j in store.dead_jobs(queue="q1")] == ["a", "b"]
    assert [j.id for j in store.dead_jobs(exit_code=2)] == ["a", "c"]
    assert store.dlq_retry_all(queue="q1", exit_code=2) == 1
    assert store.get_job("a").state == "pending"
    assert store.dlq_retry_all(exit_code=2) == 1
    assert store.dlq_retry_all() == 1
    assert store.dead_jobs() == []
