"""Contract tests for the read methods behind stats, top and the dashboard,
on every backend, on the FakeClock: time windows over the event log (found by
bisecting seq), search and paging."""

from __future__ import annotations

import os

from queuectl.model import NewJob
from queuectl.policy import COMPLETE, Decision
from queuectl.runner import Outcome
from queuectl.store.base import first_seq_at

OK = Outcome("succeeded", 0, None, "", False, 0.5)
FAIL = Outcome("exit", 3, "exit code 3", "", False, 0.25)


def test_first_seq_at_bisects_with_gaps():
    ats = {1: 100, 2: 100, 5: 200, 9: 300, 10: 300}          # seq -> at, with gaps

    def at_from(s):
        return ats[min(k for k in ats if k >= s)]

    assert first_seq_at((1, 10), at_from, 50) == 1
    assert first_seq_at((1, 10), at_from, 100) == 1
    assert first_seq_at((1, 10), at_from, 150) == 3, "any seq in (2, 5] finds event 5"
    assert first_seq_at((1, 10), at_from, 300) == 6
    assert first_seq_at((1, 10), at_from, 301) == 11, "nothing that recent"
    assert first_seq_at((None, None), at_from, 0) == 0
    # Events purged between reading the bounds and probing: no crash, and the
    # window starts no later than the first surviving event that is in it.
    purged = {1: 100, 2: 100}

    def at_from_after_purge(s):
        found = [k for k in purged if k >= s]
        return purged[min(found)] if found else None

    assert first_seq_at((1, 10), at_from_after_purge, 150) == 3
    assert first_seq_at((1, 10), at_from_after_purge, 50) == 1


def test_time_windows_over_the_event_log(store, clock):
    store.register_worker("w1", "h", os.getpid(), 30)
    for minute in range(5):                  # one completed and one failed attempt a minute
        store.enqueue([NewJob(f"ok{minute}", "true", 0), NewJob(f"bad{minute}", "x", 1)])
        store.finish(store.claim("w1", 30), OK, COMPLETE)
        store.finish(store.claim("w1", 30), FAIL, Decision("retry", 3600))
        clock.advance(60)
    now = clock.now_ms()
    since = now - 150_000                    # the last two and a half minutes
    rows = store.attempt_ends(since_ms=since)
    assert {r[1] for r in rows} == {"ok3", "bad3", "ok4", "bad4"}
    assert all(r[4] >= since for r in rows)
    assert len(store.attempt_ends()) == 10
    counts = store.event_counts(since, 60_000)
    assert sorted(c for c in counts if c[1] == "completed") == [(0, "completed", 1, 1),
                                                                (1, "completed", 1, 1)]
    assert [r[1] for r in store.recent_failures(10, since)] == ["bad4", "bad3"]
    assert store.recent_failures(10, now + 1) == []
    assert store.attempt_ends(since_ms=now + 1) == []
    assert store.now_ms() == now


def test_search_paging_and_counts(store):
    store.enqueue([NewJob(f"job-{i}", f"echo {i}%done_", 0, queue="q") for i in range(7)])
    assert store.count_jobs() == 7 and store.count_jobs("pending", "ECHO 3") == 1
    assert store.count_jobs(search="%") == 7, "a literal % (every command has one)"
    assert store.count_jobs(search="_x") == 0, "and _ is literal too"
    page = store.list_jobs(None, 3, offset=3, newest_first=True)
    assert [j.id for j in page] == ["job-3", "job-2", "job-1"]
    assert [j.id for j in store.list_jobs("pending", 2, search="job-")] == ["job-0", "job-1"]
    assert store.count_jobs("completed") == 0


def test_metrics_reads(store, clock):
    """The reads behind /metrics: ready jobs per queue with the oldest one's
    wait, busy and idle workers, and the events after a cursor."""
    assert store.metrics_ready() == [] and store.metrics_workers() == (0, 0)
    start = store.max_event_seq()
    now = clock.now_ms()
    store.enqueue([NewJob("a1", "true", 0, queue="a", run_at=now - 5000),
                   NewJob("a2", "true", 0, queue="a"),
                   NewJob("later", "true", 0, queue="a", delay=60),       # not due
                   NewJob("b1", "true", 0, queue="b", run_at=now - 1000),
                   NewJob("dep", "true", 0, queue="c", after=["b1"])])    # blocked
    assert sorted(store.metrics_ready()) == [("a", 2, 5000), ("b", 1, 1000)]
    store.register_worker("w1", "h", os.getpid(), 30)
    store.register_worker("w2", "h", os.getpid(), 30)
    job = store.claim("w1", 30)
    assert job.id == "a1" and store.metrics_workers() == (1, 1)
    store.finish(job, OK, COMPLETE)
    assert store.metrics_workers() == (0, 2)
    events = store.metrics_events(start, 100)
    assert [(e[1], e[2]) for e in events] == [("a", "enqueued")] * 3 + [
        ("b", "enqueued"), ("c", "enqueued"), ("a", "completed")]
    assert [e[0] for e in events] == sorted(e[0] for e in events) and events[0][0] > start
    assert events[-1][4] == "w1" and '"duration"' in events[-1][5]
    assert store.metrics_events(start, 2) == events[:2]
    assert store.metrics_events(events[-1][0], 100) == []
    clock.advance(60)
    assert dict((q, n) for q, n, _ in store.metrics_ready()) == {"a": 2, "b": 1}
