"""The SQLite dialect: one database file shared by any number of processes.

WAL mode, short `BEGIN IMMEDIATE` write transactions retried while another
process holds the lock (see `_retry_busy`); no transaction is ever open while a
command runs. What is the same on PostgreSQL lives in store/core.py; this
module holds the bulk enqueue (the connection and transactions are in
sqlite_conn.py), the claim (a look without the lock, then jobs taken ahead
reserved in the same transaction), finish, the reservations (finish_all,
release, start_held), heartbeat, the rescue's detection on this process's
monotonic clock, and the idle wait on `PRAGMA data_version`. Its statements are in sql/sqlite.sql.
"""

from __future__ import annotations

import json
import select
import sqlite3
import time
from collections.abc import Callable, Sequence

from queuectl.clock import iso
from queuectl.errors import DuplicateJob, LeaseLost
from queuectl.model import Decision, Job, NewJob, Outcome, options_json
from queuectl.store.base import (
    CANCEL,
    as_cancelled,
    detail_json,
    ending,
    skip_existing_jobs,
)
from queuectl.store.core import APP, JOB_COLS, SCHEMA_VERSION, STALE_WORKER_TTL, Duplicate
from queuectl.store.queries import load_queries
from queuectl.store.sqlite_conn import SQLiteBase

TYPE_CHECKING = False          # (typing is not imported at run time: a CLI start pays for it)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SQLiteStore", "APP", "SCHEMA_VERSION", "STALE_WORKER_TTL", "JOB_COLS"]

SQL = load_queries("sqlite")     # (the same table as sqlite_conn's: loaded once)

POLL_INTERVAL = 0.025    # idle workers look for new commits this often (~0.8% of a core)
RESCUE_PATIENCE = 100    # ms: a rescuer that waited longer for the lock looks again later
# Bulk enqueue (see SQLiteStore._insert): [id, command] pairs as one JSON
# array, the other columns alike for the whole statement (->> needs SQLite 3.38).
JSON_ARROWS = sqlite3.sqlite_version_info >= (3, 38, 0)
BULK_ROWS = 64
#: A DLQ retry statement -> the one writing its events first.
DLQ_EVENTS = {"dlq_retry_job": "dlq_retry_job_event", "dlq_retry_all": "dlq_retry_all_events"}


def _runs(rows: list) -> "list[tuple[int, int]] | None":
    """[lo, hi) ranges of consecutive rows alike but for their first two
    columns; None if there are so many that one statement each would cost
    more than binding every row."""
    runs, lo = [], 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][2:] != rows[lo][2:]:
            runs.append((lo, i))
            if len(runs) > len(rows) // BULK_ROWS:
                return None
            lo = i
    return runs


def _ready(now: int, queues: "list[str] | None") -> tuple:
    """(statement name, parameters) of the claim's look for the best ready job:
    of every queue, or (a JSON array of names) of a worker's queues only."""
    if queues:
        return "ready_in_queues", (now, json.dumps(list(queues)))
    return "ready", (now,)


