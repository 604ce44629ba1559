"""The SQLite backend: one database file shared by any number of processes.

WAL mode, short `BEGIN IMMEDIATE` write transactions retried while another
process holds the lock (see `_retry_busy`); no
transaction is ever open while a command runs. All SQLite SQL lives in this
module and in migrations/sqlite/.
"""

from __future__ import annotations

import json
import os
import select
import sqlite3
import time
from contextlib import contextmanager

from queuectl import config as cfgmod
from queuectl.clock import SystemClock, iso
from queuectl.errors import Conflict, DuplicateJob, LeaseLost, NotFound, QueueError, StoreError
from queuectl.model import STATES, TERMINAL, Job, NewJob, options_json
from queuectl.store.base import (CANCEL, CANCELLED_ERROR, ENDING_EVENTS, IMPORTED, Store,
                                 as_cancelled, first_seq_at, like_pattern,
                                 dependency_error, dependency_plan, detail_json, ending,
                                 event_dict, migrations, queue_rows, rescue_error,
                                 schedule_dict, skip_existing_jobs)
from queuectl.cron import firing_id

APP = "queuectl"
SCHEMA_VERSION = 6
BUSY_TIMEOUT = 30.0      # seconds a writer waits for the lock before failing
POLL_INTERVAL = 0.025    # idle workers look for new commits this often (~0.8% of a core)
RESCUE_PATIENCE = 100    # ms: a rescuer that waited longer for the lock looks again later
STALE_WORKER_TTL = 3_600_000   # ms a dead worker's row is kept after it expired

JOB_COLS = ("id, command, state, attempts, max_retries, priority, run_at, timeout, "
            "created_at, updated_at, started_at, finished_at, exit_code, last_error, "
            "worker_id, lease_expires_at, options, queue, blocked")

