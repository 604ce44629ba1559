"""The worker's claim-ahead batch (see docs/ARCHITECTURE.md, "Claiming ahead"):
jobs held (reserved) but not started, and ended attempts not yet recorded,
which are recorded together with the next claim in one transaction.

The batch belongs to one Worker and uses its store, config, clock, log and
stop state; the worker asks it which job runs next.
"""

from __future__ import annotations

from queuectl.errors import QueueError

SHORT_JOB = 0.02      # seconds: after a job this short, the next claim takes more ahead
MAX_AHEAD = 64        # claim_ahead is capped here
LEASE_MARGIN = 0.9    # a job whose lease went unrenewed this long (x lease_timeout) is dropped


class AheadBatch:
    def __init__(self, worker):
        self.w = worker
        self.ahead: list = []          # taken ahead: held, not started
        self.unrecorded: list = []     # (job, outcome, decision) not yet recorded
        self.claimed_at = 0.0    # when the jobs taken ahead were claimed (monotonic)
        self.renewed_at = 0.0    # when their reservations were last renewed (monotonic)
        self.doubt = False       # a release failed: start no job taken ahead

    def limit(self) -> int:
        """How many jobs to claim beyond the next (config claim_ahead, where
        the backend supports it)."""
        if not getattr(self.w.store, "can_claim_ahead", False):
            return 0
        return min(int(self.w.cfg.get("claim_ahead", 0)), MAX_AHEAD)

    def keep(self, result) -> None:
        """Keep an ended attempt, to record with the next claim."""
        self.unrecorded.append(result)
        # Said now, in the order the jobs ran (recorded with the next claim).
        self.w.log(self.w._describe(*result))

    def cannot_start(self, job) -> "str | None":
        """Why a job taken ahead must not start now (None: it may). Its
        reservation must still be ours for sure: renewed (or taken) less than
        LEASE_MARGIN x lease_timeout ago by our monotonic clock (a worker
        frozen longer may have lost it), and still ours in the database, its
        queue not paused. Jobs that cannot be checked are given back."""
        w = self.w
        lease = float(w.cfg["lease_timeout"])
        if w.clock.monotonic() - max(self.claimed_at, self.renewed_at) > LEASE_MARGIN * lease:
            self.give_back(job)
            return ("its reservation may have run out (the worker was frozen or the "
                    "database slow); given back")
        try:
            state = w.store.held_state(w.id, job)
        except QueueError as e:
            w._db_trouble(e)
            self.give_back(job)    # (kept, to give back later, if this fails too)
            return "the database could not confirm it is still ours; given back"
        if state == "paused":
            self.give_back(job)
            return f"queue {job.queue} was paused while it waited; given back"
        if state != "ok":
            return "cancelled, or taken by another worker, while it waited"
        return None

    def next_job(self, took: float, limit: int):
        """The next job taken ahead (its predecessors' results wait to be
        recorded with it), or record what ran and claim again, taking more
        ahead after a short job (`took` seconds). Returns (job, taken ahead)."""
        w = self.w
        more = w.stop_mode is None and not w.orphaned
        if self.ahead and more and not self.doubt and took < SHORT_JOB and \
                len(self.unrecorded) <= limit and \
                all(j.attempts <= j.max_retries for j, _, _ in self.unrecorded):
            # (An unrecorded result is lost if the worker dies: only while a
            # rescue would retry its job, never bury it.)
            return self.ahead.pop(0), True
        if self.ahead and not more:
            self.release()
        ahead = limit if took < SHORT_JOB else 0
        at = w.clock.monotonic()      # (before the claim: the reservations end later)
        claimed = self.record_all(more and not self.ahead, ahead)
        if self.ahead:
            if not more or self.doubt:
                return None, False     # a release that failed: retried by run()
            return self.ahead.pop(0), True
        if claimed:
            self.ahead, self.claimed_at = claimed[1:], at
            w._claimed_at = at
            return claimed[0], False
        return None, False

    def give_back(self, job) -> None:
        """Give back `job` (taken ahead, not started) with those behind it."""
        self.ahead.insert(0, job)
        self.release()

    def release(self) -> None:
        """Give back the jobs taken ahead (a stop, or a long job holding them)."""
        jobs, self.ahead = self.ahead, []
        try:
            self.w.store.release(self.w.id, jobs)
            self.doubt = False
        except QueueError as e:
            self.doubt = True
            # Still ours (their leases are renewed with our heartbeat): keep
            # them, to run or to give back on a later try.
            self.w._db_trouble(e)
            self.ahead = jobs + self.ahead

    def settle(self, retry: bool = True, last: bool = False) -> None:
        """Give back what waits and record what ran (a stop, a long job, the
        worker's exit), claiming nothing."""
        if self.ahead:
            self.release()
        if self.unrecorded:
            self.record_all(False, 0, retry=retry, last=last)

    def record_all(self, claim: bool, ahead: int, retry: bool = True,
                   last: bool = False) -> list:
        """Record every unrecorded attempt in one transaction, claiming the
        next jobs with it if `claim`; database trouble is retried as in
        Worker._record (without `retry`: reported, and left for the next call,
        or given up if this is the `last` call before the worker exits)."""
        w = self.w
        pause = 0.1
        while True:
            try:
                claimed, lost = w.store.finish_all(
                    w.id, self.unrecorded, w.cfg["lease_timeout"] if claim else None,
                    w.queues, ahead)
                break
            except QueueError as e:
                w._db_trouble(e)
                if (not retry and last) or w.stop_mode == "hard" or w.orphaned:
                    for job, _, _ in self.unrecorded:
                        w.log(f"job {job.id}: could not record the result; the lease "
                              "rescue will retry the job", always=True)
                    self.unrecorded = []
                    return []
                if not retry:
                    return []
                w.clock.sleep(pause)
                pause = min(pause * 2, 2.0)
                w.housekeeping()
                claim = claim and w.stop_mode is None and not w.orphaned
        for job, _outcome, _decision in self.unrecorded:
            if job in lost:
                w.log(f"job {job.id}: lease lost before the result was recorded; "
                      "result discarded", always=True)
        self.unrecorded = []
        return claimed
