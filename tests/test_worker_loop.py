"""The worker loop in-process, against a real SQLite store, on a fake clock.

No sleeps: the only real time spent is running tiny commands (`true`,
`exit 3`). Waiting for work (the store's wait_for_change) and the worker's
pauses move the fake clock instead, which the store (leases, run_at, the
rescue) and the worker (timers, lease watchdog) share.
"""

from __future__ import annotations

import pytest

from queuectl.clock import FakeClock
from queuectl.model import NewJob
from queuectl.store import open_store
from queuectl.worker import Worker
from queuectl.worker_chores import CONFIG_EVERY, PRUNE_EVERY, STOP_CHECK
from queuectl.worker_timers import Timers

LIMIT = 3600.0     # fake seconds: a loop still waiting after this is stuck


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def open_(tmp_path, clock):
    """open_() -> a new connection to this test's SQLite database, whose idle
    waits move the fake clock (and fail a test whose loop never ends)."""
    start = clock.monotonic()

    def wait_for_change(timeout, wake_fds=()):
        assert clock.monotonic() - start < LIMIT, "the worker loop is stuck"
        clock.advance(timeout)

    def open_store_():
        store = open_store(str(tmp_path / "q.db"), clock=clock, worker=True)
        store.wait_for_change = wait_for_change
        return store
    return open_store_


@pytest.fixture
def store(open_):
    return open_()


def nj(job_id, command="true", max_retries=3) -> NewJob:
    return NewJob(id=job_id, command=command, max_retries=max_retries)


def _events(store, job_id):
    return [e["event"] for e in store.history(job_id)]


def _ms(iso_text):
    from queuectl.clock import parse_iso
    return parse_iso(iso_text)


def test_a_job_completes(store, clock):
    store.enqueue([nj("a")])
    worker = Worker(store, "w1", quiet=True, burst=True, clock=clock)
    assert worker.run() == 0
    assert store.get_job("a").state == "completed"
    assert _events(store, "a") == ["enqueued", "processing", "completed"]


def test_a_failing_job_is_retried_once_its_backoff_has_passed(store, clock):
    store.enqueue([nj("a", "exit 3", max_retries=1)])
    worker = Worker(store, "w1", quiet=True, clock=clock)
    worker._register()
    job = worker._find_job(None)
    assert job.id == "a"
    assert worker.execute(job) == (None, False)
    assert store.get_job("a").state == "failed"      # (to be retried)
    # Not before its backoff (2 s, plus up to 10% jitter) has passed on the clock.
    assert store.claim("w1", 30) is None
    clock.advance(1.9)
    assert store.claim("w1", 30) is None
    clock.advance(0.4)
    job = worker._find_job(None)
    assert (job.id, job.attempts) == ("a", 2)
    worker.execute(job)
    assert store.get_job("a").state == "dead"
    assert _events(store, "a") == ["enqueued", "processing", "retry_scheduled",
                                   "processing", "dead"]


def test_the_loop_waits_out_a_backoff_on_the_clock(store, clock):
    store.enqueue([nj("a", "exit 3", max_retries=2)])
    t0 = clock.now_ms()
    assert Worker(store, "w1", quiet=True, burst=True, clock=clock).run() == 0
    history = store.history("a")
    assert [e["event"] for e in history] == [
        "enqueued", "processing", "retry_scheduled", "processing", "retry_scheduled",
        "processing", "dead"]
    starts = [_ms(e["at"]) for e in history if e["event"] == "processing"]
    # Backoffs of 2 and 4 s (+ <= 10% jitter), waited on the fake clock.
    assert 2000 <= starts[1] - starts[0] <= 2200 + 100
    assert 4000 <= starts[2] - starts[1] <= 4400 + 100
    assert clock.now_ms() - t0 < 10_000


def test_a_job_whose_lease_expires_is_rescued_by_another_worker(open_, clock):
    store = open_()
    store.config_set("lease_timeout", 5)
    store.enqueue([nj("a")])
    # Worker w1 claims the job, then freezes: it never renews the lease.
    frozen = open_()
    frozen.register_worker("w1", "testhost", 1, 5)
    assert frozen.claim("w1", 5).id == "a"
    t0 = clock.now_ms()
    rescuer = Worker(store, "w2", quiet=True, burst=True, clock=clock)
    assert rescuer.run() == 0
    job = store.get_job("a")
    assert (job.state, job.worker_id, job.attempts) == ("completed", "w2", 2)
    events = store.history("a")
    assert [e["event"] for e in events] == ["enqueued", "processing", "lease_expired",
                                            "retry_scheduled", "processing", "completed"]
    assert events[2]["error"] == "lease expired: no heartbeat from worker w1"
    # Not before the lease had run out (and was watched lying still for its
    # term); run again after the backoff.
    assert _ms(events[2]["at"]) - t0 >= 5000
    assert _ms(events[4]["at"]) - _ms(events[3]["at"]) >= 2000
    assert clock.now_ms() - t0 < 60_000