class SQLiteStore(SQLiteBase):
    """The SQLite store: its connection (sqlite_conn.py) and its operations."""

    # ------------------------------------------------------------ jobs: writes
    def enqueue(self, jobs: list[NewJob], skip_existing: bool = False) -> list[str]:
        existed: list[str] = []
        try:
            with self._write() as (c, now):
                if skip_existing:
                    jobs, existed = skip_existing_jobs(jobs, self._existing(
                        c, [j.id for j in jobs]))
                blocked, deps, failed = self._plan(c, jobs)
                self._insert(c, jobs, now, blocked)
                self._add_deps(c, deps, failed, now)
        except Duplicate:
            raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None
        return existed

    @staticmethod
    def _insert(c: sqlite3.Connection, jobs: list[NewJob], now: int,
                blocked: "dict | None" = None) -> None:
        """Insert new jobs and their `enqueued` events (Duplicate on an id
        that exists: the caller's transaction rolls back)."""
        rows = [(j.id, j.command, j.max_retries, j.priority,
                 j.run_at if j.run_at is not None else now + round(j.delay * 1000),
                 j.timeout, options_json(j.options), j.queue,
                 int(bool(blocked and blocked.get(j.id))))
                for j in jobs]
        try:
            runs = _runs(rows) if len(rows) >= BULK_ROWS and JSON_ARROWS else None
            if runs is not None:
                # Many rows, mostly alike (the usual bulk enqueue): each run
                # of rows that differ only in id and command is one
                # statement reading those two from a JSON array in SQLite's
                # C code, which costs a third of binding every row's
                # parameters from Python. Runs keep the input order (seq).
                last = c.execute(SQL["max_seq"]).fetchone()[0]
                for lo, hi in runs:
                    c.execute(SQL["bulk_jobs"], (now, json.dumps([r[:2] for r in rows[lo:hi]]),
                                                 *rows[lo][2:]))
                # (New rows get seqs above every existing one: the write lock is ours.)
                c.execute(SQL["bulk_events"], (now, last))
                return
            c.executemany(SQL["insert_job"], [(*r[:6], now, now, *r[6:]) for r in rows])
        except sqlite3.IntegrityError:
            raise Duplicate from None
        c.executemany(SQL["insert_event"], [(r[0], "enqueued", 0, now, None, None)
                                            for r in rows])

    def _existing(self, c: sqlite3.Connection, ids: list[str]) -> dict:
        """{id: command} of the ids that exist."""
        return dict(c.execute(SQL["existing_commands"], {"ids": self._list(ids)}).fetchall())

    def _insert_deps(self, c: Any, deps: list) -> None:
        c.executemany(SQL["add_dependency"], deps)

    def _insert_if_new(self, c: Any, job: NewJob, now: int) -> bool:
        if self._existing(c, [job.id]):
            return False
        self._insert(c, [job], now)
        return True

    def _dlq_retry(self, name: str, params: dict) -> int:
        with self._write() as (c, now):
            params["now"] = now
            c.execute(SQL[DLQ_EVENTS[name]], params)
            return c.execute(SQL[name], params).rowcount

    # ------------------------------------------------------------ claim and finish
    def _claim_in(self, c: sqlite3.Connection, worker_id: str, lease_timeout: float,
                  now: int, queues: "list[str] | None" = None,
                  ahead: bool = False) -> "Job | None":
        # Only a registered worker that has not been told to stop may claim:
        # a job held by a worker without a row would be rescued at once.
        # (A claim ahead follows one in the same transaction: already checked.)
        if not ahead:
            me = c.execute(SQL["worker_may_claim"], (worker_id,)).fetchone()
            if me is None or me[0]:
                return None
        name, params = _ready(now, queues)
        row = c.execute(SQL[name], params).fetchone()
        if row is None:
            return None
        if ahead and not (row[3] == "pending" and row[4] == 0 and row[5] > 0
                          and not c.execute(SQL["queue_limited"], (row[18],)).fetchone()):
            # Taken ahead only: a fresh job with a retry to spare (a crash
            # of its worker costs it an attempt it never ran), not of a queue
            # with a limit (it would hold a slot while it waits), and only
            # the next in line: order is kept, nothing is scanned for.
            return None
        lease = now + round(lease_timeout * 1000)
        if ahead:
            # Reserved, not claimed: still `pending` to everyone else (no
            # attempt, no event, no start) until it really starts.
            c.execute(SQL["reserve"], (worker_id, lease, row[0]))
            job = Job(*row[1:])
            job.worker_id = worker_id          # (in memory only: who holds it)
            return job
        c.execute(SQL["claim"], (worker_id, now, now, lease, row[0]))
        job = Job(*row[1:])
        job.state, job.attempts, job.worker_id = "processing", job.attempts + 1, worker_id
        job.started_at = job.updated_at = now
        job.finished_at, job.lease_expires_at = None, lease
        c.execute(SQL["insert_event"], (job.id, "processing", job.attempts, now, worker_id, None))
        return job

    def claim(self, worker_id: str, lease_timeout: float,
              queues: "list[str] | None" = None) -> "Job | None":
        # Look before locking: an empty queue costs no write lock.
        name, params = _ready(self._now(), queues)
        if not self._read(name, params):
            return None
        with self._write() as (c, now):
            return self._claim_in(c, worker_id, lease_timeout, now, queues)

    def _finish_in(self, c: sqlite3.Connection, now: int, job: Job, outcome: Outcome,
                   decision: Decision) -> bool:
        """finish() inside a transaction; False if the job is no longer ours."""
        row = c.execute(SQL["finish_flags"], (job.id,)).fetchone()
        if row is None:
            return False
        if decision.action not in ("complete", "cancel") and row[0]:
            # Cancelled while its last moments ran: it is not retried.
            decision = CANCEL
            outcome = as_cancelled(outcome)
        state, event, run_at, finished = ending(decision, job, now)
        error = None if state == "completed" else outcome.error
        cur = c.execute(SQL["finish"], (
            state, now, finished, run_at, outcome.exit_code, error,
            outcome.output or None, int(outcome.truncated), job.id, job.worker_id,
            job.attempts))
        if cur.rowcount != 1:
            return False
        self._ended(c, now, job, outcome, (state, event, run_at, error), row[1])
        return True

    def _ended(self, c: sqlite3.Connection, now: int, job: Job, outcome: Outcome,
               end: tuple, has_dependents: bool) -> None:
        """The event of an attempt just ended (`end`: state, event, run_at,
        error); its dependents settled if the job ended for good."""
        state, event, run_at, error = end
        c.execute(SQL["insert_event"], (
            job.id, event, job.attempts, now, job.worker_id,
            detail_json(exit_code=outcome.exit_code, error=error,
                        duration=round(outcome.duration, 3),
                        run_at=iso(run_at) if state == "failed" else None)))
        if has_dependents and state != "failed":
            self._settle(c, [job.id], now)

    def finish(self, job: Job, outcome: Outcome, decision: Decision,
               next_lease: "float | None" = None,
               queues: "list[str] | None" = None) -> "Job | None":
        with self._write() as (c, now):
            if not self._finish_in(c, now, job, outcome, decision):
                raise LeaseLost(f"job {job.id} is no longer held by worker {job.worker_id}")
            if next_lease is not None:
                return self._claim_in(c, job.worker_id, next_lease, now, queues)
        return None

    can_claim_ahead = True

    def finish_all(self, worker_id: str, results: list, next_lease: "float | None" = None,
                   queues: "list[str] | None" = None, ahead: int = 0) -> tuple:
        lost, claimed = [], []
        with self._write() as (c, now):
            for job, outcome, decision in results:
                done = (self._finish_held_in(c, now, job, outcome, decision)
                        if job.state == "pending" else
                        self._finish_in(c, now, job, outcome, decision))
                if not done:
                    lost.append(job)
            if next_lease is not None:
                job = self._claim_in(c, worker_id, next_lease, now, queues)
                while job is not None:
                    claimed.append(job)
                    if len(claimed) > ahead:
                        break
                    job = self._claim_in(c, worker_id, next_lease, now, queues, ahead=True)
        return claimed, lost

    def release(self, worker_id: str, jobs: list[Job]) -> None:
        # Taken ahead and never started: still pending, only the reservation
        # goes. (One cancelled meanwhile is `cancelled` already.)
        with self._write() as (c, _):
            for job in jobs:
                c.execute(SQL["unreserve"], (job.id, worker_id))

    def _finish_held_in(self, c: sqlite3.Connection, now: int, job: Job, outcome: Outcome,
                        decision: Decision) -> bool:
        """A job taken ahead whose whole attempt ran while it was reserved:
        its start (job.started_at) and its end, at once. False if the
        reservation was lost (cancelled, or taken by another worker after it
        expired)."""
        row = c.execute(SQL["finish_flags"], (job.id,)).fetchone()
        if row is None:
            return False
        state, event, run_at, finished = ending(decision, job, now)
        error = None if state == "completed" else outcome.error
        cur = c.execute(SQL["finish_held"], {
            "state": state, "worker": job.worker_id, "started": job.started_at, "now": now,
            "finished": finished, "run_at": run_at, "exit_code": outcome.exit_code,
            "error": error, "output": outcome.output or None,
            "truncated": int(outcome.truncated), "id": job.id, "attempts": job.attempts - 1})
        if cur.rowcount != 1:
            return False
        # (The events at the commit, like every event: `at` grows with seq;
        # the job's started_at is its real start.)
        c.execute(SQL["insert_event"], (job.id, "processing", job.attempts, now,
                                        job.worker_id, None))
        self._ended(c, now, job, outcome, (state, event, run_at, error), row[1])
        return True

    def start_held(self, worker_id: str, job: Job, lease_timeout: float) -> bool:
        with self._write() as (c, now):
            cur = c.execute(SQL["start_held"], {
                "worker": worker_id, "started": job.started_at, "now": now,
                "lease": now + round(lease_timeout * 1000), "id": job.id,
                "attempts": job.attempts - 1})
            if cur.rowcount != 1:
                return False
            c.execute(SQL["insert_event"], (job.id, "processing", job.attempts, now,
                                            worker_id, None))
        return True

    def _hand_back(self, params: dict) -> bool:
        with self._write() as (c, now):
            params["now"] = now
            if c.execute(SQL["hand_back"], params).rowcount != 1:
                return False
            c.execute(SQL["insert_event"], (
                params["id"], "retry_scheduled", params["attempts"], now, params["worker"],
                detail_json(error=params["error"], duration=params["duration"],
                            run_at=iso(now), interrupted=True)))
        return True

    def heartbeat(self, worker_id: str, job_id: "str | None", lease_timeout: float,
                  held: Sequence[str] = ()) -> bool:
        lease = round(lease_timeout * 1000)
        with self._write() as (c, now):
            cur = c.execute(SQL["beat_worker"], (now, now + lease, worker_id))
            if cur.rowcount == 0 and self._identity is not None:
                # Our row was swept as stale (we were frozen): register again.
                host, pid, started = self._identity
                c.execute(SQL["insert_worker"], (worker_id, host, pid, started, now, now + lease))
            if held:
                # The reservations of the jobs it has taken ahead.
                c.execute(SQL["renew_reservations"], {
                    "until": now + lease, "ids": self._list(held), "worker": worker_id})
            if job_id is None and not held:
                return True
            # Every job processing under the worker: the one running and any
            # ended whose result is not recorded yet.
            c.execute(SQL["renew_leases"], (now + lease, worker_id))
            if job_id is None:
                return True
            return c.execute(SQL["holds_job"], (job_id, worker_id)).fetchone() is not None

    # ------------------------------------------------------------ rescue
    def rescue_expired(self, decide: Callable[[Job], Decision]) -> list[Job]:
        # Judged on this process's monotonic clock (see store/watch.py), at
        # the time we *started* to look, so waiting for the write lock never
        # counts against a lease.
        seen, mono = self._now(), self.clock.monotonic_ms()
        forget = seen - STALE_WORKER_TTL
        watch = self._watch
        if not watch.due_leases(self._read("running"), mono) and not watch.stale_workers(
                self._read("stale_workers", (forget,)), mono):
            return []
        rescued = []
        with self._write() as (c, now):
            if self.clock.monotonic_ms() - mono > RESCUE_PATIENCE:
                # We queued behind a long writer; so, probably, did the
                # heartbeats of the workers we were about to judge. Let them
                # in first: look again next round.
                return []
            # Rows of dead workers are kept a while (they still say which
            # workers were asked to stop), then forgotten: an hour past their
            # expiry, and once watched lying still for a lease term.
            for worker_id, beat in watch.stale_workers(
                    c.execute(SQL["stale_workers"], (forget,)).fetchall(), mono):
                c.execute(SQL["forget_worker"], (worker_id, beat))
            for job_id, worker_id, attempts, gone in watch.due_leases(
                    c.execute(SQL["running"]).fetchall(), mono):
                row = c.execute(SQL["rescuable"], (job_id, worker_id, attempts)).fetchone()
                job = row and self._rescue_job(c, now, row, seen, decide, gone)
                if job:
                    rescued.append(job)
        return rescued

    # ------------------------------------------------------------ waiting, workers
    def wait_for_change(self, timeout: float, wake_fds: Sequence[int] = ()) -> None:
        end = time.monotonic() + timeout
        if self._data_version is None:
            self._data_version = self._read("data_version")[0][0]
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if wake_fds:
                if select.select(wake_fds, [], [], min(POLL_INTERVAL, left))[0]:
                    return
            else:
                time.sleep(min(POLL_INTERVAL, left))
            version = self._read("data_version")[0][0]
            if version != self._data_version:
                self._data_version = version
                return

    def register_worker(self, worker_id: str, host: str, pid: int,
                        lease_timeout: float) -> None:
        with self._write() as (c, now):
            self._identity = (host, pid, now)
            c.execute(SQL["insert_worker"], (worker_id, host, pid, now, now,
                                             now + round(lease_timeout * 1000)))

    def request_stop(self) -> list[str]:
        with self._write() as (c, now):
            ids = [r[0] for r in c.execute(SQL["active_worker_ids"], (now,))]
            c.execute(SQL["request_stop"], (now,))
        return ids
