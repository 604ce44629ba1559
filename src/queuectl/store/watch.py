"""What the SQLite rescue has watched, on this process's monotonic clock.

Leases are written with each worker's wall clock, which can jump (an NTP
step, a resumed VM, `date -s`): a lease that looks hours expired may be a
live worker's, one that looks hours away a dead one's. So the rescue trusts
only what it has itself seen: a job is due once its lease and its worker's
heartbeat have stayed unchanged for longer than that worker's lease term
(whose watchdog has killed the command by then), or at once when the worker's
row is gone (it exited). Pure: rows in, decisions out, no SQL.
"""

from __future__ import annotations


class LeaseWatch:
    """Since when each running job's lease, and each expired worker's
    heartbeat, has been seen unchanged (monotonic ms)."""

    def __init__(self) -> None:
        # job id -> (lease as last read, since when unchanged); worker id -> the same.
        self.leases: dict = {}
        self.workers: dict = {}

    def due_leases(self, rows: list, mono: int) -> list:
        """(job id, worker id, attempts, gone) of the running jobs (rows of
        (job id, worker id, attempts, lease, heartbeat or None, lease term)) to
        take back: those whose worker row is gone, and those whose lease has
        gone unrenewed, as watched, for longer than the worker's lease term.
        Remembers what it saw, and since when."""
        watched, due = {}, []
        for job_id, worker_id, attempts, lease, beat, term in rows:
            key = (worker_id, attempts, lease)
            old = self.leases.get(job_id)
            since = old[1] if old is not None and old[0] == key else mono
            watched[job_id] = (key, since)
            if beat is None:
                due.append((job_id, worker_id, attempts, True))
            elif mono - since > term:
                due.append((job_id, worker_id, attempts, False))
        self.leases = watched
        return due

    def stale_workers(self, rows: list, mono: int) -> list:
        """(worker id, heartbeat) of rows of (worker id, heartbeat, lease term)
        whose heartbeat has been watched unchanged for longer than their term."""
        watched, stale = {}, []
        for worker_id, beat, term in rows:
            old = self.workers.get(worker_id)
            since = old[1] if old is not None and old[0] == beat else mono
            watched[worker_id] = (beat, since)
            if mono - since > term:
                stale.append((worker_id, beat))
        self.workers = watched
        return stale
