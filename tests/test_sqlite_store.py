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