def test_timers_fire_at_their_intervals_as_the_clock_advances(store, clock):
    calls = []
    for name in ("config", "heartbeat", "stop_requested", "settle_dependents",
                 "fire_schedules", "rescue_expired"):
        real = getattr(store, name)

        def spy(*a, _real=real, _name=name, **kw):
            calls.append(_name)
            return _real(*a, **kw)
        setattr(store, name, spy)
    worker = Worker(store, "w1", quiet=True, clock=clock)
    worker._register()
    calls.clear()

    def look():
        worker.housekeeping()
        seen = set(calls)
        calls.clear()
        return seen
    # At once: heartbeat, schedules, rescue; the others later.
    assert look() == {"heartbeat", "fire_schedules", "rescue_expired"}
    assert look() == set(), "nothing is due twice at the same moment"
    clock.advance(STOP_CHECK)
    assert look() == {"stop_requested"}
    clock.advance(0.5)     # 1.0 s: schedules and rescue again (every second)
    assert look() == {"fire_schedules", "rescue_expired", "stop_requested"}
    clock.advance(CONFIG_EVERY - 1.0)
    assert "config" in look()
    clock.advance(PRUNE_EVERY / 10 - CONFIG_EVERY)
    assert "settle_dependents" in look()
    clock.advance(2.0)     # 5 s: the heartbeat (lease_timeout 30 / 4, at most 5 s)
    assert "heartbeat" in look()
    # A changed lease_timeout renews at once, on the new terms (every 0.25 s).
    store.config_set("lease_timeout", 1)
    clock.advance(CONFIG_EVERY)
    assert {"config", "heartbeat"} <= look()
    clock.advance(0.25)
    assert "heartbeat" in look()


def test_timers_after_a_database_error_wait_a_second(store, clock):
    from queuectl.errors import StoreError
    worker = Worker(store, "w1", quiet=True, clock=clock)

    def down(*a, **kw):
        raise StoreError("database q.db: disk I/O error")
    real, store.heartbeat = store.heartbeat, down
    worker.housekeeping()
    now = clock.monotonic()
    assert all(worker.timers.at(n) >= now + 1.0
               for n in ("config", "beat", "stop", "prune", "schedule", "rescue"))
    store.heartbeat = real
    clock.advance(1.0)
    worker.housekeeping()
    assert worker.timers.at("beat") > clock.monotonic() + 1.0


def test_the_batch_gives_back_the_jobs_it_holds_when_the_worker_stops(store, clock):
    store.enqueue([nj(j) for j in "abc"])
    worker = Worker(store, "w1", quiet=True, clock=clock)
    worker._register()
    claimed, _ = store.finish_all("w1", [], 30, None, 7)
    assert [j.id for j in claimed] == ["a", "b", "c"]
    worker.batch.ahead, worker.batch.claimed_at = claimed[1:], clock.monotonic()
    worker.on_sigterm(15, None)              # a graceful stop
    assert worker.execute(claimed[0]) == (None, False)   # a runs; nothing after it
    assert worker.batch.ahead == [] and worker.batch.unrecorded == []
    assert store.get_job("a").state == "completed"
    for j in "bc":
        job = store.get_job(j)
        assert (job.state, job.worker_id, job.attempts) == ("pending", None, 0)
        assert _events(store, j) == ["enqueued"]
    # Another worker takes them at once.
    store.register_worker("w2", "testhost", 2, 30)
    assert store.claim("w2", 30).id == "b"


def test_a_held_job_runs_without_a_new_claim_and_is_recorded_with_the_next(store, clock):
    store.enqueue([nj(j) for j in "ab"])
    worker = Worker(store, "w1", quiet=True, clock=clock)
    worker._register()
    claimed, _ = store.finish_all("w1", [], 30, None, 7)
    worker.batch.ahead, worker.batch.claimed_at = claimed[1:], clock.monotonic()
    worker.batch.next_job = lambda took, limit, _n=worker.batch.next_job: _n(0.0, limit)
    nxt, waited = worker.execute(claimed[0])    # (as if `true` took no time)
    assert (nxt.id, waited) == ("b", True)
    assert store.get_job("a").state == "processing"     # recorded with b's end
    assert worker.execute(nxt, waited) == (None, False)
    assert {j.id: j.state for j in store.list_jobs()} == {"a": "completed",
                                                         "b": "completed"}


def test_a_held_job_is_not_started_once_its_reservation_may_have_run_out(store, clock):
    store.enqueue([nj(j) for j in "ab"])
    worker = Worker(store, "w1", quiet=True, clock=clock)
    worker._register()
    claimed, _ = store.finish_all("w1", [], 30, None, 7)
    worker.batch.ahead, worker.batch.claimed_at = claimed[1:], clock.monotonic()
    clock.advance(0.9 * 30 + 0.1)        # frozen past 0.9 x lease_timeout
    b = worker.batch.ahead.pop(0)
    nxt, waited = worker.execute(b, True)
    # Given back and claimed again, as a fresh claim.
    assert (nxt.id, waited) == ("b", False)
    assert _events(store, "b") == ["enqueued", "processing"]


def test_timers_run_in_order_and_a_task_may_make_a_later_one_due():
    clock = FakeClock()
    timers, ran = Timers(clock), []

    def task(name, every, then=None):
        def run(now):
            ran.append(name)
            if then:
                timers.set(then, now)
            return every
        return run
    timers.add("first", task("first", 2.0, then="second"), 1.0)
    timers.add("second", task("second", 10.0), 5.0)
    now = clock.monotonic()
    assert not timers.due(now)
    assert timers.until(now, ["first", "second"]) == pytest.approx(1.0)
    clock.advance(1.0)
    timers.run_due(clock.monotonic())
    assert ran == ["first", "second"]
    timers.by("second", clock.monotonic() + 20)        # (not later than it was)
    assert timers.at("second") == pytest.approx(clock.monotonic() + 10)
    timers.postpone(clock.monotonic(), 3.0)
    assert timers.at("first") == pytest.approx(clock.monotonic() + 3.0)
