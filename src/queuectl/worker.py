"""One worker: claim -> run -> decide -> record, with heartbeats, stop requests
and rescue of expired leases checked between jobs and while a job runs.

A worker is one process holding one database connection and running at most
one job at a time. The supervisor (supervisor.py) forks N of them.
"""

from __future__ import annotations

import os
import socket
import time

from queuectl import log, policy, runner
from queuectl.errors import LeaseLost, QueueError
from queuectl.runner import Outcome

TICK = 0.25           # seconds between checks while a job runs
STOP_CHECK = 0.5      # how often the stop flag is read
RESCUE_EVERY = 1.0    # how often expired leases are looked for
CONFIG_EVERY = 2.0    # how often config is re-read
IDLE_WAIT = 0.5       # longest idle sleep between looks at the queue


def heartbeat_interval(lease_timeout: float) -> float:
    return max(0.2, min(5.0, float(lease_timeout) / 4))


class Worker:
    def __init__(self, store, worker_id: str, *, burst: bool = False,
                 parent_pid: "int | None" = None, quiet: bool = False):
        self.store = store
        self.id = worker_id
        self.burst = burst
        self.parent_pid = parent_pid
        self.quiet = quiet
        self.stop_mode: "str | None" = None      # None, "graceful", "hard"
        self.orphaned = False
        self.lease_lost = False
        self.job = None
        self.cfg = store.config()
        self.base_env = dict(os.environ)
        now = time.monotonic()
        self._next = {"stop": now + STOP_CHECK, "beat": now, "rescue": now,
                      "config": now + CONFIG_EVERY}
        self._db_error = None

    # ------------------------------------------------------------ logging
    def log(self, msg: str, *, always: bool = False) -> None:
        if self.quiet and not always:
            return
        log.line(self.id, msg)

    # ------------------------------------------------------------ signals
    def on_sigterm(self, signum, frame) -> None:
        if self.stop_mode is None:
            self.stop_mode = "graceful"
            if self.job is not None:
                self.log(f"stopping after job {self.job.id} finishes", always=True)
        else:
            self.stop_mode = "hard"

    # ------------------------------------------------------------ main loop
    def run(self) -> int:
        self.store.register_worker(self.id, socket.gethostname(), os.getpid(),
                                   self.cfg["lease_timeout"])
        self.log("started")
        try:
            job = None
            while True:
                self.housekeeping()
                # A job claimed together with the last result is ours: a
                # graceful stop still runs it. An orphan leaves it behind.
                if self.orphaned or (self.stop_mode and job is None):
                    break
                try:
                    if job is None:
                        job = self.store.claim(self.id, self.cfg["lease_timeout"])
                    if job is None:
                        if self.burst and not self.store.has_unfinished():
                            self.log("no jobs left (burst): exiting")
                            break
                        due = self.store.next_due_in()
                        if due == 0:
                            # A job is due but the claim was refused or lost:
                            # perhaps we were told to stop; look now.
                            self._next["stop"] = 0.0
                        wait = IDLE_WAIT if due is None else min(IDLE_WAIT, max(due, 0.001))
                        self.store.wait_for_change(wait)
                        continue
                except QueueError as e:
                    self._db_trouble(e)
                    time.sleep(1.0)
                    continue
                job = self.execute(job)
        finally:
            # Deregistering while still holding a job (an orphan, whose command
            # has been killed) lets the other workers rescue it at once.
            self.store.deregister_worker(self.id)
            self.log("stopped")
        return 0

    def execute(self, job):
        """Run one claimed job; record the result. Returns the next claimed job, if any."""
        self.job, self.lease_lost = job, False
        env = self.base_env.copy()
        env["QUEUECTL_JOB_ID"] = job.id
        env["QUEUECTL_ATTEMPT"] = str(job.attempts)
        self.log(f"job {job.id} started (attempt {job.attempts}/{job.max_retries + 1})")
        if self.stop_mode == "hard":
            outcome = Outcome("interrupted", error="interrupted: worker was stopped")
        else:
            outcome = runner.run(job.command, env, timeout=job.timeout,
                                 tick=self.tick, tick_interval=TICK)
        if self.orphaned:
            self.log(f"job {job.id}: supervisor died; command killed, job left "
                     "for rescue", always=True)
            return None
        if self.lease_lost:
            self.job = None
            self.log(f"job {job.id}: lease lost (rescued by another worker); "
                     "this attempt's result is discarded", always=True)
            return None
        decision = policy.decide(outcome, job.attempts, job.max_retries, self.cfg)
        more = self.stop_mode is None and not self.orphaned
        nxt = None
        try:
            nxt = self._record(job, outcome, decision, more)
        finally:
            self.job = None
        return nxt

    def _record(self, job, outcome, decision, more: bool):
        """Store the attempt's end, retrying database trouble while the lease
        lasts; after that the job is left to the lease rescue."""
        give_up = time.monotonic() + float(self.cfg["lease_timeout"])
        while True:
            try:
                nxt = self.store.finish(job, outcome, decision,
                                        self.cfg["lease_timeout"] if more else None)
                self.log(self._describe(job, outcome, decision))
                return nxt
            except LeaseLost:
                self.log(f"job {job.id}: lease lost before the result was recorded; "
                         "result discarded", always=True)
                return None
            except QueueError as e:
                self._db_trouble(e)
                if time.monotonic() > give_up:
                    self.log(f"job {job.id}: could not record the result; the lease "
                             "rescue will retry the job", always=True)
                    return None
                time.sleep(0.5)
                self.housekeeping()

    def _db_trouble(self, e: Exception) -> None:
        if str(e) != self._db_error:
            self._db_error = str(e)
            self.log(f"database error (will retry): {e}", always=True)

    def _describe(self, job, outcome: Outcome, decision) -> str:
        took = f"{outcome.duration:.3f}s"
        if decision.action == "complete":
            return f"job {job.id} completed in {took}"
        if decision.action == "retry":
            return f"job {job.id} failed ({outcome.error}); retry in {decision.delay:.1f}s"
        n = job.attempts
        return (f"job {job.id} failed ({outcome.error}); moved to the DLQ after {n} "
                f"attempt{'s' if n != 1 else ''}")

    # ------------------------------------------------------------ periodic checks
    def tick(self):
        """Called by the runner while a job runs; a returned reason kills the job."""
        self.housekeeping()
        if self.orphaned:
            return "the worker's supervisor died"
        if self.lease_lost:
            return "lease lost (the job was rescued by another worker)"
        if self.stop_mode == "hard":
            return "worker was stopped"
        return None

    def housekeeping(self) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self.orphaned = True
            return
        now = time.monotonic()
        nxt = self._next
        if now < min(nxt.values()):
            return
        try:
            if now >= nxt["config"]:
                old_lease = self.cfg["lease_timeout"]
                self.cfg = self.store.config()
                if self.cfg["lease_timeout"] != old_lease:
                    nxt["beat"] = now        # renew on the new terms at once
                nxt["config"] = now + CONFIG_EVERY
            if now >= nxt["beat"]:
                held = self.store.heartbeat(self.id, self.job.id if self.job else None,
                                            self.cfg["lease_timeout"])
                if not held:
                    self.lease_lost = True
                nxt["beat"] = now + heartbeat_interval(self.cfg["lease_timeout"])
            if now >= nxt["stop"]:
                if self.stop_mode is None and self.store.stop_requested(self.id):
                    self.stop_mode = "graceful"
                    self.log("stop requested (queuectl worker stop)", always=True)
                nxt["stop"] = now + STOP_CHECK
            if now >= nxt["rescue"]:
                for job in self.store.rescue_expired(self._decide_lost):
                    self.log(f"job {job.id} rescued ({job.last_error}); now {job.state}",
                             always=True)
                nxt["rescue"] = now + RESCUE_EVERY
            self._db_error = None
        except QueueError as e:
            # A database hiccup must not kill the running job: report it once
            # and try again on the next tick.
            self._db_trouble(e)
            for key in nxt:
                nxt[key] = max(nxt[key], now + 1.0)

    def _decide_lost(self, job):
        lost = Outcome("lease_expired", error="lease expired")
        return policy.decide(lost, job.attempts, job.max_retries, self.cfg)
