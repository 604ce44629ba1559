"""One worker: claim -> run -> decide -> record, with heartbeats, stop requests
and rescue of expired leases checked between jobs and while a job runs.

A worker is one process holding one database connection and running at most
one job at a time. The supervisor (supervisor.py) forks N of them. Its parts:
the periodic tasks (worker_chores.py, on worker_timers.Timers) and the
claim-ahead batch (worker_batch.py). Time comes from a clock passed in
(queuectl.clock), so tests drive the loop with a FakeClock.
"""

from __future__ import annotations

import os
import socket

from queuectl import log, orphans, policy, runner
from queuectl.clock import SystemClock
from queuectl.errors import LeaseLost, QueueError
from queuectl.model import Job, Outcome
from queuectl.store.base import CANCEL, as_cancelled
from queuectl.worker_batch import LEASE_MARGIN, SHORT_JOB, AheadBatch
from queuectl.worker_chores import STOP_CHECK, Chores

TICK = 0.25           # seconds between checks while a job runs
RELEASE_AFTER = 0.2   # seconds: a job running this long gives back the jobs taken ahead
STOP_BURST = 0.5      # seconds: stop signals this close together count as one
# A command that dies of one of these (or exits 128 + one of them) while its
# worker is stopping was interrupted by the stop (a service manager signals
# every process): handed back, not counted as a failure.
STOP_SIGNALS = (1, 2, 15)     # SIGHUP, SIGINT, SIGTERM

_EXIT = object()      # _find_job: the worker should exit


