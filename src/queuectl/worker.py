"""One worker: claim -> run -> decide -> record, with heartbeats, stop requests
and rescue of expired leases checked between jobs and while a job runs.

A worker is one process holding one database connection and running at most
one job at a time. The supervisor (supervisor.py) forks N of them.
"""

from __future__ import annotations

import os
import select
import socket
import time

from queuectl import log, orphans, policy, runner
from queuectl.errors import LeaseLost, QueueError
from queuectl.model import Outcome
from queuectl.store.base import CANCEL, as_cancelled

TICK = 0.25           # seconds between checks while a job runs
STOP_CHECK = 0.5      # how often the stop flag is read
RESCUE_EVERY = 1.0    # how often expired leases are looked for
CONFIG_EVERY = 2.0    # how often config is re-read
PRUNE_EVERY = 30.0    # how often completed_ttl is applied (and dependents are repaired)
SCHEDULE_EVERY = 1.0  # how often due cron schedules are fired
LEASE_MARGIN = 0.9    # a job whose lease went unrenewed this long (x lease_timeout) is dropped
SHORT_JOB = 0.02      # seconds: after a job this short, the next claim takes more ahead
RELEASE_AFTER = 0.2   # seconds: a job running this long gives back the jobs taken ahead
MAX_AHEAD = 64        # claim_ahead is capped here
STOP_BURST = 0.5      # seconds: stop signals this close together count as one
# A command that dies of one of these (or exits 128 + one of them) while its
# worker is stopping was interrupted by the stop (a service manager signals
# every process): handed back, not counted as a failure.
STOP_SIGNALS = (1, 2, 15)     # SIGHUP, SIGINT, SIGTERM


def heartbeat_interval(lease_timeout: float) -> float:
    return max(0.2, min(5.0, float(lease_timeout) / 4))


