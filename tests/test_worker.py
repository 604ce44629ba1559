"""The worker's own safety nets, with a store that fails on purpose."""

from __future__ import annotations

import time

from queuectl import config as cfgmod
from queuectl.clock import FakeClock
from queuectl.errors import StoreError
from queuectl.model import Job
from queuectl.worker import Worker


class UnreachableStore:
    """The database went away after the claim: every call fails."""

    idle_wait = 0.5

    def __init__(self, lease_timeout):
        self.cfg = {**cfgmod.defaults(), "lease_timeout": lease_timeout}
        self.finished = []

    def config(self):
        return self.cfg

    def _down(self, *a, **kw):
        raise StoreError("lost connection to postgresql://db:5432/q: server closed")

    heartbeat = stop_requested = rescue_expired = history = _down

    def file_trouble(self):
        return None

    def finish(self, *a, **kw):
        self.finished.append(a)
        self.on_finish()
        self._down()

    def on_finish(self):
        pass


def _job(command: str) -> Job:
    return Job("j1", command, "processing", 1, 0, 0, 0, 0.0, 0, 0, worker_id="w1",
               lease_expires_at=1)


def _worker(store, seconds_per_tick: float) -> "tuple[Worker, FakeClock]":
    """A worker on a fake clock that moves `seconds_per_tick` at each of the
    runner's ticks (every 0.25 s of real time) while a job runs."""
    clock = FakeClock()
    worker = Worker(store, "w1", quiet=True, clock=clock)
    worker._claimed_at = clock.monotonic()      # (as if it had just claimed the job)
    tick = worker.tick

    def ticking():
        clock.advance(seconds_per_tick)
        return tick()
    worker.tick = ticking
    return worker, clock


def test_a_job_whose_lease_cannot_be_renewed_is_killed_before_it_could_run_twice():
    store = UnreachableStore(lease_timeout=2)
    worker, clock = _worker(store, seconds_per_tick=0.5)
    t0, f0 = time.monotonic(), clock.monotonic()
    assert worker.execute(_job("sleep 20")) == (None, False)    # (next job, taken ahead)
    took = time.monotonic() - t0
    # Killed at ~0.9 x lease_timeout on the worker's clock (plus the runner's
    # TERM grace), not after 20 s.
    assert 1.8 <= clock.monotonic() - f0 <= 2.5
    assert took < 5, took
    assert worker.lease_lost
    assert store.finished == [], "a result that is not ours is never recorded"


def test_a_short_outage_does_not_stop_the_job():
    store = UnreachableStore(lease_timeout=30)
    worker, clock = _worker(store, seconds_per_tick=2.5)
    # Once the result is offered, a second Ctrl+C: _record gives up instead of retrying.
    store.on_finish = lambda: setattr(worker, "stop_mode", "hard")
    t0, f0 = time.monotonic(), clock.monotonic()
    worker.execute(_job("sleep 1.5"))
    assert time.monotonic() - t0 >= 1.4, "the command ran to its end"
    # An outage of several seconds on the worker's clock, under 0.9 x lease_timeout.
    assert 7.5 <= clock.monotonic() - f0 < 27
    assert not worker.lease_lost
    assert len(store.finished) == 1, "the job ran to its end and its result was offered"
