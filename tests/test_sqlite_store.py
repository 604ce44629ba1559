"""SQLite-specific behaviour of the store (the contract suite covers the rest)."""

from __future__ import annotations

import threading

from conftest import wait_until
from queuectl.clock import FakeClock
from queuectl.model import NewJob
from queuectl.policy import Decision
from queuectl.store import open_store


class CountingClock(FakeClock):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def now_ms(self) -> int:
        self.reads += 1
        return super().now_ms()


def test_rescue_that_waited_behind_a_long_writer_judges_nothing_that_round(tmp_path):
    """A rescuer queued behind a long write transaction must not rescue a job
    whose worker was queued behind it too (to heartbeat): it looks again later."""
    clock = CountingClock()
    path = str(tmp_path / "q.db")
    rescuer, blocker = open_store(path, clock=clock), open_store(path, clock=clock)
    rescuer.register_worker("w1", "h", 1, 30)
    rescuer.enqueue([NewJob("j", "true", max_retries=3)])
    assert rescuer.claim("w1", 30).id == "j"
    assert rescuer.rescue_expired(lambda job: Decision("retry", 0.0)) == []  # (watching)
    clock.advance(31)                                   # the lease has run out

    blocker.conn.execute("BEGIN IMMEDIATE")             # a long writer holds the lock
    result = {}
    reads = clock.reads
    t = threading.Thread(target=lambda: result.setdefault(
        "rescued", rescuer.rescue_expired(lambda job: Decision("retry", 0.0))))
    t.start()
    wait_until(lambda: clock.reads > reads, message="the rescuer to read the time")
    clock.advance(1)                                    # ... and keeps it a second
    blocker.conn.execute("COMMIT")
    t.join(10)
    assert result["rescued"] == []
    assert rescuer.get_job("j").state == "processing"

    # Next round, with no wait for the lock, the expired lease is rescued.
    assert [j.id for j in rescuer.rescue_expired(lambda job: Decision("retry", 0.0))] == ["j"]
    assert rescuer.get_job("j").state == "failed"
    rescuer.close()
    blocker.close()


def test_many_processes_opening_a_new_database_at_once(tmp_path):
    """Racing first opens: every process must see a queuectl database (none may
    catch the schema half-made and call it foreign)."""
    import multiprocessing

    path = str(tmp_path / "race.db")
    ctx = multiprocessing.get_context("fork")
    for _round in range(40):
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"race.db{suffix}").unlink(missing_ok=True)
        barrier = ctx.Barrier(6)
        queue = ctx.Queue()
        procs = [ctx.Process(target=_open_and_count, args=(path, barrier, queue))
                 for _ in range(6)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(10)
        assert results == [0] * 6, results


def _open_and_count(path, barrier, queue):
    barrier.wait()
    try:
        with open_store(path) as store:
            queue.put(sum(store.counts().values()))
    except Exception as e:       # reported, not raised, so the test shows which
        queue.put(repr(e))


def test_schema_created_by_another_process_between_our_two_reads(tmp_path):
    """The interleaving once seen in CI: our look for `meta` finds nothing, then
    another process commits the schema before we look at sqlite_master. We must
    read the new schema, not call the file foreign."""
    from queuectl.store.sqlite import SQLiteStore

    path = str(tmp_path / "q.db")
    open(path, "w").close()

    class Racing(SQLiteStore):
        def _connect(self):
            return _RacingConnection(super()._connect(), path)

    store = Racing(path)
    assert store.counts()["pending"] == 0
    store.close()


class _RacingConnection:
    """A connection whose first failed look for `meta` lets another process
    create the whole schema before the error is seen."""

    def __init__(self, conn, path):
        self._conn, self._path, self._raced = conn, path, False

    def execute(self, sql, *args):
        import sqlite3
        try:
            return self._conn.execute(sql, *args)
        except sqlite3.OperationalError as e:
            if "no such table: meta" in str(e) and not self._raced:
                self._raced = True
                open_store(self._path).close()        # the other process wins the race
            raise

    def __getattr__(self, name):
        return getattr(self._conn, name)


class SteppedClock(FakeClock):
    """A view of `base` whose wall clock can step (`offset_ms`) while its
    monotonic clock runs on untouched, as in a real clock step."""

    def __init__(self, base: FakeClock):
        super().__init__()
        self.base, self.offset_ms = base, 0

    def now_ms(self) -> int:
        return self.base.ms + self.offset_ms

    def monotonic_ms(self) -> int:
        return self.base.ms


def test_a_rescuer_wall_clock_step_neither_rescues_a_live_lease_nor_strands_a_dead_one(tmp_path):
    """Leases are written with the worker's wall clock; the rescue judges them
    by its own monotonic clock. (Before: a rescuer two hours ahead took a live
    worker's job at once, and swept its worker row as an hour stale; one two
    hours behind left a dead worker's job for two hours.)"""
    path = str(tmp_path / "q.db")
    base = FakeClock()
    worker, rescuer_clock = open_store(path, clock=base), SteppedClock(base)
    rescuer = open_store(path, clock=rescuer_clock)
    retry = lambda job: Decision("retry", 0.0)  # noqa: E731
    worker.register_worker("w1", "h", 1, 30)
    worker.enqueue([NewJob("j", "true", max_retries=3)])
    assert worker.claim("w1", 30).id == "j"
    assert rescuer.rescue_expired(retry) == []
    rescuer_clock.offset_ms = 2 * 3600_000                # two hours ahead
    for _ in range(10):                                   # the worker keeps beating
        base.advance(10)
        assert worker.heartbeat("w1", "j", 30)
        assert rescuer.rescue_expired(retry) == []
    assert worker.get_job("j").state == "processing"
    assert worker.heartbeat("w1", "j", 30), "the live worker's row and lease are intact"

    rescuer_clock.offset_ms = -2 * 3600_000               # now two hours behind
    base.advance(29)                                      # the worker died after its beat
    assert rescuer.rescue_expired(retry) == []
    base.advance(2)
    assert [j.id for j in rescuer.rescue_expired(retry)] == ["j"]
    job = rescuer.get_job("j")
    assert job.state == "failed" and "no heartbeat" in job.last_error
    worker.close()
    rescuer.close()


def test_bulk_insert_without_json_arrows_stores_the_same(tmp_path, monkeypatch):
    """SQLite before 3.38 has no `->>`: bulk enqueue binds every row instead,
    with the same result."""
    import queuectl.store.sqlite as sqlite_store

    def jobs():
        out = []
        for i in range(200):
            job = NewJob(f"j{i:03d}", f"echo {i} \u00e9", max_retries=i // 50,
                         priority=(i // 70) % 2, timeout=float(i // 100))
            job.queue = "q" if i >= 150 else "default"
            out.append(job)
        return out

    def stored(path):
        clock = FakeClock()
        with open_store(str(path), clock=clock) as store:
            store.enqueue(jobs())
            return ([j.to_dict() for j in store.list_jobs()],
                    [(e["job_id"], e["event"]) for e in store.history()])

    with_arrows = stored(tmp_path / "a.db")
    monkeypatch.setattr(sqlite_store, "JSON_ARROWS", False)
    assert stored(tmp_path / "b.db") == with_arrows
