"""The worker's periodic tasks: config refresh, heartbeat, stop and cancel
checks, pruning, cron schedules, rescue of expired leases.

`Chores` is a part of Worker (a mixin: the tasks read and set the worker's
state). Each task is one short method run by the worker's Timers from
housekeeping() and returns the seconds until it is due again.
"""

from __future__ import annotations

import os
import select

from queuectl import orphans
from queuectl.errors import QueueError
from queuectl.worker_timers import Timers

TYPE_CHECKING = False          # (names for annotations only: nothing imported at run time)
if TYPE_CHECKING:
    from queuectl.clock import FakeClock, SystemClock
    from queuectl.model import Decision, Job
    from queuectl.store.base import Store
    from queuectl.worker_batch import AheadBatch

STOP_CHECK = 0.5      # how often the stop flag is read
RESCUE_EVERY = 1.0    # how often expired leases are looked for
CONFIG_EVERY = 2.0    # how often config is re-read
PRUNE_EVERY = 30.0    # how often completed_ttl is applied (and dependents are repaired)
SCHEDULE_EVERY = 1.0  # how often due cron schedules are fired


def heartbeat_interval(lease_timeout: float) -> float:
    return max(0.2, min(5.0, float(lease_timeout) / 4))


class Chores:
    # The worker's state that the tasks read and set: declared here for the
    # type checker, set by Worker.__init__ (annotations only: no class
    # attributes at run time).
    store: Store
    id: str
    clock: SystemClock | FakeClock
    parent_pid: int | None
    wake_fds: tuple
    rundir: str | None
    cfg: dict
    job: Job | None
    batch: AheadBatch
    timers: Timers
    cron_errors: dict[str, str]
    stop_mode: str | None
    failed: str | None
    orphaned: bool
    lease_lost: bool
    cancelling: bool
    _db_error: str | None
    _renewed: float

    if TYPE_CHECKING:        # Worker's methods the tasks call
        def log(self, msg: str, *, always: bool = False) -> None: ...
        def _db_trouble(self, e: Exception) -> None: ...
        def _decide_lost(self, job: Job) -> Decision: ...

    def _timers(self) -> Timers:
        """The tasks, in the order they run when due at once."""
        t = Timers(self.clock)
        t.add("config", self._refresh_config, CONFIG_EVERY)
        t.add("beat", self._beat)
        t.add("stop", self._check_stop, STOP_CHECK)
        t.add("prune", self._prune, PRUNE_EVERY / 10)
        t.add("schedule", self._fire_due_schedules)
        t.add("rescue", self._rescue)
        return t

    def housekeeping(self) -> None:
        if self.parent_pid is not None and (
                os.getppid() != self.parent_pid
                or len(self.wake_fds) > 1 and select.select(self.wake_fds[1:], [], [], 0)[0]):
            # (The life pipe reads as closed a moment before we are reparented.)
            self.orphaned = True
            return
        now = self.clock.monotonic()
        if not self.timers.due(now):
            return
        try:
            self.timers.run_due(now)
        except QueueError as e:
            # A database hiccup must not kill the running job: report it once
            # and try again on the next tick.
            self._db_trouble(e)
            self.timers.postpone(now, 1.0)

    def _until_housekeeping(self) -> float:
        """Seconds until the next heartbeat, rescue or config look is due. (A
        stop request needs no timer: it is a commit, which ends the wait.)"""
        return self.timers.until(self.clock.monotonic(),
                                 ("beat", "rescue", "config", "schedule"))

    def _refresh_config(self, now: float) -> float:
        trouble = self.failed is None and self.store.file_trouble()
        if trouble:
            # Our connection still works on the old file, which no
            # other process sees any more: stop, as gracefully as
            # `worker stop` (the running job finishes).
            self.failed, self.stop_mode = trouble, self.stop_mode or "graceful"
            self.log(f"error: {trouble}; stopping"
                     + (f" once job {self.job.id} ends" if self.job else ""),
                     always=True)
        old_lease = self.cfg["lease_timeout"]
        self.cfg = self.store.config()
        if self.cfg["lease_timeout"] != old_lease:
            self.timers.set("beat", now)        # renew on the new terms at once
        return CONFIG_EVERY

    def _beat(self, now: float) -> float:
        job = self.job
        running = job is not None and job.state == "processing"
        reserved = [j.id for j in self.batch.ahead] + (
            [job.id] if job is not None and not running else [])
        held = self.store.heartbeat(self.id, job.id if job is not None and running else None,
                                    self.cfg["lease_timeout"], reserved)
        self.batch.renewed_at = now
        if not held:
            self.lease_lost = True
        elif job is not None:
            self._renewed = now
        if self._db_error is not None:
            # A write went through. (Not on any success: reads work on
            # a full or read-only disk, and the error would be logged
            # again at every tick.)
            self._db_error = None
            self.log("database error cleared: writes work again", always=True)
        return heartbeat_interval(self.cfg["lease_timeout"])

    def _check_stop(self, now: float) -> float:
        if self.stop_mode is None and self.store.stop_requested(self.id):
            self.stop_mode = "graceful"
            self.log("stop requested (queuectl worker stop)", always=True)
        job = self.job
        if job is not None and not self.cancelling and \
                self.store.cancel_requested(job.id):
            self.cancelling = True
            self.log(f"job {job.id}: cancel requested; killing the command",
                     always=True)
        return STOP_CHECK

    def _prune(self, now: float) -> float:
        # (Repair first: a purge must not take away what a blocked
        # dependent waits for.)
        self.store.settle_dependents()
        ttl = float(self.cfg.get("completed_ttl") or 0)
        if ttl > 0:
            n = self.store.purge(["completed"], ttl)
            if n:
                self.log(f"pruned {n} completed jobs older than {ttl:g}s")
        return PRUNE_EVERY

    def _fire_due_schedules(self, now: float) -> float:
        self.fire_schedules()
        return SCHEDULE_EVERY

    def fire_schedules(self) -> None:
        """Enqueue the jobs of due cron schedules (exactly once across workers:
        see Store.fire_schedules)."""
        from queuectl import cron
        cfg = self.cfg
        fired, failed = self.store.fire_schedules(
            cron.next_after, lambda job, job_id: cron.firing_job(job, job_id, cfg))
        for job_id in fired:
            self.log(f"schedule fired: enqueued {job_id}")
        for name, error in failed:
            # The cron extra is missing here, or a zone this host lacks: say so
            # once per schedule and reason; workers that can will fire it.
            if self.cron_errors.get(name) != error:
                self.cron_errors[name] = error
                self.log(f"schedule {name} not fired by this worker: {error}", always=True)

    def _rescue(self, now: float) -> float:
        # Dead workers of this host first: their jobs' processes are
        # killed, and their rows go, so the rescue below takes their
        # jobs back at once (and no job runs while its old run lives).
        for dead in orphans.sweep(self.rundir, self.store.deregister_worker):
            self.log(f"worker {dead} died; its job's processes are killed",
                     always=True)
        for job in self.store.rescue_expired(self._decide_lost):
            self.log(f"job {job.id} rescued ({job.last_error}); now {job.state}",
                     always=True)
        return RESCUE_EVERY