class Worker:
    def __init__(self, store, worker_id: str, *, burst: bool = False,
                 parent_pid: "int | None" = None, quiet: bool = False,
                 wake_fds: tuple = (), host: "str | None" = None,
                 queues: "list[str] | None" = None, db: "str | None" = None):
        self.store = store
        self.id = worker_id
        self.burst = burst
        self.parent_pid = parent_pid
        self.quiet = quiet
        # (signal pipe, supervisor's life pipe): readable = stop waiting.
        self.wake_fds = wake_fds
        self.host = host or socket.gethostname()
        self.queues = list(queues) if queues else None      # None: every queue
        self.cancelling = False
        self.stop_mode: "str | None" = None      # None, "graceful", "hard"
        self._stop_signal_at: "float | None" = None   # monotonic time of the first stop signal
        self.orphaned = False
        self.lease_lost = False
        self.job = None
        # Claimed ahead (see docs/ARCHITECTURE.md, "Claiming ahead"): jobs held
        # but not started, and ended attempts not yet recorded.
        self.ahead: list = []
        self.unrecorded: list = []
        self._batch_at = 0.0     # when the jobs taken ahead were claimed (monotonic)
        self._held_renewed = 0.0  # when their reservations were last renewed (monotonic)
        self._hold_doubt = False  # a release failed: start no job taken ahead
        self.cfg = store.config()
        self.base_env = dict(os.environ)
        self.db = db      # QUEUECTL_DB for the jobs: they talk to the queue running them
        # Where this host's workers note their jobs' process groups (orphans.py).
        self.rundir = orphans.runtime_dir(self.host, db) if db is not None else None
        self.record = None
        now = time.monotonic()
        self._next = {"stop": now + STOP_CHECK, "beat": now, "rescue": now,
                      "config": now + CONFIG_EVERY, "prune": now + PRUNE_EVERY / 10,
                      "schedule": now}
        self.cron_errors: dict = {}     # schedule name -> why this worker could not fire it
        self._db_error = None
        self._renewed = time.monotonic()   # when the running job's lease was last renewed
        self.uncertain = False      # a store call failed: do we hold a job we don't know of?
        self.failed: "str | None" = None   # why this worker stops with an error (exit 1)

    # ------------------------------------------------------------ logging
    def log(self, msg: str, *, always: bool = False) -> None:
        if self.quiet and not always:
            return
        log.line(self.id, msg)

    # ------------------------------------------------------------ signals
    def on_sigterm(self, signum, frame) -> None:
        """SIGTERM, SIGINT or SIGHUP: the first asks for a graceful stop. One
        signal sent to a whole process group (or by a service manager to every
        process) reaches a worker more than once, directly and relayed by the
        supervisor: signals within STOP_BURST seconds of the first count as
        one. A separate one, later, is a hard stop."""
        now = time.monotonic()
        if self.stop_mode is None:
            self.stop_mode = "graceful"
            self._stop_signal_at = now
            if self.job is not None:
                self.log(f"stopping after job {self.job.id} finishes", always=True)
        elif self._stop_signal_at is None or now - self._stop_signal_at >= STOP_BURST:
            self.stop_mode = "hard"

    # ------------------------------------------------------------ main loop
    def run(self) -> int:
        self.store.register_worker(self.id, self.host, os.getpid(),
                                   self.cfg["lease_timeout"])
        if self.rundir is not None:
            self.record = orphans.Record(self.rundir, self.id)
            prev = self.record.previous
            if prev is not None:       # a dead worker's, under our (reused) pid
                orphans.kill_group(prev)
                try:
                    self.store.deregister_worker(prev["worker_id"])
                except QueueError as e:
                    self._db_trouble(e)     # (its jobs are rescued by lease)
        self.log("started")
        try:
            job, waited = None, False
            while True:
                self.housekeeping()
                try:
                    # A job claimed together with the last result (or whose
                    # claim reply was lost) is ours: a graceful stop still
                    # runs it. An orphan leaves it behind.
                    if job is None and self.uncertain and not self.orphaned:
                        job = self.adopt()
                    if self.orphaned or (self.stop_mode and job is None):
                        break
                    if job is None and self.ahead:
                        # Jobs taken ahead that a failed release kept: give
                        # them back before claiming more.
                        self._release()
                        if self.ahead:
                            time.sleep(1.0)
                            continue
                    if job is None:
                        job = self.store.claim(self.id, self.cfg["lease_timeout"],
                                               self.queues)
                    if job is None:
                        if self.burst and not self.store.has_unfinished(self.queues):
                            self.log("no jobs left (burst): exiting")
                            break
                        due = self.store.next_due_in(self.queues)
                        wait = min(self.store.idle_wait, self._until_housekeeping())
                        if due is not None:
                            wait = min(wait, max(due, 0.001))
                        self.store.wait_for_change(wait, self.wake_fds)
                        if self.wake_fds:
                            try:
                                os.read(self.wake_fds[0], 512)    # drain signal bytes
                            except BlockingIOError:
                                pass
                        # A wake-up (or a due job we could not claim) may mean
                        # we were told to stop: look now, not at the next tick.
                        self._next["stop"] = 0.0
                        continue
                except QueueError as e:
                    # The claim may have been committed with its reply lost.
                    self.uncertain = True
                    self._db_trouble(e)
                    time.sleep(1.0)
                    continue
                job, waited = self.execute(job, waited)
        finally:
            if self.unrecorded:
                self._record_all(False, 0, retry=False, last=True)
            if self.ahead:
                self._release()
            # Deregistering while still holding a job (an orphan, whose command
            # has been killed) lets the other workers rescue it at once.
            self.store.deregister_worker(self.id)
            if self.record is not None:
                self.record.close()
            self.log("stopped")
        return 1 if self.failed else 0

    def adopt(self):
        """After a store error, find out whether we hold a job whose claim
        committed but whose reply was lost; run it rather than let it expire."""
        held = self.store.held_by(self.id)
        self.uncertain = False
        if held:
            self.log(f"job {held[0].id}: claimed before the database connection "
                     "dropped; running it now", always=True)
            return held[0]
        return None

    def execute(self, job, waited: bool = False):
        """Run one claimed job (`waited`: one taken ahead); record the result
        (or, while jobs taken ahead wait, keep it for one transaction with
        theirs). Returns the next job to run, if any."""
        if job.state == "pending":        # taken ahead (reserved, not claimed)
            why = self._cannot_start(job)
            if why:
                self.log(f"job {job.id}: {why}; not starting it", always=True)
                return self._next_job(0.0, self._claim_ahead())
            # Taken ahead: its attempt starts now (recorded with its end, or
            # when it turns out long; see tick()).
            job.attempts += 1
            job.started_at = self.store.now_ms()
        self.job, self.lease_lost, self.cancelling = job, False, False
        self._renewed = self._started = time.monotonic()
        self._next["stop"] = min(self._next["stop"], time.monotonic() + STOP_CHECK)
        opts = job.options or {}
        env = self.base_env.copy()
        env.update(opts.get("env") or {})
        if self.db is not None:
            env["QUEUECTL_DB"] = self.db
        env["QUEUECTL_JOB_ID"] = job.id
        env["QUEUECTL_ATTEMPT"] = str(job.attempts)
        self.log(f"job {job.id} started (attempt {job.attempts}/{job.max_retries + 1})")
        if self.stop_mode == "hard":
            outcome = Outcome("interrupted", error="interrupted: worker was stopped")
        else:
            outcome = runner.run(job.command, env, timeout=job.timeout,
                                 tick=self.tick, tick_interval=TICK, cwd=opts.get("cwd"),
                                 record=self.record)
        if self.orphaned:
            self.log(f"job {job.id}: supervisor died; command killed, job left "
                     "for rescue", always=True)
            return None, False
        if self.stop_mode is not None and self._stopped_by_signal(outcome):
            outcome = Outcome("interrupted", outcome.exit_code,
                              f"interrupted: the worker was stopping ({outcome.error})",
                              outcome.output, outcome.truncated, outcome.duration)
        result = None
        if self.lease_lost:
            self.log(f"job {job.id}: lease lost (rescued by another worker); "
                     "this attempt's result is discarded", always=True)
        elif self.cancelling:
            result = (job, as_cancelled(outcome), CANCEL)
        else:
            result = (job, outcome, policy.decide(outcome, job.attempts, job.max_retries,
                                                  self.cfg,
                                                  fatal=opts.get("fatal_exit_codes") or ()))
        self.job = None
        if result is not None and result[1].kind == "interrupted" and not self.cancelling:
            # Stopping: record what ran before it, give back what waits, and
            # hand this one back (the attempt is not charged).
            if self.ahead:
                self._release()
            if self.unrecorded:
                self._record_all(False, 0)
            if job.state == "pending":
                # Taken ahead and not yet marked running: its reservation
                # ends, and it is pending as if it had never started.
                job.attempts -= 1
                self.ahead.insert(0, job)
                self._release()
                self.log(f"job {job.id} interrupted by the stop; given back")
            else:
                self._record(*result)
            return None, False
        limit = self._claim_ahead()
        if not (limit or self.ahead or self.unrecorded):
            return (self._record(*result) if result else None), False
        if result:
            self.unrecorded.append(result)
            # Said now, in the order the jobs ran (recorded with the next claim).
            self.log(self._describe(*result))
        return self._next_job(outcome.duration if result else SHORT_JOB, limit)

    @staticmethod
    def _stopped_by_signal(outcome) -> bool:
        if outcome.kind == "signal":
            return any(f"signal {n} " in (outcome.error or "") for n in STOP_SIGNALS)
        return outcome.kind == "exit" and outcome.exit_code in [128 + n for n in STOP_SIGNALS]

    def _cannot_start(self, job) -> "str | None":
        """Why a job taken ahead must not start now (None: it may). Its
        reservation must still be ours for sure: renewed (or taken) less than
        LEASE_MARGIN x lease_timeout ago by our monotonic clock (a worker
        frozen longer may have lost it), and still ours in the database, its
        queue not paused. Jobs that cannot be checked are given back."""
        lease = float(self.cfg["lease_timeout"])
        if time.monotonic() - max(self._batch_at, self._held_renewed) > LEASE_MARGIN * lease:
            self.ahead.insert(0, job)
            self._release()
            return ("its reservation may have run out (the worker was frozen or the "
                    "database slow); given back")
        try:
            state = self.store.held_state(self.id, job)
        except QueueError as e:
            self._db_trouble(e)
            self.ahead.insert(0, job)
            self._release()        # (kept, to give back later, if this fails too)
            return "the database could not confirm it is still ours; given back"
        if state == "paused":
            self.ahead.insert(0, job)
            self._release()
            return f"queue {job.queue} was paused while it waited; given back"
        if state != "ok":
            return "cancelled, or taken by another worker, while it waited"
        return None

    def _claim_ahead(self) -> int:
        """How many jobs to claim beyond the next (config claim_ahead, where
        the backend supports it)."""
        if not getattr(self.store, "can_claim_ahead", False):
            return 0
        return min(int(self.cfg.get("claim_ahead", 0)), MAX_AHEAD)

    def _next_job(self, took: float, limit: int):
        """With claiming ahead: the next job taken ahead (its predecessors'
        results wait to be recorded with it), or record what ran and claim
        again, taking more ahead after a short job (`took` seconds)."""
        more = self.stop_mode is None and not self.orphaned
        if self.ahead and more and not self._hold_doubt and took < SHORT_JOB and \
                len(self.unrecorded) <= limit and \
                all(j.attempts <= j.max_retries for j, _, _ in self.unrecorded):
            # (An unrecorded result is lost if the worker dies: only while a
            # rescue would retry its job, never bury it.)
            return self.ahead.pop(0), True
        if self.ahead and not more:
            self._release()
        ahead = limit if took < SHORT_JOB else 0
        at = time.monotonic()        # (before the claim: the reservations end later)
        claimed = self._record_all(more and not self.ahead, ahead)
        if self.ahead:
            if not more or self._hold_doubt:
                return None, False     # a release that failed: retried by run()
            return self.ahead.pop(0), True
        if claimed:
            self.ahead, self._batch_at = claimed[1:], at
            return claimed[0], False
        return None, False

    def _release(self) -> None:
        """Give back the jobs taken ahead (a stop, or a long job holding them)."""
        jobs, self.ahead = self.ahead, []
        try:
            self.store.release(self.id, jobs)
            self._hold_doubt = False
        except QueueError as e:
            self._hold_doubt = True
            # Still ours (their leases are renewed with our heartbeat): keep
            # them, to run or to give back on a later try.
            self._db_trouble(e)
            self.ahead = jobs + self.ahead

    def _record_all(self, claim: bool, ahead: int, retry: bool = True,
                    last: bool = False) -> list:
        """Record every unrecorded attempt in one transaction, claiming the
        next jobs with it if `claim`; database trouble is retried as in
        _record (without `retry`: reported, and left for the next call, or
        given up if this is the `last` call before the worker exits)."""
        pause = 0.1
        while True:
            try:
                claimed, lost = self.store.finish_all(
                    self.id, self.unrecorded, self.cfg["lease_timeout"] if claim else None,
                    self.queues, ahead)
                break
            except QueueError as e:
                self._db_trouble(e)
                if (not retry and last) or self.stop_mode == "hard" or self.orphaned:
                    for job, _, _ in self.unrecorded:
                        self.log(f"job {job.id}: could not record the result; the lease "
                                 "rescue will retry the job", always=True)
                    self.unrecorded = []
                    return []
                if not retry:
                    return []
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                self.housekeeping()
                claim = claim and self.stop_mode is None and not self.orphaned
        for job, _outcome, _decision in self.unrecorded:
            if job in lost:
                self.log(f"job {job.id}: lease lost before the result was recorded; "
                         "result discarded", always=True)
        self.unrecorded = []
        return claimed

    def _record(self, job, outcome, decision):
        """Store the attempt's end. Database trouble is retried (the result is
        never dropped while the job is still ours) until it is recorded, the
        job turns out to be rescued meanwhile, or the worker is stopped hard
        or orphaned; then the lease rescue runs the job again."""
        failed = False
        pause = 0.1
        while True:
            more = self.stop_mode is None and not self.orphaned
            try:
                if outcome.kind == "interrupted" and decision.action == "retry":
                    self.store.hand_back(job, outcome)
                    self.log(f"job {job.id} interrupted by the stop ({outcome.error}); "
                             "handed back for an immediate retry (the attempt is not charged)")
                    return None
                nxt = self.store.finish(job, outcome, decision,
                                        self.cfg["lease_timeout"] if more else None,
                                        self.queues)
                self.log(self._describe(job, outcome, decision))
                return nxt
            except LeaseLost:
                if failed and self._recorded_before(job):
                    self.log(self._describe(job, outcome, decision)
                             + " (recorded before the connection dropped)")
                else:
                    self.log(f"job {job.id}: lease lost before the result was "
                             "recorded; result discarded", always=True)
                return None
            except QueueError as e:
                failed = True
                # The next claim, if any, may have committed: look for it.
                self.uncertain = more
                self._db_trouble(e)
                if self.stop_mode == "hard" or self.orphaned:
                    self.log(f"job {job.id}: could not record the result; the lease "
                             "rescue will retry the job", always=True)
                    return None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                self.housekeeping()

    def _recorded_before(self, job) -> bool:
        """Did our own earlier attempt to record `job`'s result commit?"""
        try:
            events = self.store.history(job.id, limit=50)
        except QueueError:
            return False
        return any(e.get("worker_id") == self.id and e["attempt"] == job.attempts
                   and e["event"] in ("completed", "retry_scheduled", "dead", "cancelled")
                   for e in events)

    def _db_trouble(self, e: Exception) -> None:
        if str(e) != self._db_error:
            self._db_error = str(e)
            self.log(f"database error (will retry): {e}", always=True)

    def _describe(self, job, outcome: Outcome, decision) -> str:
        took = f"{outcome.duration:.3f}s"
        if decision.action == "cancel":
            return f"job {job.id} cancelled after {took}"
        if decision.action == "complete":
            return f"job {job.id} completed in {took}"
        if decision.action == "retry":
            return f"job {job.id} failed ({outcome.error}); retry in {decision.delay:.1f}s"
        n = job.attempts
        fatal = (job.options or {}).get("fatal_exit_codes") or ()
        if outcome.kind == "exit" and outcome.exit_code in fatal and n <= job.max_retries:
            return (f"job {job.id} failed ({outcome.error}); exit code {outcome.exit_code} "
                    "is in its fatal_exit_codes: moved to the DLQ without retries")
        return (f"job {job.id} failed ({outcome.error}); moved to the DLQ after {n} "
                f"attempt{'s' if n != 1 else ''}")

    # ------------------------------------------------------------ periodic checks
    def tick(self):
        """Called by the runner while a job runs; a returned reason kills the job."""
        self.housekeeping()
        job = self.job
        if job is not None and job.state == "pending" and \
                time.monotonic() - self._started > RELEASE_AFTER:
            # Taken ahead, and not short after all: it is running, so the
            # database says so now (`processing`, its real start), before
            # the jobs waiting behind it are given back.
            try:
                if self.store.start_held(self.id, job, self.cfg["lease_timeout"]):
                    job.state = "processing"
                else:
                    self.lease_lost = True
            except QueueError as e:
                self._db_trouble(e)      # (tried again at the next tick)
        if (self.ahead or self.unrecorded) and \
                time.monotonic() - self._started > RELEASE_AFTER:
            # Not a short job after all: other workers may take the jobs
            # taken ahead, and what ran before it is recorded now.
            if self.ahead:
                self._release()
            if self.unrecorded:
                self._record_all(False, 0, retry=False)
        if self.orphaned:
            return "the worker's supervisor died"
        if self.cancelling:
            return "cancelled"
        unrenewed = time.monotonic() - self._renewed
        if not self.lease_lost and unrenewed > LEASE_MARGIN * float(self.cfg["lease_timeout"]):
            # We could not reach the database to renew the lease: by now another
            # worker may rescue the job. Stop ours rather than run it twice at once.
            self.lease_lost = True
            self.log(f"job {self.job.id}: lease not renewed for {unrenewed:.0f}s "
                     "(database unreachable); killing the command, the job will be "
                     "rescued and retried", always=True)
        if self.lease_lost:
            return "lease lost (the job was rescued by another worker)"
        if self.stop_mode == "hard":
            return "worker was stopped"
        return None

    def _until_housekeeping(self) -> float:
        """Seconds until the next heartbeat, rescue or config look is due. (A
        stop request needs no timer: it is a commit, which ends the wait.)"""
        nxt = self._next
        return max(0.001, min(nxt["beat"], nxt["rescue"], nxt["config"], nxt["schedule"])
                   - time.monotonic())

    def housekeeping(self) -> None:
        if self.parent_pid is not None and (
                os.getppid() != self.parent_pid
                or len(self.wake_fds) > 1 and select.select(self.wake_fds[1:], [], [], 0)[0]):
            # (The life pipe reads as closed a moment before we are reparented.)
            self.orphaned = True
            return
        now = time.monotonic()
        nxt = self._next
        if now < min(nxt.values()):
            return
        try:
            if now >= nxt["config"]:
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
                    nxt["beat"] = now        # renew on the new terms at once
                nxt["config"] = now + CONFIG_EVERY
            if now >= nxt["beat"]:
                job = self.job
                running = job is not None and job.state == "processing"
                reserved = [j.id for j in self.ahead] + (
                    [job.id] if job is not None and not running else [])
                held = self.store.heartbeat(self.id, job.id if running else None,
                                            self.cfg["lease_timeout"], reserved)
                self._held_renewed = now
                if not held:
                    self.lease_lost = True
                elif job is not None:
                    self._renewed = now
                nxt["beat"] = now + heartbeat_interval(self.cfg["lease_timeout"])
                if self._db_error is not None:
                    # A write went through. (Not on any success: reads work on
                    # a full or read-only disk, and the error would be logged
                    # again at every tick.)
                    self._db_error = None
                    self.log("database error cleared: writes work again", always=True)
            if now >= nxt["stop"]:
                if self.stop_mode is None and self.store.stop_requested(self.id):
                    self.stop_mode = "graceful"
                    self.log("stop requested (queuectl worker stop)", always=True)
                job = self.job
                if job is not None and not self.cancelling and \
                        self.store.cancel_requested(job.id):
                    self.cancelling = True
                    self.log(f"job {job.id}: cancel requested; killing the command",
                             always=True)
                nxt["stop"] = now + STOP_CHECK
            if now >= nxt["prune"]:
                # (Repair first: a purge must not take away what a blocked
                # dependent waits for.)
                self.store.settle_dependents()
                ttl = float(self.cfg.get("completed_ttl") or 0)
                if ttl > 0:
                    n = self.store.purge(["completed"], ttl)
                    if n:
                        self.log(f"pruned {n} completed jobs older than {ttl:g}s")
                nxt["prune"] = now + PRUNE_EVERY
            if now >= nxt["schedule"]:
                nxt["schedule"] = now + SCHEDULE_EVERY
                self.fire_schedules()
            if now >= nxt["rescue"]:
                # Dead workers of this host first: their jobs' processes are
                # killed, and their rows go, so the rescue below takes their
                # jobs back at once (and no job runs while its old run lives).
                for dead in orphans.sweep(self.rundir, self.store.deregister_worker):
                    self.log(f"worker {dead} died; its job's processes are killed",
                             always=True)
                for job in self.store.rescue_expired(self._decide_lost):
                    self.log(f"job {job.id} rescued ({job.last_error}); now {job.state}",
                             always=True)
                nxt["rescue"] = now + RESCUE_EVERY
        except QueueError as e:
            # A database hiccup must not kill the running job: report it once
            # and try again on the next tick.
            self._db_trouble(e)
            for key in nxt:
                nxt[key] = max(nxt[key], now + 1.0)

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

    def _decide_lost(self, job):
        lost = Outcome("lease_expired", error="lease expired")
        return policy.decide(lost, job.attempts, job.max_retries, self.cfg)
