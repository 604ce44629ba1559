"""Contract tests for cron schedules, on every backend, on the FakeClock.

Firing is what workers do every second (Worker.fire_schedules); here several
stores (separate connections, as separate workers have) call it directly.
"""

from __future__ import annotations

import pytest

from queuectl import cron
from queuectl.clock import iso, parse_iso
from queuectl.config import defaults
from queuectl.errors import Conflict, InvalidInput, NotFound

T0 = parse_iso("2026-01-01T00:00:30Z")


def fire(store):
    cfg = defaults()
    fired, failed = store.fire_schedules(
        cron.next_after, lambda job, job_id: cron.firing_job(job, job_id, cfg))
    assert failed == []
    return fired


def add(store, name="tick", expr="* * * * *", job='{"command": "echo hi"}', tz=None,
        replace=False):
    return store.add_schedule(name, expr, tz, cron.check_job(job),
                              lambda now: cron.next_after(expr, tz, now), replace=replace)


@pytest.fixture
def at_t0(clock):
    clock.ms = T0
    return clock


def test_add_list_remove(store, at_t0):
    assert add(store) == parse_iso("2026-01-01T00:01:00Z")
    add(store, "nightly", "0 3 * * *", '{"command": "backup", "queue": "ops"}',
        tz="Europe/Berlin")
    rows = store.schedules()
    assert [r["name"] for r in rows] == ["nightly", "tick"]
    assert rows[0] == {"name": "nightly", "cron": "0 3 * * *", "tz": "Europe/Berlin",
                       "job": {"command": "backup", "queue": "ops"},
                       "next_run_at": "2026-01-01T02:00:00.000Z", "last_run_at": None}
    with pytest.raises(Conflict):
        add(store)
    add(store, expr="*/5 * * * *", replace=True)
    assert store.schedules()[1]["cron"] == "*/5 * * * *"
    store.remove_schedule("tick")
    with pytest.raises(NotFound):
        store.remove_schedule("tick")
    assert [r["name"] for r in store.schedules()] == ["nightly"]


def test_each_firing_is_enqueued_once_by_many_workers(make_store, at_t0):
    workers = [make_store(worker=True) for _ in range(3)]
    add(workers[0])
    assert [fire(w) for w in workers] == [[], [], []], "not due yet"
    at_t0.advance(30)                               # 00:01:00: the first firing
    fired = [fire(w) for w in workers]
    assert sorted(sum(fired, [])) == ["tick:2026-01-01T00:01:00Z"]
    at_t0.advance(60)
    assert sum((fire(w) for w in reversed(workers)), []) == ["tick:2026-01-01T00:02:00Z"]
    job = workers[0].get_job("tick:2026-01-01T00:02:00Z")
    assert job.command == "echo hi" and job.state == "pending"
    assert job.max_retries == defaults()["max_retries"]
    row = workers[1].schedules()[0]
    assert row["last_run_at"] == "2026-01-01T00:02:00.000Z"
    assert row["next_run_at"] == "2026-01-01T00:03:00.000Z"


def test_missed_firings_are_enqueued_once_not_once_per_minute(store, at_t0):
    add(store)
    at_t0.advance(3 * 3600)                         # no worker ran for three hours
    assert fire(store) == ["tick:2026-01-01T00:01:00Z"]
    assert fire(store) == []
    assert store.schedules()[0]["next_run_at"] == iso(parse_iso("2026-01-01T03:01:00Z"))
    assert store.counts()["pending"] == 1


def test_a_firing_whose_job_exists_is_not_enqueued_twice(store, at_t0):
    # A schedule removed and added again within the same minute fires that
    # minute's job at most once (the id is unique per schedule and fire time).
    add(store)
    at_t0.advance(30)
    assert fire(store) == ["tick:2026-01-01T00:01:00Z"]
    store.remove_schedule("tick")
    at_t0.ms = T0
    add(store)
    at_t0.advance(30)
    assert fire(store) == []
    assert store.counts()["pending"] == 1


def test_time_zones_and_bad_expressions():
    berlin = cron.next_after("0 3 * * *", "Europe/Berlin", parse_iso("2026-03-28T12:00:00Z"))
    assert iso(berlin) == "2026-03-29T01:00:00.000Z", "03:00 CEST after the DST change"
    assert iso(cron.next_after("@daily", None, T0)) == "2026-01-02T00:00:00.000Z"
    for expr, tz in (("* * *", None), ("61 * * * *", None), ("0 0 30 2 *", None),
                     ("* * * * *", "Mars/Olympus")):
        with pytest.raises(InvalidInput):
            cron.check(expr, tz)
    for job in ('{"id": "x", "command": "true"}', '{"command": "true", "after": ["a"]}',
                '{"command": ""}', '[1]'):
        with pytest.raises(InvalidInput):
            cron.check_job(job)
    with pytest.raises(InvalidInput):
        cron.check_name("x" * 65)


def test_a_schedule_that_cannot_be_evaluated_does_not_stop_the_others(store, at_t0):
    add(store, "good")
    add(store, "bad")
    at_t0.advance(30)

    def next_after(expr, tz, after):
        if store_names.pop(0) == "bad":
            raise InvalidInput("unknown time zone 'Gone/Zone'")
        return cron.next_after(expr, tz, after)

    store_names = ["bad", "good"]           # the order fire_schedules visits them
    fired, failed = store.fire_schedules(
        next_after, lambda job, job_id: cron.firing_job(job, job_id, defaults()))
    assert fired == ["good:2026-01-01T00:01:00Z"]
    assert failed == [("bad", "unknown time zone 'Gone/Zone'")]
    rows = {r["name"]: r for r in store.schedules()}
    assert rows["bad"]["last_run_at"] is None, "left due, for a worker that can fire it"
    assert fire(store) == ["bad:2026-01-01T00:01:00Z"]


def test_a_repeated_wall_time_never_gives_a_past_fire_time():
    # 2026-10-25 in Berlin: 02:00-03:00 happens twice. At 02:10 of the second
    # pass (01:10Z), "30 2 * * *" must not answer 02:30 of the first (00:30Z).
    after = parse_iso("2026-10-25T01:10:00Z")
    assert cron.next_after("30 2 * * *", "Europe/Berlin", after) > after