class Worker(Chores):
    def __init__(self, store, worker_id: str, *, burst: bool = False,
                 parent_pid: "int | None" = None, quiet: bool = False,
                 wake_fds: tuple = (), host: "str | None" = None,
                 queues: "list[str] | None" = None, db: "str | None" = None,
                 clock=None):
        self.store = store
        self.id = worker_id
        self.clock = clock or SystemClock()
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
        self.job: Job | None = None
        self.batch = AheadBatch(self)     # jobs claimed ahead, results not yet recorded
        self.cfg = store.config()
        self.base_env = dict(os.environ)
        self.db = db      # QUEUECTL_DB for the jobs: they talk to the queue running them
        # Where this host's workers note their jobs' process groups (orphans.py).
        self.rundir = orphans.runtime_dir(self.host, db) if db is not None else None
        self.record: orphans.Record | None = None
        self.timers = self._timers()
        # schedule name -> why this worker could not fire it
        self.cron_errors: dict[str, str] = {}
        self._db_error: str | None = None
        self._renewed = self.clock.monotonic()   # when the running job's lease was last renewed
        self._claimed_at = float("-inf")   # monotonic, from before the running job's claim
        self._started = 0.0       # when the running job started (monotonic)
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
        now = self.clock.monotonic()
        if self.stop_mode is None:
            self.stop_mode = "graceful"
            self._stop_signal_at = now
            if self.job is not None:
                self.log(f"stopping after job {self.job.id} finishes", always=True)
        elif self._stop_signal_at is None or now - self._stop_signal_at >= STOP_BURST:
            self.stop_mode = "hard"

    # ------------------------------------------------------------ main loop
    def run(self) -> int:
        self._register()
        try:
            job, waited = None, False
            while True:
                self.housekeeping()
                try:
                    job = self._find_job(job)
                except QueueError as e:
                    # The claim may have been committed with its reply lost.
                    self.uncertain = True
                    self._db_trouble(e)
                    self.clock.sleep(1.0)
                    continue
                if job is _EXIT:
                    break
                if job is not None:
                    job, waited = self.execute(job, waited)
        finally:
            if self.batch.unrecorded:
                self.batch.record_all(False, 0, retry=False, last=True)
            if self.batch.ahead:
                self.batch.release()
            # Deregistering while still holding a job (an orphan, whose command
            # has been killed) lets the other workers rescue it at once.
            self.store.deregister_worker(self.id)
            if self.record is not None:
                self.record.close()
            self.log("stopped")
        return 1 if self.failed else 0

    def _register(self) -> None:
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

    def _find_job(self, job):
        """The job to run next: `job` (the one the last run handed on), ours
        after a store error, or a new claim; None after waiting for one;
        _EXIT when the worker should stop."""
        # A job claimed together with the last result (or whose
        # claim reply was lost) is ours: a graceful stop still
        # runs it. An orphan leaves it behind.
        if job is None and self.uncertain and not self.orphaned:
            job = self.adopt()
        if self.orphaned or (self.stop_mode and job is None):
            return _EXIT
        if job is not None:
            return job
        if self.batch.ahead:
            # Jobs taken ahead that a failed release kept: give
            # them back before claiming more.
            self.batch.release()
            if self.batch.ahead:
                self.clock.sleep(1.0)
                return None
        self._claimed_at = self.clock.monotonic()    # (before: the lease starts later)
        job = self.store.claim(self.id, self.cfg["lease_timeout"], self.queues)
        if job is None:
            if self.burst and not self.store.has_unfinished(self.queues):
                self.log("no jobs left (burst): exiting")
                return _EXIT
            self._idle()
        return job

    def _idle(self) -> None:
        """Wait for a change, a due job, a timer or a wake-up."""
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
        self.timers.set("stop", 0.0)

    def adopt(self):
        """After a store error, find out whether we hold a job whose claim
        committed but whose reply was lost; run it rather than let it expire."""
        held = self.store.held_by(self.id)
        self.uncertain = False
        self._claimed_at = float("-inf")     # claimed when? Renew before starting it.
        if held:
            self.log(f"job {held[0].id}: claimed before the database connection "
                     "dropped; running it now", always=True)
            return held[0]
        return None

    # ------------------------------------------------------------ one job
    def execute(self, job, waited: bool = False):
        """Run one claimed job (`waited`: one taken ahead); record the result
        (or, while jobs taken ahead wait, keep it for one transaction with
        theirs). Returns the next job to run, if any, and whether it was
        taken ahead."""
        batch = self.batch
        if job.state == "pending":        # taken ahead (reserved, not claimed)
            why = batch.cannot_start(job)
            if why:
                self.log(f"job {job.id}: {why}; not starting it", always=True)
                return batch.next_job(0.0, batch.limit())
            # Taken ahead: its attempt starts now (recorded with its end, or
            # when it turns out long; see tick()).
            job.attempts += 1
            job.started_at = self.store.now_ms()
        elif not self._lease_fresh(job):
            return None, False
        outcome = self._run(job)
        if self.orphaned:
            self.log(f"job {job.id}: supervisor died; command killed, job left "
                     "for rescue", always=True)
            return None, False
        result = self._judge(job, outcome)
        self.job = None
        if result is not None and result[1].kind == "interrupted" and not self.cancelling:
            self._hand_back(*result)
            return None, False
        limit = batch.limit()
        if not (limit or batch.ahead or batch.unrecorded):
            return (self._record(*result) if result else None), False
        if result:
            batch.keep(result)
        return batch.next_job(outcome.duration if result else SHORT_JOB, limit)

    def _lease_fresh(self, job) -> bool:
        """A claimed job starts only while its lease is surely ours: granted
        less than LEASE_MARGIN x lease_timeout ago by our monotonic clock
        (measured from before the claim). A worker frozen longer between the
        claim and the start (SIGSTOP, a VM pause, a slow database) renews the
        lease first, and does not start a job a rescue took meanwhile."""
        lease = float(self.cfg["lease_timeout"])
        if self.clock.monotonic() - self._claimed_at <= LEASE_MARGIN * lease:
            return True
        at = self.clock.monotonic()
        try:
            held = self.store.heartbeat(self.id, job.id, lease)
        except QueueError as e:
            # Unsure: still ours, and renewed by every heartbeat, so never left
            # for the rescue. Look again (adopt) before starting it.
            self._db_trouble(e)
            self.uncertain = True
            return False
        if held:
            self._claimed_at = at
            return True
        self.log(f"job {job.id}: taken back by a rescue while this worker was frozen "
                 "before starting it; not starting it", always=True)
        return False

    def _run(self, job) -> Outcome:
        """Run the job's command (ticks on), or not at all after a hard stop."""
        self.job, self.lease_lost, self.cancelling = job, False, False
        self._renewed = self._started = self.clock.monotonic()
        self.timers.by("stop", self.clock.monotonic() + STOP_CHECK)
        opts = job.options or {}
        env = self.base_env.copy()
        env.update(opts.get("env") or {})
        if self.db is not None:
            env["QUEUECTL_DB"] = self.db
        env["QUEUECTL_JOB_ID"] = job.id
        env["QUEUECTL_ATTEMPT"] = str(job.attempts)
        self.log(f"job {job.id} started (attempt {job.attempts}/{job.max_retries + 1})")
        if self.stop_mode == "hard":
            return Outcome("interrupted", error="interrupted: worker was stopped")
        return runner.run(job.command, env, timeout=job.timeout,
                          tick=self.tick, tick_interval=TICK, cwd=opts.get("cwd"),
                          record=self.record)

    def _judge(self, job, outcome: Outcome):
        """(job, outcome, decision) to record, or None: the result is not ours."""
        if self.stop_mode is not None and self._stopped_by_signal(outcome):
            outcome = Outcome("interrupted", outcome.exit_code,
                              f"interrupted: the worker was stopping ({outcome.error})",
                              outcome.output, outcome.truncated, outcome.duration)
        if self.lease_lost:
            self.log(f"job {job.id}: lease lost (rescued by another worker); "
                     "this attempt's result is discarded", always=True)
            return None
        if self.cancelling:
            return (job, as_cancelled(outcome), CANCEL)
        return (job, outcome, policy.decide(outcome, job.attempts, job.max_retries,
                                            self.cfg,
                                            fatal=(job.options or {}).get("fatal_exit_codes")
                                            or ()))

    def _hand_back(self, job, outcome, decision) -> None:
        """Stopping: record what ran before it, give back what waits, and
        hand this one back (the attempt is not charged)."""
        self.batch.settle()
        if job.state == "pending":
            # Taken ahead and not yet marked running: its reservation
            # ends, and it is pending as if it had never started.
            job.attempts -= 1
            self.batch.give_back(job)
            self.log(f"job {job.id} interrupted by the stop; given back")
        else:
            self._record(job, outcome, decision)

    @staticmethod
    def _stopped_by_signal(outcome) -> bool:
        if outcome.kind == "signal":
            return any(f"signal {n} " in (outcome.error or "") for n in STOP_SIGNALS)
        return outcome.kind == "exit" and outcome.exit_code in [128 + n for n in STOP_SIGNALS]

    # ------------------------------------------------------------ recording
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
                self._claimed_at = self.clock.monotonic()   # (the next job's claim)
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
                self.clock.sleep(pause)
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

    # ------------------------------------------------------------ while a job runs
    def tick(self):
        """Called by the runner while a job runs; a returned reason kills the job."""
        self.housekeeping()
        job = self.job
        if job is not None and job.state == "pending" and \
                self.clock.monotonic() - self._started > RELEASE_AFTER:
            self._mark_started(job)
        if (self.batch.ahead or self.batch.unrecorded) and \
                self.clock.monotonic() - self._started > RELEASE_AFTER:
            # Not a short job after all: other workers may take the jobs
            # taken ahead, and what ran before it is recorded now.
            self.batch.settle(retry=False)
        return self._kill_reason()

    def _mark_started(self, job) -> None:
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

    def _kill_reason(self) -> "str | None":
        if self.orphaned:
            return "the worker's supervisor died"
        if self.cancelling:
            return "cancelled"
        unrenewed = self.clock.monotonic() - self._renewed
        if not self.lease_lost and unrenewed > LEASE_MARGIN * float(self.cfg["lease_timeout"]):
            # We could not reach the database to renew the lease: by now another
            # worker may rescue the job. Stop ours rather than run it twice at once.
            self.lease_lost = True
            # (tick() is called only by the runner, while _run's job runs.)
            assert self.job is not None
            self.log(f"job {self.job.id}: lease not renewed for {unrenewed:.0f}s "
                     "(database unreachable); killing the command, the job will be "
                     "rescued and retried", always=True)
        if self.lease_lost:
            return "lease lost (the job was rescued by another worker)"
        if self.stop_mode == "hard":
            return "worker was stopped"
        return None

    def _decide_lost(self, job):
        lost = Outcome("lease_expired", error="lease expired")
        return policy.decide(lost, job.attempts, job.max_retries, self.cfg)