SQL_INSERT_JOB = (
    "INSERT INTO jobs (id, command, max_retries, priority, run_at, timeout, "
    "created_at, updated_at, options, queue, blocked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
SQL_IMPORT_JOB = (
    "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, timeout, "
    "created_at, updated_at, started_at, finished_at, exit_code, last_error, output, "
    "output_truncated, options, queue, blocked) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
SQL_INSERT_EVENT = (
    "INSERT INTO events (job_id, event, attempt, at, worker_id, detail) "
    "VALUES (?, ?, ?, ?, ?, ?)")
# Bulk enqueue (see SQLiteStore._insert): [id, command] pairs as one JSON
# array, the other columns alike for the whole statement (->> needs SQLite 3.38).
JSON_ARROWS = sqlite3.sqlite_version_info >= (3, 38, 0)
BULK_ROWS = 64
SQL_BULK_JOBS = (
    "INSERT INTO jobs (id, command, max_retries, priority, run_at, timeout, "
    "created_at, updated_at, options, queue, blocked) "
    "SELECT value->>0, value->>1, ?3, ?4, ?5, ?6, ?1, ?1, ?7, ?8, ?9 FROM json_each(?2)")
SQL_BULK_EVENTS = (
    "INSERT INTO events (job_id, event, attempt, at) "
    "SELECT id, 'enqueued', 0, ?1 FROM jobs WHERE seq > ?2 ORDER BY seq")
# Queues a claim must skip: paused, or running as many jobs as their limit.
SQL_BLOCKED = (
    "SELECT name FROM queues WHERE paused = 1 OR (max_running > 0 AND max_running <= "
    "(SELECT count(*) FROM jobs r WHERE r.state = 'processing' AND r.queue = queues.name))")
SQL_READY = (
    f"SELECT seq, {JOB_COLS} FROM jobs INDEXED BY jobs_ready "
    "WHERE state IN ('pending', 'failed') AND blocked = 0 "
    f"AND run_at <= ? AND queue NOT IN ({SQL_BLOCKED}) {{only}} "
    f"AND {{free}} ORDER BY priority DESC, run_at, seq LIMIT 1")
# A pending job taken ahead is reserved (schema version 6): reserved_by names
# the worker holding it, reserved_until is the reservation's end, renewed by
# that worker's heartbeat. It stays `pending`; others skip it while the
# reservation lasts and its worker's row exists. (Only reserved rows, few,
# ever evaluate the subquery.)
SQL_FREE = ("(reserved_until IS NULL OR reserved_until < {now} OR NOT EXISTS "
            "(SELECT 1 FROM workers w WHERE w.id = jobs.reserved_by))")
SQL_RESERVE = (
    "UPDATE jobs SET reserved_by = ?, reserved_until = ? "
    "WHERE seq = ? AND state = 'pending' AND attempts = 0")
SQL_UNRESERVE = (
    "UPDATE jobs SET reserved_by = NULL, reserved_until = NULL "
    "WHERE id = ? AND state = 'pending' AND reserved_by = ?")
SQL_HELD = "state = 'pending' AND reserved_by = ? AND attempts = ?"
# A job taken ahead starts running for long (Store.start_held) ...
SQL_START_HELD = (
    "UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker_id = ?, "
    "started_at = ?, updated_at = ?, lease_expires_at = ?, finished_at = NULL, "
    "cancel_requested = 0, output = NULL, output_truncated = 0, reserved_by = NULL, "
    f"reserved_until = NULL WHERE id = ? AND {SQL_HELD}")
# ... or its whole attempt, start to end, is recorded at once (finish_all).
SQL_FINISH_HELD = (
    "UPDATE jobs SET state = ?, attempts = attempts + 1, worker_id = ?, started_at = ?, "
    "updated_at = ?, finished_at = ?, run_at = ?, exit_code = ?, last_error = ?, "
    "lease_expires_at = NULL, cancel_requested = 0, output = ?, output_truncated = ?, "
    f"reserved_by = NULL, reserved_until = NULL WHERE id = ? AND {SQL_HELD}")


def _only(queues: "list[str] | None") -> tuple:
    """(SQL condition, parameters) limiting a query to a worker's queues."""
    if not queues:
        return "", ()
    return f"AND queue IN ({','.join('?' * len(queues))})", tuple(queues)


def _ready(queues: "list[str] | None") -> tuple:
    """(SQL, extra parameters) of the claim's look for the best ready job."""
    only, extra = _only(queues)
    return SQL_READY.format(only=only, free=SQL_FREE.format(now="?1")), extra



SQL_CLAIM = (
    "UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker_id = ?, "
    "started_at = ?, updated_at = ?, lease_expires_at = ?, finished_at = NULL, "
    "cancel_requested = 0, reserved_by = NULL, reserved_until = NULL, "
    "output = NULL, output_truncated = 0 WHERE seq = ? AND state IN ('pending', 'failed')")
SQL_FINISH = (
    "UPDATE jobs SET state = ?, updated_at = ?, finished_at = ?, run_at = ?, "
    "exit_code = ?, last_error = ?, lease_expires_at = NULL, cancel_requested = 0, output = ?, "
    "output_truncated = ? WHERE id = ? AND state = 'processing' AND worker_id = ? "
    "AND attempts = ?")
# An interrupted attempt handed back (Store.hand_back): it is not charged
# (max_retries + 1), so it uses up no retry.
SQL_HAND_BACK = (
    "UPDATE jobs SET state = 'failed', max_retries = CASE WHEN max_retries < 2147483647 "
    "THEN max_retries + 1 ELSE max_retries END, updated_at = ?, run_at = ?, "
    "finished_at = NULL, exit_code = ?, last_error = ?, lease_expires_at = NULL, output = ?, "
    "output_truncated = ? WHERE id = ? AND state = 'processing' AND worker_id = ? "
    "AND attempts = ? AND cancel_requested = 0")
# Running jobs with what the rescue watches: the lease, the heartbeat of the
# holder (NULL: its worker row is gone), and the holder's lease term.
SQL_RUNNING = (
    "SELECT j.id, j.worker_id, j.attempts, j.lease_expires_at, w.heartbeat_at, "
    "w.expires_at - w.heartbeat_at FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id "
    "WHERE j.state = 'processing'")
SQL_RESCUABLE = (
    f"SELECT {JOB_COLS}, has_dependents, cancel_requested FROM jobs WHERE id = ? "
    "AND state = 'processing' AND worker_id = ? AND attempts = ?")
SQL_STALE_WORKERS = (
    "SELECT id, heartbeat_at, expires_at - heartbeat_at FROM workers WHERE expires_at < ?")
SQL_INSERT_WORKER = (
    "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?)")
SQL_RESCUE = (
    "UPDATE jobs SET state = ?, updated_at = ?, finished_at = ?, run_at = ?, "
    "exit_code = NULL, last_error = ?, lease_expires_at = NULL "
    "WHERE id = ? AND state = 'processing' AND worker_id = ? AND attempts = ?")

# Dependents of jobs that just ended (see migrations/sqlite/0004): those whose
# dependencies have all completed are unblocked; those of a dead or cancelled
# dependency are cancelled.
SQL_UNBLOCK = (
    "UPDATE jobs SET blocked = 0 WHERE blocked = 1 AND state IN ('pending', 'failed') "
    "AND id IN (SELECT job_id FROM job_deps WHERE dep_id IN ({marks})) "
    "AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.dep_id "
    "WHERE d.job_id = jobs.id AND p.state <> 'completed')")
SQL_DOOMED = (
    "SELECT d.job_id, d.dep_id, p.state, j.attempts FROM job_deps d "
    "JOIN jobs p ON p.id = d.dep_id JOIN jobs j ON j.id = d.job_id "
    "WHERE d.dep_id IN ({marks}) AND p.state IN ('dead', 'cancelled') "
    "AND j.state IN ('pending', 'failed') ORDER BY j.seq")
SQL_CANCEL = (
    "UPDATE jobs SET state = 'cancelled', blocked = 0, updated_at = ?, finished_at = ?, "
    "last_error = ? WHERE id = ? AND state IN ('pending', 'failed')")


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


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _import_row(j: Job, now: int, blocked: bool) -> tuple:
    return (j.id, j.command, j.state, j.attempts, j.max_retries, j.priority,
            now if j.run_at is None else j.run_at, j.timeout,
            now if j.created_at is None else j.created_at,
            now if j.updated_at is None else j.updated_at, j.started_at,
            now if j.finished_at is None and j.state in TERMINAL else j.finished_at,
            j.exit_code, j.last_error, j.output, int(bool(j.output_truncated)),
            options_json(j.options), j.queue, int(blocked))


class _Duplicate(Exception):
    """An enqueue hit an existing id (raised inside the transaction)."""


class SQLiteStore(Store):
    def __init__(self, path: str, *, clock=None, worker: bool = False, create: bool = True):
        self.path = path
        self.create = create
        self.clock = clock or SystemClock()
        self._identity: "tuple | None" = None       # (host, pid, started) once registered
        # What the rescue has watched, on its own monotonic clock: job id ->
        # (lease as last read, since when unchanged); worker id -> the same.
        self._leases_seen: dict = {}
        self._workers_seen: dict = {}
        self._data_version = None
        self.conn = self._connect()
        try:
            self._prepare(worker)
        except BaseException:
            self.conn.close()
            raise

    # ------------------------------------------------------------ opening
    def _connect(self) -> sqlite3.Connection:
        path = self.path
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise StoreError(f"cannot open database {path}: directory {parent} does not exist")
            if os.path.isdir(path):
                raise StoreError(f"cannot open database {path}: it is a directory")
            if not os.path.exists(path) and not self.create:
                path = ":memory:"          # reads as an empty queue; no file is made
            elif not os.path.exists(path):
                try:
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                except FileExistsError:
                    pass
                except OSError as e:
                    raise StoreError(f"cannot create database {path}: {e.strerror}") from None
            elif not os.access(path, os.R_OK):
                raise StoreError(f"cannot open database {path}: permission denied")
        try:
            conn = sqlite3.connect(path, timeout=0, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open database {path}: {e}") from None
        try:
            st = os.stat(path)
            self._file_id = (st.st_dev, st.st_ino)    # see file_trouble
        except OSError:
            self._file_id = None
        return conn

    def file_trouble(self) -> "str | None":
        # An open connection keeps working on a deleted (or renamed-over)
        # file: its writes would go where no other process can see them, while
        # new processes make a new empty database at the path.
        if getattr(self, "_file_id", None) is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"database {self.path} was deleted while in use"
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != self._file_id:
            return f"database {self.path} was replaced by another file while in use"
        return None

    def _prepare(self, worker: bool) -> None:
        c = self.conn
        try:
            version = self._retry_busy(self._schema_version)   # refuses foreign files
            c.execute("PRAGMA synchronous = NORMAL" if worker else "PRAGMA synchronous = FULL")
            c.execute("PRAGMA foreign_keys = ON")
            if version != SCHEMA_VERSION:
                self._migrate()
        except sqlite3.Error as e:
            raise self._translate(e) from None

    def _schema_version(self) -> int:
        """0 for an empty database; raises StoreError for a foreign file."""
        try:
            rows = dict(self.conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('app', 'schema_version')"))
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if "no such table" in msg:
                tables = {r[0] for r in self.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "meta" in tables:
                    # Another process created the schema between our two reads:
                    # read it again (once; a second miss is a real error).
                    rows = dict(self.conn.execute(
                        "SELECT key, value FROM meta WHERE key IN ('app', 'schema_version')"))
                    return self._check_meta(rows)
                if tables:
                    raise StoreError(f"{self.path} is an SQLite database but not a queuectl "
                                     "database; refusing to touch it") from None
                return 0
            if "not a database" in msg or "encrypted" in msg:
                raise StoreError(f"{self.path} is not a queuectl database "
                                 "(not an SQLite file); refusing to touch it") from None
            raise
        return self._check_meta(rows)

    def _check_meta(self, rows: dict) -> int:
        if rows.get("app") != APP:
            raise StoreError(f"{self.path} is an SQLite database but not a queuectl "
                             "database; refusing to touch it")
        version = int(rows.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}, newer than this "
                             f"queuectl understands ({SCHEMA_VERSION}); upgrade queuectl")
        return version

    def migrate(self) -> int:
        try:
            if self._retry_busy(self._schema_version) != SCHEMA_VERSION:
                self._migrate()
        except sqlite3.Error as e:
            raise self._translate(e) from None
        return SCHEMA_VERSION

    def _migrate(self) -> None:
        c = self.conn
        if self._read("PRAGMA journal_mode")[0][0].lower() != "wal":
            self._retry_busy(c.execute, "PRAGMA journal_mode = WAL")
        # Table rebuilds (new CHECKs) drop and rename tables that foreign keys
        # point at: the keys are off for the migration (a no-op inside a
        # transaction, hence here) and checked before the commit.
        c.execute("PRAGMA foreign_keys = OFF")
        try:
            self._retry_busy(c.execute, "BEGIN IMMEDIATE")
        except BaseException:
            c.execute("PRAGMA foreign_keys = ON")
            raise
        try:
            version = self._schema_version()        # again, now under the write lock
            for number, script in migrations("sqlite"):
                if number > version:
                    for stmt in _statements(script):
                        c.execute(stmt)
            if c.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise StoreError(f"database {self.path}: migration broke a foreign key; "
                                 "nothing was changed")
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('app', ?), "
                      "('schema_version', ?)", (APP, str(SCHEMA_VERSION)))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        finally:
            c.execute("PRAGMA foreign_keys = ON")

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------ plumbing
    def _translate(self, e: sqlite3.Error) -> StoreError:
        msg = str(e)
        low = msg.lower()
        if "locked" in low or "busy" in low:
            return StoreError(
                f"database {self.path} is locked: another process has held a write "
                f"transaction for over {BUSY_TIMEOUT:g}s; is one stuck?")
        if "readonly" in low or "read-only" in low:
            if self._cannot_write() == "read-only file system":
                return StoreError(f"database {self.path} is read-only: its file system "
                                  "is mounted read-only")
            return StoreError(f"database {self.path} is read-only; check the permissions "
                              "of the file and its directory")
        if "full" in low:
            return StoreError(f"database {self.path}: the disk is full")
        if "disk i/o error" in low:
            why = self._cannot_write()
            if why:
                return StoreError(f"database {self.path}: disk I/O error ({why})")
        if "unable to open" in low:
            return StoreError(f"cannot open database {self.path}: {msg}")
        return StoreError(f"database {self.path}: {msg}")

    def _cannot_write(self) -> "str | None":
        """Why the file cannot be opened for writing ("read-only file system",
        ...), else None. SQLite's errors do not say (a read-only file system,
        the kernel's answer to a failing disk, is a "disk I/O error"); a
        write-open of the file changes nothing."""
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CLOEXEC))
        except OSError as e:
            return (e.strerror or str(e)).lower()
        return None

    @contextmanager
    def _write(self):
        """A short write transaction that takes the lock up front (BEGIN IMMEDIATE)."""
        c = self.conn
        self._retry_busy(c.execute, "BEGIN IMMEDIATE")
        try:
            # The time is read once the lock is ours, so waiting for it never
            # shortens a lease or back-dates a change.
            yield c, self._now()
            c.execute("COMMIT")
        except BaseException as e:
            if c.in_transaction:
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(e, sqlite3.Error):
                raise self._translate(e) from None
            raise

    def _read(self, sql: str, params=()) -> list:
        return self._retry_busy(lambda: self.conn.execute(sql, params).fetchall())

    def _retry_busy(self, fn, *args):
        """Call fn, retrying while the database is locked by another writer.

        SQLite's own busy handler sleeps at least a millisecond per retry; at
        thousands of jobs a second that is most of a job's budget, so the
        connection has no busy timeout and the wait happens here instead, in
        short exponentially growing naps, for up to BUSY_TIMEOUT seconds.
        """
        nap, deadline = 0.00005, None
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise self._translate(e) from None
                now = time.monotonic()
                if deadline is None:
                    deadline = now + BUSY_TIMEOUT
                elif now > deadline:
                    raise self._translate(e) from None
                time.sleep(nap)
                nap = min(nap * 2, 0.005)
            except sqlite3.Error as e:
                raise self._translate(e) from None

    def _now(self) -> int:
        return self.clock.now_ms()

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
        except _Duplicate:
            raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None
        return existed

    @staticmethod
    def _insert(c, jobs: list[NewJob], now: int, blocked: "dict | None" = None) -> None:
        """Insert new jobs and their `enqueued` events (_Duplicate on an id
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
                last = c.execute("SELECT max(seq) FROM jobs").fetchone()[0] or 0
                for lo, hi in runs:
                    c.execute(SQL_BULK_JOBS, (now, json.dumps([r[:2] for r in rows[lo:hi]]),
                                              *rows[lo][2:]))
                # (New rows get seqs above every existing one: the write lock is ours.)
                c.execute(SQL_BULK_EVENTS, (now, last))
                return
            c.executemany(SQL_INSERT_JOB, [(*r[:6], now, now, *r[6:]) for r in rows])
        except sqlite3.IntegrityError:
            raise _Duplicate from None
        c.executemany(SQL_INSERT_EVENT, [(r[0], "enqueued", 0, now, None, None) for r in rows])

    def _plan(self, c, jobs: list) -> tuple:
        """dependency_plan() of jobs about to be inserted (nothing to do if
        none has `after`)."""
        if not any(j.after for j in jobs):
            return {}, [], []
        batch = {j.id for j in jobs}
        outside = sorted({d for j in jobs for d in j.after or () if d not in batch})
        found = {}
        for i in range(0, len(outside), 500):
            chunk = outside[i:i + 500]
            found.update(c.execute(f"SELECT id, state FROM jobs WHERE id IN ({_marks(len(chunk))})",
                                   chunk).fetchall())
        return dependency_plan(jobs, found)

    def _add_deps(self, c, deps: list, failed: list, now: int) -> None:
        """Record (job, dependency) pairs of jobs just inserted; cancel those
        whose dependency ended dead or cancelled already."""
        if not deps:
            return
        c.executemany("INSERT INTO job_deps (job_id, dep_id) VALUES (?, ?)", deps)
        c.executemany("UPDATE jobs SET has_dependents = 1 WHERE id = ? AND has_dependents = 0",
                      [(d,) for d in sorted({d for _, d in deps})])
        if failed:
            self._settle(c, failed, now)

    def _settle(self, c, ended: list, now: int) -> None:
        """Jobs `ended` have just reached a terminal state: unblock their
        dependents whose dependencies have all completed, and cancel (with
        their own dependents, recursively) those that waited for a job that
        ended dead or cancelled."""
        frontier = list(ended)
        while frontier:
            doomed: dict = {}
            for i in range(0, len(frontier), 500):
                chunk = frontier[i:i + 500]
                marks = _marks(len(chunk))
                c.execute(SQL_UNBLOCK.format(marks=marks), chunk)
                for job_id, dep, state, attempts in c.execute(
                        SQL_DOOMED.format(marks=marks), chunk).fetchall():
                    doomed.setdefault(job_id, (dep, state, attempts))
            for job_id, (dep, state, attempts) in doomed.items():
                error = dependency_error(dep, state)
                c.execute(SQL_CANCEL, (now, now, error, job_id))
                c.execute(SQL_INSERT_EVENT, (job_id, "cancelled", attempts, now, None,
                                             detail_json(error=error)))
            frontier = list(doomed)

    @staticmethod
    def _existing(c, ids: list[str]) -> dict:
        """{id: command} of the ids that exist."""
        found = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            found.update(c.execute(
                f"SELECT id, command FROM jobs WHERE id IN ({','.join('?' * len(chunk))})",
                chunk).fetchall())
        return found

    def import_jobs(self, jobs: list[Job]) -> None:
        try:
            with self._write() as (c, now):
                blocked, deps, failed = self._plan(c, jobs)
                try:
                    c.executemany(SQL_IMPORT_JOB, [_import_row(j, now, blocked.get(j.id, False))
                                                   for j in jobs])
                except sqlite3.IntegrityError as e:
                    if "UNIQUE" not in str(e):
                        raise
                    raise _Duplicate from None
                c.executemany(SQL_INSERT_EVENT, [(j.id, "enqueued", j.attempts, now, None,
                                                  IMPORTED) for j in jobs])
                self._add_deps(c, deps, failed, now)
        except _Duplicate:
            raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None

    def export_jobs(self, batch: int = 1000):
        last = 0
        while True:
            rows = self._read(f"SELECT seq, {JOB_COLS}, output, output_truncated FROM jobs "
                              "WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch))
            jobs = [Job(*row[1:]) for row in rows]
            after = self._after_of([j.id for j in jobs])
            for job in jobs:
                job.output_truncated = bool(job.output_truncated)
                job.after = after.get(job.id)
                yield job
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def _after_of(self, ids: list[str]) -> dict:
        """{job id: [ids it runs after]} for those of `ids` that have any."""
        out: dict = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for job_id, dep in self._read(
                    f"SELECT job_id, dep_id FROM job_deps WHERE job_id IN ({_marks(len(chunk))}) "
                    "ORDER BY job_id, dep_id", chunk):
                out.setdefault(job_id, []).append(dep)
        return out

    def _first_duplicate(self, ids: list[str]) -> str:
        """The first id that exists already, else the first repeated in `ids`."""
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            found = {r[0] for r in self._read(
                f"SELECT id FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk)}
            for job_id in chunk:
                if job_id in found:
                    return job_id
        seen = set()
        for job_id in ids:
            if job_id in seen:
                return job_id
            seen.add(job_id)
        return ids[0]

    def _claim_in(self, c, worker_id: str, lease_timeout: float, now: int,
                  queues=None, ahead: bool = False) -> "Job | None":
        # Only a registered worker that has not been told to stop may claim:
        # a job held by a worker without a row would be rescued at once.
        # (A claim ahead follows one in the same transaction: already checked.)
        if not ahead:
            me = c.execute("SELECT stop_requested FROM workers WHERE id = ?",
                           (worker_id,)).fetchone()
            if me is None or me[0]:
                return None
        sql, extra = _ready(queues)
        row = c.execute(sql, (now, *extra)).fetchone()
        if row is None:
            return None
        if ahead and not (row[3] == "pending" and row[4] == 0 and row[5] > 0
                          and not c.execute("SELECT 1 FROM queues WHERE name = ? AND "
                                            "max_running > 0", (row[18],)).fetchone()):
            # Taken ahead only: a fresh job with a retry to spare (a crash
            # of its worker costs it an attempt it never ran), not of a queue
            # with a limit (it would hold a slot while it waits), and only
            # the next in line: order is kept, nothing is scanned for.
            return None
        lease = now + round(lease_timeout * 1000)
        if ahead:
            # Reserved, not claimed: still `pending` to everyone else (no
            # attempt, no event, no start) until it really starts.
            c.execute(SQL_RESERVE, (worker_id, lease, row[0]))
            job = Job(*row[1:])
            job.worker_id = worker_id          # (in memory only: who holds it)
            return job
        c.execute(SQL_CLAIM, (worker_id, now, now, lease, row[0]))
        job = Job(*row[1:])
        job.state, job.attempts, job.worker_id = "processing", job.attempts + 1, worker_id
        job.started_at = job.updated_at = now
        job.finished_at, job.lease_expires_at = None, lease
        c.execute(SQL_INSERT_EVENT, (job.id, "processing", job.attempts, now, worker_id, None))
        return job

    def claim(self, worker_id: str, lease_timeout: float,
              queues: "list[str] | None" = None) -> "Job | None":
        # Look before locking: an empty queue costs no write lock.
        sql, extra = _ready(queues)
        if not self._read(sql, (self._now(), *extra)):
            return None
        with self._write() as (c, now):
            return self._claim_in(c, worker_id, lease_timeout, now, queues)

    def _finish_in(self, c, now: int, job: Job, outcome, decision) -> bool:
        """finish() inside a transaction; False if the job is no longer ours."""
        row = c.execute("SELECT cancel_requested, has_dependents FROM jobs WHERE id = ?",
                        (job.id,)).fetchone()
        if row is None:
            return False
        if decision.action not in ("complete", "cancel") and row[0]:
            # Cancelled while its last moments ran: it is not retried.
            decision = CANCEL
            outcome = as_cancelled(outcome)
        state, event, run_at, finished = ending(decision, job, now)
        error = None if state == "completed" else outcome.error
        cur = c.execute(SQL_FINISH, (
            state, now, finished, run_at, outcome.exit_code, error,
            outcome.output or None, int(outcome.truncated), job.id, job.worker_id,
            job.attempts))
        if cur.rowcount != 1:
            return False
        c.execute(SQL_INSERT_EVENT, (
            job.id, event, job.attempts, now, job.worker_id,
            detail_json(exit_code=outcome.exit_code, error=error,
                        duration=round(outcome.duration, 3),
                        run_at=iso(run_at) if state == "failed" else None)))
        if row[1] and state != "failed":
            self._settle(c, [job.id], now)
        return True

    def finish(self, job: Job, outcome, decision, next_lease: "float | None" = None,
               queues: "list[str] | None" = None):
        with self._write() as (c, now):
            if not self._finish_in(c, now, job, outcome, decision):
                raise LeaseLost(f"job {job.id} is no longer held by worker {job.worker_id}")
            if next_lease is not None:
                return self._claim_in(c, job.worker_id, next_lease, now, queues)
        return None

    def hand_back(self, job: Job, outcome) -> None:
        with self._write() as (c, now):
            cur = c.execute(SQL_HAND_BACK, (
                now, now, outcome.exit_code, outcome.error, outcome.output or None,
                int(outcome.truncated), job.id, job.worker_id, job.attempts))
            if cur.rowcount == 1:
                c.execute(SQL_INSERT_EVENT, (
                    job.id, "retry_scheduled", job.attempts, now, job.worker_id,
                    detail_json(error=outcome.error, duration=round(outcome.duration, 3),
                                run_at=iso(now), interrupted=True)))
                return
        # Cancelled meanwhile (it ends cancelled), or no longer ours (LeaseLost).
        super().hand_back(job, outcome)

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

    def release(self, worker_id: str, jobs: list) -> None:
        # Taken ahead and never started: still pending, only the reservation
        # goes. (One cancelled meanwhile is `cancelled` already.)
        with self._write() as (c, now):
            for job in jobs:
                c.execute(SQL_UNRESERVE, (job.id, worker_id))

    def _finish_held_in(self, c, now: int, job: Job, outcome, decision) -> bool:
        """A job taken ahead whose whole attempt ran while it was reserved:
        its start (event `processing` at job.started_at) and its end, at once.
        False if the reservation was lost (cancelled, or taken by another
        worker after it expired)."""
        row = c.execute("SELECT has_dependents FROM jobs WHERE id = ?", (job.id,)).fetchone()
        if row is None:
            return False
        state, event, run_at, finished = ending(decision, job, now)
        error = None if state == "completed" else outcome.error
        cur = c.execute(SQL_FINISH_HELD, (
            state, job.worker_id, job.started_at, now, finished, run_at, outcome.exit_code,
            error, outcome.output or None, int(outcome.truncated), job.id, job.worker_id,
            job.attempts - 1))
        if cur.rowcount != 1:
            return False
        # (The event at the commit, like every event: `at` grows with seq;
        # the job's started_at is its real start.)
        c.execute(SQL_INSERT_EVENT, (job.id, "processing", job.attempts, now,
                                     job.worker_id, None))
        c.execute(SQL_INSERT_EVENT, (
            job.id, event, job.attempts, now, job.worker_id,
            detail_json(exit_code=outcome.exit_code, error=error,
                        duration=round(outcome.duration, 3),
                        run_at=iso(run_at) if state == "failed" else None)))
        if row[0] and state != "failed":
            self._settle(c, [job.id], now)
        return True

    def held_state(self, worker_id: str, job: Job) -> str:
        rows = self._read(
            f"SELECT {SQL_HELD}, "
            "EXISTS (SELECT 1 FROM queues q WHERE q.name = jobs.queue AND q.paused = 1) "
            "FROM jobs WHERE id = ?", (worker_id, job.attempts, job.id))
        if not rows or not rows[0][0]:
            return "gone"
        return "paused" if rows[0][1] else "ok"

    def start_held(self, worker_id: str, job: Job, lease_timeout: float) -> bool:
        with self._write() as (c, now):
            cur = c.execute(SQL_START_HELD, (
                worker_id, job.started_at, now, now + round(lease_timeout * 1000), job.id,
                worker_id, job.attempts - 1))
            if cur.rowcount != 1:
                return False
            c.execute(SQL_INSERT_EVENT, (job.id, "processing", job.attempts, now,
                                         worker_id, None))
        return True

    def heartbeat(self, worker_id: str, job_id: "str | None", lease_timeout: float,
                  held=()) -> bool:
        lease = round(lease_timeout * 1000)
        with self._write() as (c, now):
            cur = c.execute("UPDATE workers SET heartbeat_at = ?, expires_at = ? WHERE id = ?",
                            (now, now + lease, worker_id))
            if cur.rowcount == 0 and self._identity is not None:
                # Our row was swept as stale (we were frozen): register again.
                host, pid, started = self._identity
                c.execute(SQL_INSERT_WORKER, (worker_id, host, pid, started, now, now + lease))
            if held:
                # Reservations of the jobs it has taken ahead.
                c.execute(f"UPDATE jobs SET reserved_until = ? WHERE id IN ({_marks(len(held))}) "
                          "AND state = 'pending' AND reserved_by = ?",
                          (now + lease, *held, worker_id))
            if job_id is None and not held:
                return True
            # Every job the worker holds: the one running and any ended
            # whose result is not recorded yet.
            c.execute("UPDATE jobs SET lease_expires_at = ? WHERE state = 'processing' "
                      "AND worker_id = ?", (now + lease, worker_id))
            if job_id is None:
                return True
            return c.execute("SELECT 1 FROM jobs WHERE id = ? AND state = 'processing' "
                             "AND worker_id = ?", (job_id, worker_id)).fetchone() is not None

    def cancel(self, job_id: str) -> str:
        with self._write() as (c, now):
            row = c.execute("SELECT state, attempts, has_dependents FROM jobs WHERE id = ?",
                            (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"job {job_id} not found")
            state, attempts, has_dependents = row
            if state in ("pending", "failed"):
                c.execute(SQL_CANCEL, (now, now, CANCELLED_ERROR, job_id))
                c.execute(SQL_INSERT_EVENT, (job_id, "cancelled", attempts, now, None,
                                             detail_json(error=CANCELLED_ERROR)))
                if has_dependents:
                    self._settle(c, [job_id], now)
                return "cancelled"
            if state == "processing":
                c.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                return "cancelling"
            raise Conflict(f"job {job_id} is {state}; there is nothing to cancel")

    def cancel_requested(self, job_id: str) -> bool:
        rows = self._read("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        return bool(rows and rows[0][0])

    def queues(self) -> list[dict]:
        return queue_rows(self._read("SELECT queue, state, count(*) FROM jobs "
                                     "GROUP BY queue, state"),
                          self._read("SELECT name, paused, max_running FROM queues"))

    def set_queue(self, name: str, *, paused=None, limit=None) -> None:
        with self._write() as (c, _):
            c.execute("INSERT OR IGNORE INTO queues (name) VALUES (?)", (name,))
            if paused is not None:
                c.execute("UPDATE queues SET paused = ? WHERE name = ?", (int(paused), name))
            if limit is not None:
                c.execute("UPDATE queues SET max_running = ? WHERE name = ?", (limit, name))

    def held_by(self, worker_id: str) -> list[Job]:
        rows = self._read(f"SELECT {JOB_COLS} FROM jobs WHERE state = 'processing' "
                          "AND worker_id = ? ORDER BY started_at", (worker_id,))
        return [Job(*r) for r in rows]

    def rescue_expired(self, decide) -> list[Job]:
        # Leases are written with each worker's wall clock, which can jump
        # (an NTP step, a resumed VM, `date -s`): a lease that looks hours
        # expired may be a live worker's, one that looks hours away a dead
        # one's. So the rescue trusts only this process's monotonic clock: it
        # takes a job back once it has itself watched the job's lease and its
        # worker's heartbeat stay unchanged for longer than that worker's lease
        # term (whose watchdog has killed the command by then), or at once when
        # the worker's row is gone (it exited). Judged at the time we *started*
        # to look, so waiting for the write lock never counts against a lease.
        seen, mono = self._now(), self.clock.monotonic_ms()
        forget = seen - STALE_WORKER_TTL
        if not self._due_leases(self._read(SQL_RUNNING), mono) and not self._stale_workers(
                self._read(SQL_STALE_WORKERS, (forget,)), mono):
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
            for worker_id, beat in self._stale_workers(
                    c.execute(SQL_STALE_WORKERS, (forget,)).fetchall(), mono):
                c.execute("DELETE FROM workers WHERE id = ? AND heartbeat_at = ?",
                          (worker_id, beat))
            for job_id, worker_id, attempts, gone in self._due_leases(
                    c.execute(SQL_RUNNING).fetchall(), mono):
                row = c.execute(SQL_RESCUABLE, (job_id, worker_id, attempts)).fetchone()
                if row is None:
                    continue
                job = Job(*row[:-2])
                # A job being cancelled is not retried when its worker is lost.
                decision = CANCEL if row[-1] else decide(job)
                state, event, run_at, finished = ending(decision, job, now)
                error = CANCELLED_ERROR if row[-1] else rescue_error(job, seen, gone)
                cur = c.execute(SQL_RESCUE, (state, now, finished, run_at, error,
                                             job.id, job.worker_id, job.attempts))
                if cur.rowcount != 1:
                    continue
                c.execute(SQL_INSERT_EVENT, (job.id, "lease_expired", job.attempts, now,
                                             job.worker_id, detail_json(error=error)))
                c.execute(SQL_INSERT_EVENT, (
                    job.id, event, job.attempts, now, None,
                    detail_json(error=error, run_at=iso(run_at) if state == "failed" else None)))
                if row[-2] and state != "failed":
                    self._settle(c, [job.id], now)
                job.state, job.run_at, job.last_error = state, run_at, error
                rescued.append(job)
        return rescued

    def _due_leases(self, rows, mono: int) -> list:
        """(job id, worker id, attempts, gone) of the running jobs (SQL_RUNNING
        rows) to take back: those whose worker row is gone, and those whose
        lease this store has watched go unrenewed for longer than the worker's
        lease term. Remembers what it saw, and since when."""
        watched, due = {}, []
        for job_id, worker_id, attempts, lease, beat, term in rows:
            key = (worker_id, attempts, lease)
            old = self._leases_seen.get(job_id)
            since = old[1] if old is not None and old[0] == key else mono
            watched[job_id] = (key, since)
            if beat is None:
                due.append((job_id, worker_id, attempts, True))
            elif mono - since > term:
                due.append((job_id, worker_id, attempts, False))
        self._leases_seen = watched
        return due

    def _stale_workers(self, rows, mono: int) -> list:
        """(worker id, heartbeat) of SQL_STALE_WORKERS rows whose heartbeat this
        store has watched unchanged for longer than their lease term."""
        watched, stale = {}, []
        for worker_id, beat, term in rows:
            old = self._workers_seen.get(worker_id)
            since = old[1] if old is not None and old[0] == beat else mono
            watched[worker_id] = (beat, since)
            if mono - since > term:
                stale.append((worker_id, beat))
        self._workers_seen = watched
        return stale

    def dlq_retry(self, job_id: str) -> None:
        with self._write() as (c, now):
            cur = c.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?, updated_at = ?, "
                "finished_at = NULL WHERE id = ? AND state = 'dead'", (now, now, job_id))
            if cur.rowcount != 1:
                row = c.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    raise NotFound(f"job {job_id} not found")
                raise Conflict(f"job {job_id} is not in the DLQ (state: {row[0]})")
            c.execute(SQL_INSERT_EVENT, (job_id, "dlq_retry", 0, now, None, None))

    def dlq_retry_all(self, queue=None, exit_code=None) -> int:
        where = ("state = 'dead' AND (? IS NULL OR queue = ?) "
                 "AND (? IS NULL OR exit_code = ?)")
        args = (queue, queue, exit_code, exit_code)
        with self._write() as (c, now):
            c.execute("INSERT INTO events (job_id, event, attempt, at) "
                      f"SELECT id, 'dlq_retry', 0, ? FROM jobs WHERE {where}", (now, *args))
            cur = c.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?, updated_at = ?, "
                f"finished_at = NULL WHERE {where}", (now, now, *args))
            return cur.rowcount

    def dead_jobs(self, queue=None, exit_code=None) -> list[Job]:
        rows = self._read(f"SELECT {JOB_COLS} FROM jobs WHERE state = 'dead' "
                          "AND (? IS NULL OR queue = ?) AND (? IS NULL OR exit_code = ?) "
                          "ORDER BY seq", (queue, queue, exit_code, exit_code))
        return [Job(*r) for r in rows]

    def purge(self, states: list[str], older_than: float) -> int:
        with self._write() as (c, now):
            cutoff = now - round(older_than * 1000)
            cur = c.execute(
                f"DELETE FROM jobs WHERE state IN ({','.join('?' * len(states))}) "
                "AND finished_at <= ?", (*states, cutoff))
            return cur.rowcount

    # ------------------------------------------------------------ schedules
    def add_schedule(self, name, cron, tz, job, next_after, replace=False) -> int:
        with self._write() as (c, now):
            first = next_after(now)
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            cur = c.execute(f"{verb} INTO schedules (name, cron, tz, job, next_run_at, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                            (name, cron, tz, job, first, now))
            if cur.rowcount != 1:
                raise Conflict(f"schedule {name} already exists (remove it first, or "
                               "use --replace)")
            return first

    def schedules(self) -> list[dict]:
        return [schedule_dict(*r) for r in self._read(
            "SELECT name, cron, tz, job, next_run_at, last_run_at FROM schedules ORDER BY name")]

    def remove_schedule(self, name: str) -> None:
        with self._write() as (c, _):
            if c.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount != 1:
                raise NotFound(f"schedule {name} not found")

    def fire_schedules(self, next_after, make_job) -> tuple:
        (due,) = self._read("SELECT min(next_run_at) FROM schedules")[0]
        if due is None or due > self._now():
            return [], []
        fired, failed = [], []
        with self._write() as (c, now):
            for name, cron, tz, job, at in c.execute(
                    "SELECT name, cron, tz, job, next_run_at FROM schedules "
                    "WHERE next_run_at <= ? ORDER BY next_run_at, name", (now,)).fetchall():
                job_id = firing_id(name, at)
                try:
                    following = next_after(cron, tz, now)
                    new = make_job(job, job_id)
                except QueueError as e:
                    failed.append((name, str(e)))       # the others still fire
                    continue
                c.execute("UPDATE schedules SET next_run_at = ?, last_run_at = ? WHERE name = ?",
                          (following, at, name))
                if not self._existing(c, [job_id]):
                    self._insert(c, [new], now)
                    fired.append(job_id)
        return fired, failed

    # ------------------------------------------------------------ jobs: reads
    def get_job(self, job_id: str, with_output: bool = False) -> Job:
        cols = JOB_COLS + (", output, output_truncated" if with_output else "")
        rows = self._read(f"SELECT {cols} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFound(f"job {job_id} not found")
        job = Job(*rows[0])
        job.output_truncated = bool(job.output_truncated)
        job.after = self._after_of([job_id]).get(job_id, [])
        return job

    @staticmethod
    def _filter(state, search) -> tuple:
        conds, params = [], []
        if state:
            conds.append("state = ?")
            params.append(state)
        if search:
            conds.append("(id LIKE ? ESCAPE '\\' OR command LIKE ? ESCAPE '\\')")
            params += [like_pattern(search)] * 2
        return ("WHERE " + " AND ".join(conds)) if conds else "", params

    def list_jobs(self, state: "str | None" = None, limit: int = 0, *, offset: int = 0,
                  search: "str | None" = None, newest_first: bool = False) -> list[Job]:
        where, params = self._filter(state, search)
        rows = self._read(f"SELECT {JOB_COLS} FROM jobs {where} ORDER BY seq "
                          f"{'DESC' if newest_first else ''} LIMIT ? OFFSET ?",
                          params + [limit if limit > 0 else -1, offset])
        return [Job(*r) for r in rows]

    def count_jobs(self, state: "str | None" = None, search: "str | None" = None) -> int:
        where, params = self._filter(state, search)
        return self._read(f"SELECT count(*) FROM jobs {where}", params)[0][0]

    def now_ms(self) -> int:
        return self._now()

    def attempt_ends(self, since_ms=None, after_seq=None, limit: int = 0) -> list[tuple]:
        # (Conditions are left out, not written `? IS NULL OR …`, so that the
        # planner can use the primary key's range.)
        where, params = [f"e.event IN ({_marks(len(ENDING_EVENTS))})"], list(ENDING_EVENTS)
        if since_ms is not None:
            where.append("e.seq >= ? AND e.at >= ?")
            params += [self._seq_since(since_ms), since_ms]
        if after_seq is not None:
            where.append("e.seq > ?")
            params.append(after_seq)
        return self._read(
            "SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail "
            f"FROM events e JOIN jobs j ON j.id = e.job_id WHERE {' AND '.join(where)} "
            "ORDER BY e.seq LIMIT ?", (*params, limit if limit > 0 else -1))

    def _seq_since(self, since_ms: int) -> int:
        return first_seq_at(
            self._read("SELECT min(seq), max(seq) FROM events")[0],
            lambda s: next(iter(self._read(
                "SELECT at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1", (s,))), (None,))[0],
            since_ms)

    def event_counts(self, since_ms: int, bucket_ms: int) -> list[tuple]:
        return self._read(
            "SELECT (at - ?) / ?, event, worker_id IS NOT NULL, count(*) FROM events "
            f"WHERE seq >= ? AND at >= ? AND event IN ({_marks(len(ENDING_EVENTS))}) "
            "GROUP BY 1, 2, 3",
            (since_ms, bucket_ms, self._seq_since(since_ms), since_ms, *ENDING_EVENTS))

    def recent_failures(self, limit: int, since_ms: int) -> list[tuple]:
        return self._read(
            "SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail "
            "FROM events e JOIN jobs j ON j.id = e.job_id "
            "WHERE e.seq >= ? AND e.at >= ? AND (e.event = 'lease_expired' OR e.event IN "
            "('retry_scheduled', 'dead') AND e.worker_id IS NOT NULL) "
            "ORDER BY e.seq DESC LIMIT ?", (self._seq_since(since_ms), since_ms, limit))

    def max_event_seq(self) -> int:
        return self._read("SELECT coalesce(max(seq), 0) FROM events")[0][0]

    def counts(self) -> dict:
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._read("SELECT state, count(*) FROM jobs GROUP BY state"))
        return counts

    def history(self, job_id: "str | None" = None, limit: int = 0) -> list[dict]:
        where, params = ("WHERE job_id = ?", [job_id]) if job_id else ("", [])
        rows = self._read(
            f"SELECT job_id, event, attempt, at, worker_id, detail FROM events {where} "
            "ORDER BY seq DESC LIMIT ?", params + [limit if limit > 0 else -1])
        return [event_dict(*row) for row in reversed(rows)]

    def has_unfinished(self, queues: "list[str] | None" = None) -> bool:
        only, extra = _only(queues)
        # Running jobs first, through their small partial index: a burst
        # worker asks this at the end of every drain, when a large paused
        # backlog would otherwise be scanned row by row.
        if self._read(f"SELECT 1 FROM jobs INDEXED BY jobs_running WHERE state = 'processing' "
                      f"{only} LIMIT 1", extra):
            return True
        return bool(self._read(
            "SELECT 1 FROM jobs WHERE state IN ('pending', 'failed') "
            f"AND queue NOT IN (SELECT name FROM queues WHERE paused = 1) {only} LIMIT 1",
            extra))

    def next_due_in(self, queues: "list[str] | None" = None) -> "float | None":
        only, extra = _only(queues)
        now = self._now()
        # In run_at order up to the first job not reserved by a live worker
        # (reserved jobs, taken ahead, are few): a reserved one is due for
        # others when its reservation ends.
        rows = self._read("SELECT run_at, CASE WHEN reserved_until IS NULL THEN NULL "
                          f"WHEN {SQL_FREE.format(now='?')} THEN NULL "
                          "ELSE reserved_until END FROM jobs INDEXED BY jobs_due "
                          "WHERE state IN ('pending', 'failed') AND blocked = 0 "
                          f"AND queue NOT IN ({SQL_BLOCKED}) {only} ORDER BY run_at LIMIT 65",
                          (now, *extra))
        due = None
        for run_at, reserved_until in rows:
            at = run_at if reserved_until is None else max(run_at, reserved_until)
            due = at if due is None else min(due, at)
            if reserved_until is None:
                break
        else:
            if len(rows) == 65:
                due = min(due, rows[-1][0])
        if due is None:
            return None
        return max(0.0, (due - now) / 1000)

    def wait_for_change(self, timeout: float, wake_fds=()) -> None:
        end = time.monotonic() + timeout
        if self._data_version is None:
            self._data_version = self._read("PRAGMA data_version")[0][0]
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if wake_fds:
                if select.select(wake_fds, [], [], min(POLL_INTERVAL, left))[0]:
                    return
            else:
                time.sleep(min(POLL_INTERVAL, left))
            version = self._read("PRAGMA data_version")[0][0]
            if version != self._data_version:
                self._data_version = version
                return

    # ------------------------------------------------------------ workers
    def register_worker(self, worker_id: str, host: str, pid: int,
                        lease_timeout: float) -> None:
        with self._write() as (c, now):
            self._identity = (host, pid, now)
            c.execute(SQL_INSERT_WORKER, (worker_id, host, pid, now, now,
                                          now + round(lease_timeout * 1000)))

    def deregister_worker(self, worker_id: str) -> None:
        self._identity = None
        with self._write() as (c, _):
            c.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def stop_requested(self, worker_id: str) -> bool:
        rows = self._read("SELECT stop_requested FROM workers WHERE id = ?", (worker_id,))
        return bool(rows and rows[0][0])

    def request_stop(self) -> list[str]:
        with self._write() as (c, now):
            ids = [r[0] for r in c.execute(
                "SELECT id FROM workers WHERE expires_at >= ? ORDER BY started_at", (now,))]
            c.execute("UPDATE workers SET stop_requested = 1 WHERE expires_at >= ?", (now,))
        return ids

    def active_workers(self) -> list[dict]:
        now = self._now()
        rows = self._read(
            "SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.stop_requested, "
            "(SELECT j.id FROM jobs j WHERE j.state = 'processing' AND j.worker_id = w.id) "
            "FROM workers w WHERE w.expires_at >= ? ORDER BY w.started_at, w.id", (now,))
        return [{"id": r[0], "host": r[1], "pid": r[2], "started_at": iso(r[3]),
                 "heartbeat_at": iso(r[4]), "heartbeat_age": round((now - r[4]) / 1000, 3),
                 "stopping": bool(r[5]), "job_id": r[6]} for r in rows]

    # ------------------------------------------------------------ config
    def config(self) -> dict:
        values = cfgmod.defaults()
        for key, raw in self._read("SELECT key, value FROM config"):
            if key in values:
                values[key] = json.loads(raw)
        return values

    def config_set(self, key: str, value) -> None:
        with self._write() as (c, _):
            c.execute("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)",
                      (key, json.dumps(value)))


def _statements(script: str) -> list[str]:
    """Split a migration into complete statements (executescript would commit)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    return out
