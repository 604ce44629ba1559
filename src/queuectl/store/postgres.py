"""The PostgreSQL backend: workers on many hosts sharing one database.

Every operation a worker repeats is one statement in autocommit mode (a
data-modifying CTE changes the job and appends its event atomically), so a
job costs two round trips: finish, then claim. The claim takes the best ready
row with `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait for each
other or take the same job. All times come from the database server's clock
(`now()`), never from a host's, unless a test injects a clock. Idle workers
sleep on LISTEN until an enqueue, a retry, a rescue or a stop request sends a
NOTIFY, and poll as a fallback.

A connection that breaks is reopened on the next call, with backoff; the
error in between is a `StoreError` the worker reports and retries.

All PostgreSQL SQL lives in this module and in migrations/postgres/.
"""

from __future__ import annotations

import json
import select
import time
from contextlib import contextmanager

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from queuectl import config as cfgmod
from queuectl.clock import iso
from queuectl.errors import (Conflict, DuplicateJob, InvalidInput, LeaseLost, NotFound,
                             QueueError, StoreError)
from queuectl.model import STATES, TERMINAL, Job, NewJob, options_json
from queuectl.store.base import (CANCEL, CANCELLED_ERROR, ENDING_EVENTS, IMPORTED, Store,
                                 dependency_error, first_seq_at, like_pattern,
                                 dependency_plan, ending, event_dict, migrations, queue_rows,
                                 rescue_error, schedule_dict, skip_existing_jobs)
from queuectl.cron import firing_id

APP = "queuectl"
SCHEMA_VERSION = 6
MIGRATION_LOCK = 0x71756575_6374_6c   # advisory lock key taken while migrating
STALE_WORKER_TTL = 3_600_000          # ms a dead worker's row is kept after it expired
RECONNECT_MAX = 5.0                   # longest pause between reconnection attempts (s)

# The database's clock in epoch ms; a test's FakeClock replaces it through %(now)s.
# statement_timestamp(), not now(): a claim that waited inside its transaction
# (for the queue-limit lock) must not be dated before the finish it waited for.
NOW = "COALESCE(%(now)s::bigint, (extract(epoch FROM statement_timestamp()) * 1000)::bigint)"


def _iso_sql(expr: str) -> str:
    """SQL rendering epoch ms `expr` like clock.iso()."""
    return (f"to_char(to_timestamp(({expr}) / 1000.0) AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")


JOB_COLS = ("id, command, state, attempts, max_retries, priority, run_at, timeout, "
            "created_at, updated_at, started_at, finished_at, exit_code, last_error, "
            "worker_id, lease_expires_at, options, queue, blocked")
J_COLS = ", ".join("j." + c.strip() for c in JOB_COLS.split(","))

SQL_ENQUEUE = f"""
WITH clock AS (SELECT {NOW} AS n),
new AS (
    INSERT INTO queuectl_jobs (id, command, max_retries, priority, run_at, timeout,
                               created_at, updated_at, options, queue, blocked)
    SELECT u.id, u.command, u.max_retries, u.priority, COALESCE(u.run_at, clock.n + u.delay),
           u.timeout, clock.n, clock.n, u.options, u.queue, COALESCE(u.blocked, false)
    FROM unnest(%(ids)s::text[], %(commands)s::text[], %(max_retries)s::bigint[],
                %(priorities)s::bigint[], %(run_ats)s::bigint[], %(delays)s::bigint[],
                %(timeouts)s::float8[], %(options)s::text[], %(queues)s::text[],
                %(blocked)s::boolean[])
         WITH ORDINALITY AS u(id, command, max_retries, priority, run_at, delay, timeout,
                              options, queue, blocked, ord),
         clock
    ORDER BY u.ord
    RETURNING id, created_at),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at)
    SELECT id, 'enqueued', 0, created_at FROM new)
SELECT pg_notify(%(channel)s, 'enqueued')
"""
# --skip-existing: ids that exist are left alone (and returned as not inserted).
SQL_ENQUEUE_SKIP = SQL_ENQUEUE.replace(
    "    RETURNING id, created_at)", "    ON CONFLICT (id) DO NOTHING\n    RETURNING id, created_at)"
).replace("SELECT pg_notify(%(channel)s, 'enqueued')\n",
          "SELECT new.id, pg_notify(%(channel)s, 'enqueued') FROM new\n")


# Queues a claim must skip: paused, or running as many jobs as their limit.
SQL_BLOCKED = (
    "SELECT q.name FROM queuectl_queues q WHERE q.paused OR (q.max_running > 0 AND "
    "q.max_running <= (SELECT count(*) FROM queuectl_jobs r "
    "WHERE r.state = 'processing' AND r.queue = q.name))")

SQL_CLAIM = f"""
WITH me AS (
    SELECT 1 FROM queuectl_workers WHERE id = %(worker)s::text AND NOT stop_requested
    {{guard}}),
next AS (
    SELECT seq FROM queuectl_jobs
    WHERE state IN ('pending', 'failed') AND NOT blocked AND run_at <= {NOW}
      AND EXISTS (SELECT 1 FROM me)
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND queue NOT IN ({SQL_BLOCKED})
    ORDER BY priority DESC, run_at, seq
    LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE queuectl_jobs j
    SET state = 'processing', attempts = j.attempts + 1, worker_id = %(worker)s::text,
        started_at = {NOW}, updated_at = {NOW}, lease_expires_at = {NOW} + %(lease)s::bigint,
        finished_at = NULL, output = NULL, output_truncated = false,
        cancel_requested = false
    FROM next WHERE j.seq = next.seq AND j.state IN ('pending', 'failed')
    RETURNING {J_COLS}),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id)
    SELECT id, 'processing', attempts, started_at, worker_id FROM claimed)
SELECT * FROM claimed
"""
SQL_CLAIM_UNLIMITED = SQL_CLAIM.replace(
    "{guard}", "AND NOT EXISTS (SELECT 1 FROM queuectl_queues WHERE max_running > 0)")
SQL_CLAIM_LOCKED = SQL_CLAIM.replace("{guard}", "")


# A cancel requested while the attempt ended (and not in time to kill it) wins
# over a retry or the DLQ: `c` is "this attempt ends cancelled".
# The cancel flag is read from the row being updated (j.cancel_requested), not
# from a separate scan: under READ COMMITTED, an UPDATE that waited for a
# concurrent cancel's row lock re-reads only its target row, so a flag read
# elsewhere would miss that cancel (reported `cancelling`, then retried).
SQL_FINISH = f"""
WITH done AS (
    UPDATE queuectl_jobs j
    SET state = CASE WHEN (j.cancel_requested AND %(state)s::text <> 'completed') THEN 'cancelled' ELSE %(state)s::text END,
        updated_at = {NOW},
        finished_at = CASE WHEN %(state)s::text = 'failed' AND NOT (j.cancel_requested AND %(state)s::text <> 'completed')
                           THEN NULL ELSE {NOW} END,
        run_at = CASE WHEN %(state)s::text = 'failed' AND NOT (j.cancel_requested AND %(state)s::text <> 'completed')
                      THEN {NOW} + %(delay)s::bigint ELSE j.run_at END,
        exit_code = %(exit_code)s::bigint,
        last_error = CASE WHEN (j.cancel_requested AND %(state)s::text <> 'completed') THEN %(cancelled)s::text ELSE %(error)s::text END,
        lease_expires_at = NULL, output = %(output)s::text,
        output_truncated = %(truncated)s::boolean, cancel_requested = false
    WHERE j.id = %(id)s::text AND j.state = 'processing' AND j.worker_id = %(worker)s::text
          AND j.attempts = %(attempts)s::bigint
    RETURNING j.id, j.attempts, j.updated_at, j.run_at, j.state, j.last_error,
              j.has_dependents),
ev AS (
    INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id, detail)
    SELECT id, CASE WHEN done.state = 'cancelled' THEN 'cancelled' ELSE %(event)s::text END,
           attempts, updated_at, %(worker)s::text,
           json_strip_nulls(json_build_object(
               'exit_code', %(exit_code)s::bigint, 'error', done.last_error,
               'duration', %(duration)s::float8,
               'run_at', CASE WHEN done.state = 'failed' THEN {_iso_sql('run_at')} END))::text
    FROM done)
SELECT state, has_dependents FROM done
"""

# An interrupted attempt handed back (Store.hand_back): it is not charged
# (max_retries + 1), so it uses up no retry.
SQL_HAND_BACK = f"""
WITH done AS (
    UPDATE queuectl_jobs
    SET state = 'failed', updated_at = {NOW}, run_at = {NOW},
        max_retries = CASE WHEN max_retries < 2147483647 THEN max_retries + 1
                           ELSE max_retries END,
        finished_at = NULL, exit_code = %(exit_code)s::bigint, last_error = %(error)s::text,
        lease_expires_at = NULL, output = %(output)s::text,
        output_truncated = %(truncated)s::boolean
    WHERE id = %(id)s::text AND state = 'processing' AND worker_id = %(worker)s::text
          AND attempts = %(attempts)s::bigint AND NOT cancel_requested
    RETURNING id, updated_at)
INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id, detail)
SELECT id, 'retry_scheduled', %(attempts)s::bigint, updated_at, %(worker)s::text,
       json_build_object('error', %(error)s::text, 'duration', %(duration)s::float8,
                         'run_at', {_iso_sql('updated_at')}, 'interrupted', true)::text
FROM done
"""

# A worker's usual step: record a result and claim its next job in one
# statement, one round trip (the claim only if the finish matched, and only
# while no queue has a limit; see PostgresStore.finish).
SQL_FINISH_CLAIM = (
    SQL_FINISH.replace("SELECT state, has_dependents FROM done", "")
    + "," + SQL_CLAIM_UNLIMITED.replace("WITH me AS (", "me AS (", 1)
    .replace("AND NOT stop_requested", "AND NOT stop_requested AND EXISTS (SELECT 1 FROM done)", 1)
    .replace("ev AS (", "ev2 AS (", 1)
    .replace("SELECT * FROM claimed", "SELECT d.state, d.has_dependents, c.* "
             "FROM done d LEFT JOIN claimed c ON true"))

# Dependents of jobs that just ended (see migrations/sqlite/0004): unblock
# those whose dependencies have all completed; find those to cancel.
SQL_UNBLOCK = """
UPDATE queuectl_jobs j SET blocked = false
WHERE j.blocked AND j.state IN ('pending', 'failed')
  AND j.id IN (SELECT job_id FROM queuectl_job_deps WHERE dep_id = ANY(%(ids)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM queuectl_job_deps d JOIN queuectl_jobs p ON p.id = d.dep_id
                  WHERE d.job_id = j.id AND p.state <> 'completed')
"""
SQL_DOOMED = """
SELECT d.job_id, d.dep_id, p.state FROM queuectl_job_deps d
JOIN queuectl_jobs p ON p.id = d.dep_id JOIN queuectl_jobs j ON j.id = d.job_id
WHERE d.dep_id = ANY(%(ids)s::text[]) AND p.state IN ('dead', 'cancelled')
  AND j.state IN ('pending', 'failed')
ORDER BY j.seq, d.dep_id
"""
SQL_CANCEL = """
WITH c AS (
    UPDATE queuectl_jobs SET state = 'cancelled', blocked = false, updated_at = %(now)s,
           finished_at = %(now)s, last_error = %(error)s
    WHERE id = %(id)s AND state IN ('pending', 'failed')
    RETURNING id, attempts)
INSERT INTO queuectl_events (job_id, event, attempt, at, detail)
SELECT id, 'cancelled', attempts, %(now)s, %(detail)s FROM c
"""
# Repair (settle_dependents): blocked jobs with no unfinished dependency left
# (their settling was cut short by a crash or an error between a finish and
# its follow-up) are unblocked; dependencies that ended badly and still have
# blocked dependents are settled again.
SQL_UNBLOCK_ALL = """
UPDATE queuectl_jobs j SET blocked = false
WHERE j.blocked AND j.state IN ('pending', 'failed')
  AND NOT EXISTS (SELECT 1 FROM queuectl_job_deps d JOIN queuectl_jobs p ON p.id = d.dep_id
                  WHERE d.job_id = j.id AND p.state <> 'completed')
"""
SQL_UNSETTLED = """
SELECT DISTINCT d.dep_id FROM queuectl_jobs j
JOIN queuectl_job_deps d ON d.job_id = j.id JOIN queuectl_jobs p ON p.id = d.dep_id
WHERE j.blocked AND j.state IN ('pending', 'failed') AND p.state IN ('dead', 'cancelled')
"""
# Rows are locked in seq order everywhere (a dependency always has a smaller
# seq than its dependents), so enqueue, cancel, rescue and settle cannot deadlock.
SQL_LOCK_DEPENDENTS = """
SELECT 1 FROM queuectl_jobs
WHERE id IN (SELECT job_id FROM queuectl_job_deps WHERE dep_id = ANY(%(ids)s::text[]))
  AND state IN ('pending', 'failed')
ORDER BY seq FOR UPDATE
"""

SQL_EXPIRED = f"""
SELECT {JOB_COLS}, has_dependents, cancel_requested FROM queuectl_jobs j
WHERE state = 'processing' AND (lease_expires_at < %(seen)s::bigint
      OR NOT EXISTS (SELECT 1 FROM queuectl_workers w WHERE w.id = j.worker_id))
ORDER BY lease_expires_at LIMIT 200
"""

SQL_RESCUE = """
WITH r AS (
    UPDATE queuectl_jobs
    SET state = %(state)s::text, updated_at = %(now)s::bigint,
        finished_at = %(finished)s::bigint, run_at = %(run_at)s::bigint, exit_code = NULL,
        last_error = %(error)s::text, lease_expires_at = NULL
    WHERE id = %(id)s::text AND state = 'processing' AND worker_id = %(worker)s::text
          AND attempts = %(attempts)s::bigint
    RETURNING id, attempts)
INSERT INTO queuectl_events (job_id, event, attempt, at, worker_id, detail)
SELECT id, 'lease_expired', attempts, %(now)s::bigint, %(worker)s::text, %(detail1)s::text
FROM r
UNION ALL
SELECT id, %(event)s::text, attempts, %(now)s::bigint, NULL, %(detail2)s::text FROM r
"""

SQL_HEARTBEAT_WORKER = f"""
INSERT INTO queuectl_workers (id, host, pid, started_at, heartbeat_at, expires_at)
VALUES (%(worker)s::text, %(host)s::text, %(pid)s::bigint, %(started)s::bigint, {NOW},
        {NOW} + %(lease)s::bigint)
ON CONFLICT (id) DO UPDATE
SET heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at
"""

SQL_HEARTBEAT_JOB = f"""
UPDATE queuectl_jobs SET lease_expires_at = {NOW} + %(lease)s::bigint
WHERE id = %(job)s::text AND state = 'processing' AND worker_id = %(worker)s::text
"""

SQL_DLQ_RETRY = f"""
WITH r AS (
    UPDATE queuectl_jobs
    SET state = 'pending', attempts = 0, run_at = {NOW}, updated_at = {NOW},
        finished_at = NULL
    WHERE state = 'dead' AND (%(id)s::text IS NULL OR id = %(id)s::text)
          AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
          AND (%(exit_code)s::bigint IS NULL OR exit_code = %(exit_code)s::bigint)
    RETURNING id, updated_at)
INSERT INTO queuectl_events (job_id, event, attempt, at)
SELECT id, 'dlq_retry', 0, updated_at FROM r
"""


def _text(value: "str | None") -> "str | None":
    """PostgreSQL text cannot hold NUL characters; a command's output can."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


def describe_url(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, for messages (never the password)."""
    try:
        d = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL"
    host = d.get("host") or "localhost"
    port = d.get("port") or "5432"
    return f"postgresql://{host}:{port}/{d.get('dbname') or d.get('user') or ''}"


def _one_line(e: Exception) -> str:
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    for prefix in ("connection failed: ", "FATAL: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return " ".join(text.split()) or type(e).__name__


class PostgresStore(Store):
    idle_wait = 5.0     # NOTIFY wakes idle workers; polling is only the fallback
    def __init__(self, url: str, *, clock=None, worker: bool = False, create: bool = True):
        self.url = url
        self.where = describe_url(url)
        self.clock = clock               # None: the database's clock
        self.worker = worker
        self.create = create
        self.temporary = False           # reading a database that has no queue yet
        self._identity: "tuple | None" = None     # (worker id, host, pid, started)
        self._listening = False
        self._pause = 0.0                # current reconnection backoff (s)
        self._retry_at = 0.0
        self._last_error = ""
        self._has_limits, self._limits_checked = False, -1e9
        try:
            self._params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as e:
            raise InvalidInput(f"invalid PostgreSQL URL: {_one_line(e)}") from None
        # Fail fast on a dead host, and notice a cut network within ~25 s
        # when idle (keepalives) or with a statement in flight (tcp_user_timeout,
        # instead of Linux's ~15 minutes of retransmissions).
        for key, value in (("connect_timeout", 10), ("keepalives", 1),
                           ("keepalives_idle", 10), ("keepalives_interval", 5),
                           ("keepalives_count", 3), ("tcp_user_timeout", 10_000)):
            self._params.setdefault(key, value)
        self._params.setdefault("application_name", "queuectl worker" if worker else "queuectl")
        self.conn = None
        self._open()
        self.channel = self._channel_name()
        version = self._schema_version()
        if version != SCHEMA_VERSION:
            if version == 0 and not create:
                self._use_temporary_schema()
            else:
                self.migrate()

    # ------------------------------------------------------------ connection
    def _open(self) -> None:
        try:
            conn = psycopg.connect(make_conninfo(**self._params), autocommit=True)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to {self.where}: {_one_line(e)}") from None
        try:
            if self.worker:
                # Worker state changes may be lost in a server crash: the
                # lease rescue runs such a job again (docs/ARCHITECTURE.md).
                conn.execute("SET synchronous_commit = off")
            if self.temporary:
                conn.execute("SET search_path = pg_temp")
            if self._identity is not None:
                conn.execute("SELECT set_config('application_name', %s, false)",
                             (f"queuectl worker {self._identity[0]}"[:63],))
        except psycopg.Error as e:
            conn.close()
            raise StoreError(f"{self.where}: {_one_line(e)}") from None
        self.conn = conn
        self._listening = False

    def _ensure(self):
        """The open connection, reopened (with backoff) if it broke."""
        conn = self.conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        now = time.monotonic()
        if now < self._retry_at:
            # The same text each time: the worker logs a repeated error once.
            raise StoreError(self._last_error)
        if conn is not None:
            conn.close()
            self.conn = None
        try:
            self._open()
            if self.temporary:
                self._use_temporary_schema()
        except StoreError as e:
            self._pause = min(max(self._pause * 2, 0.1), RECONNECT_MAX)
            self._retry_at = time.monotonic() + self._pause
            self._last_error = str(e)
            raise
        self._pause = 0.0
        return self.conn

    def _fail(self, e: Exception) -> StoreError:
        """Translate a driver error; a broken connection is reopened next call."""
        if self.conn is not None and (self.conn.broken or self.conn.closed):
            self._last_error = f"lost connection to {self.where}: {_one_line(e)}"
            return StoreError(self._last_error)
        if isinstance(e, psycopg.errors.DiskFull):
            return StoreError(f"{self.where}: the database server's disk is full")
        if isinstance(e, psycopg.errors.ReadOnlySqlTransaction):
            return StoreError(f"{self.where} is read-only (a standby?)")
        return StoreError(f"{self.where}: {_one_line(e)}")

    def _x(self, query, params=None):
        """Execute one statement (autocommit) and return its cursor."""
        conn = self._ensure()
        try:
            return conn.execute(query, params)
        except psycopg.Error as e:
            raise self._fail(e) from None

    def _rows(self, query, params=None) -> list:
        conn = self._ensure()
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.Error as e:
            raise self._fail(e) from None

    @contextmanager
    def _tx(self):
        """A transaction; yields (connection, now in epoch ms)."""
        conn = self._ensure()
        try:
            with conn.transaction():
                (now,) = conn.execute(f"SELECT {NOW}", self._p()).fetchone()
                yield conn, now
        except psycopg.Error as e:
            raise self._fail(e) from None

    def _p(self, **params) -> dict:
        params["now"] = self.clock.now_ms() if self.clock is not None else None
        return params

    def _notify(self, what: str) -> None:
        self._x("SELECT pg_notify(%s, %s)", (self.channel, what))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    # ------------------------------------------------------------ schema
    def _channel_name(self) -> str:
        (schema,) = self._rows("SELECT current_schema()")[0]
        name = f"queuectl_{schema or 'public'}"
        if len(name.encode("utf-8")) > 63:      # identifiers are at most 63 bytes
            import hashlib
            name = "queuectl_" + hashlib.sha1(name.encode("utf-8")).hexdigest()
        return name

    def _schema_version(self) -> int:
        """0 if this schema has no queue yet; refuses foreign or newer ones."""
        (found,) = self._rows("SELECT to_regclass('queuectl_meta') IS NOT NULL")[0]
        if not found:
            return 0
        meta = dict(self._rows(
            "SELECT key, value FROM queuectl_meta WHERE key IN ('app', 'schema_version')"))
        if meta.get("app") != APP:
            raise StoreError(f"{self.where}: table queuectl_meta does not belong to "
                             "queuectl; refusing to touch it")
        version = int(meta.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.where} has schema version {version}, newer than this "
                             f"queuectl understands ({SCHEMA_VERSION}); upgrade queuectl")
        return version

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version. Safe to race:
        concurrent callers queue on an advisory lock and re-read the version."""
        conn = self._ensure()
        try:
            # A session lock taken *before* the transaction: a transaction that
            # began before the winner committed would not see its tables.
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                with conn.transaction():
                    version = self._schema_version()
                    for number, script in migrations("postgres"):
                        if number > version:
                            conn.execute(script)
                    conn.execute(
                        "INSERT INTO queuectl_meta (key, value) VALUES ('app', %s), "
                        "('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value = "
                        "EXCLUDED.value", (APP, str(SCHEMA_VERSION)))
            finally:
                if not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        except psycopg.Error as e:
            raise self._fail(e) from None
        return SCHEMA_VERSION

    def _use_temporary_schema(self) -> None:
        """A read-only command on a database without a queue reads an empty,
        session-private copy of the schema instead of creating tables."""
        self.temporary = True
        conn = self._ensure()
        try:
            conn.execute("SET search_path = pg_temp")
            (found,) = conn.execute("SELECT to_regclass('queuectl_meta') IS NOT NULL").fetchone()
            if not found:
                with conn.transaction():
                    for _, script in migrations("postgres"):
                        conn.execute(script)
        except psycopg.Error as e:
            raise self._fail(e) from None

    # ------------------------------------------------------------ jobs: writes
    def _enqueue_params(self, jobs: list[NewJob], blocked: "dict | None" = None) -> dict:
        return self._p(
            ids=[j.id for j in jobs], commands=[_text(j.command) for j in jobs],
            max_retries=[j.max_retries for j in jobs], priorities=[j.priority for j in jobs],
            run_ats=[j.run_at for j in jobs], delays=[round(j.delay * 1000) for j in jobs],
            timeouts=[float(j.timeout) for j in jobs],
            options=[options_json(j.options) for j in jobs],
            queues=[j.queue for j in jobs],
            blocked=[bool(blocked and blocked.get(j.id)) for j in jobs], channel=self.channel)

    def enqueue(self, jobs: list[NewJob], skip_existing: bool = False) -> list[str]:
        existed: list[str] = []
        conn = self._ensure()
        if any(j.after for j in jobs):
            return self._retrying(lambda: self._enqueue_after(conn, jobs, skip_existing),
                                  retry_duplicate=skip_existing, ids=[j.id for j in jobs])
        params = self._enqueue_params(jobs)
        try:
            if not skip_existing:
                conn.execute(SQL_ENQUEUE, params)
            else:
                # One transaction: insert what is new, then check that every id
                # that existed has the same command (else undo it all).
                with conn.transaction():
                    inserted = {r[0] for r in conn.execute(SQL_ENQUEUE_SKIP, params)}
                    rest = [j for j in jobs if j.id not in inserted]
                    found = dict(conn.execute(
                        "SELECT id, command FROM queuectl_jobs WHERE id = ANY(%s::text[])",
                        ([j.id for j in rest],)).fetchall()) if rest else {}
                    _, existed = skip_existing_jobs(rest, found)
        except psycopg.errors.UniqueViolation:
            raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None
        except psycopg.Error as e:
            raise self._fail(e) from None
        return existed

    def _enqueue_after(self, conn, jobs: list[NewJob], skip_existing: bool) -> list[str]:
        """enqueue() of a batch with dependencies: one transaction."""
        existed: list[str] = []
        with conn.transaction():
            if skip_existing:
                found = dict(conn.execute(
                    "SELECT id, command FROM queuectl_jobs WHERE id = ANY(%s::text[])",
                    ([j.id for j in jobs],)).fetchall())
                jobs, existed = skip_existing_jobs(jobs, found)
            blocked, deps, failed = self._plan(conn, jobs)
            if jobs:
                conn.execute(SQL_ENQUEUE, self._enqueue_params(jobs, blocked))
            self._add_deps(conn, deps, failed)
        return existed

    def _retrying(self, fn, retry_duplicate: bool = False, ids=(), tries: int = 3):
        """fn() (one transaction), again if it lost a deadlock, or (for
        --skip-existing) if a concurrent enqueue inserted one of its ids
        between our look and our insert."""
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                return fn()
            except psycopg.errors.DeadlockDetected as e:
                if last:
                    raise self._fail(e) from None
            except psycopg.errors.UniqueViolation as e:
                if not ids:
                    raise self._fail(e) from None
                if last or not retry_duplicate:
                    raise DuplicateJob(self._first_duplicate(list(ids))) from None
            except psycopg.Error as e:
                raise self._fail(e) from None
            time.sleep(0.01 * (attempt + 1))

    def _plan(self, conn, jobs: list) -> tuple:
        """dependency_plan() of jobs about to be inserted. The dependencies'
        rows are marked has_dependents first, which locks them: a finish that
        races with this enqueue either commits first (and we read its state)
        or waits and then reads has_dependents in its RETURNING (and settles
        the new dependents)."""
        if not any(j.after for j in jobs):
            return {}, [], []
        batch = {j.id for j in jobs}
        outside = sorted({d for j in jobs for d in j.after or () if d not in batch})
        found = dict(conn.execute(
            "UPDATE queuectl_jobs SET has_dependents = true WHERE id IN (SELECT id FROM "
            "queuectl_jobs WHERE id = ANY(%s::text[]) ORDER BY seq FOR UPDATE) "
            "RETURNING id, state", (outside,)).fetchall()) if outside else {}
        return dependency_plan(jobs, found)

    def _add_deps(self, conn, deps: list, failed: list) -> None:
        """Record (job, dependency) pairs of jobs just inserted; cancel those
        whose dependency ended dead or cancelled already."""
        if not deps:
            return
        conn.execute("INSERT INTO queuectl_job_deps (job_id, dep_id) "
                     "SELECT * FROM unnest(%s::text[], %s::text[])",
                     ([j for j, _ in deps], [d for _, d in deps]))
        conn.execute("UPDATE queuectl_jobs SET has_dependents = true "
                     "WHERE id = ANY(%s::text[]) AND NOT has_dependents",
                     (sorted({d for _, d in deps}),))
        if failed:
            self._settle(conn, failed)

    def _settle(self, conn, ended: list) -> None:
        """Jobs `ended` have reached a terminal state (committed, or earlier
        in this transaction): unblock their dependents whose dependencies have
        all completed; cancel, recursively, those that waited for a job that
        ended dead or cancelled."""
        (now,) = conn.execute(f"SELECT {NOW}", self._p()).fetchone()
        frontier = list(ended)
        while frontier:
            conn.execute(SQL_LOCK_DEPENDENTS, {"ids": frontier})
            if conn.execute(SQL_UNBLOCK, {"ids": frontier}).rowcount:
                conn.execute("SELECT pg_notify(%s, 'unblocked')", (self.channel,))
            doomed: dict = {}
            for job_id, dep, state in conn.execute(SQL_DOOMED, {"ids": frontier}).fetchall():
                doomed.setdefault(job_id, (dep, state))
            for job_id, (dep, state) in doomed.items():
                error = dependency_error(dep, state)
                conn.execute(SQL_CANCEL, {"now": now, "error": error, "id": job_id,
                                          "detail": json.dumps({"error": error})})
            frontier = list(doomed)

    def _settle_now(self, ended: list) -> None:
        """_settle in a transaction of its own (after an autocommit finish)."""
        conn = self._ensure()
        try:
            with conn.transaction():
                self._settle(conn, ended)
        except psycopg.Error as e:
            raise self._fail(e) from None

    def settle_dependents(self) -> int:
        """Settle dependents whose dependencies all ended but which are still
        blocked: a worker that died between a job's finish and the settling
        transaction that follows it leaves them so. Returns how many jobs'
        dependents were settled."""
        unblocked = self._x(SQL_UNBLOCK_ALL).rowcount
        if unblocked:
            self._notify("unblocked")
        ended = [r[0] for r in self._rows(SQL_UNSETTLED)]
        if ended:
            with self._tx() as (c, _):
                self._settle(c, ended)
        return unblocked + len(ended)

    def import_jobs(self, jobs: list[Job]) -> None:
        cols = ("id", "command", "state", "attempts", "max_retries", "priority", "run_at",
                "timeout", "created_at", "updated_at", "started_at", "finished_at",
                "exit_code", "last_error", "output", "output_truncated", "queue", "blocked",
                "options")
        conn = self._ensure()
        try:
            with conn.transaction():
                blocked, deps, failed = self._plan(conn, jobs)
                for j in jobs:
                    j.blocked = blocked.get(j.id, False)
                rows = [[_text(getattr(j, c)) if isinstance(getattr(j, c), str)
                         else getattr(j, c) for c in cols[:-1]] + [options_json(j.options)]
                        for j in jobs]
                (now,) = conn.execute(f"SELECT {NOW}", self._p()).fetchone()
                for r in rows:
                    for i in (6, 8, 9):         # run_at, created_at, updated_at
                        if r[i] is None:
                            r[i] = now
                    if r[11] is None and r[2] in TERMINAL:
                        r[11] = now             # finished_at of a terminal job
                    r[15] = bool(r[15])
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO queuectl_jobs ({', '.join(cols)}) VALUES "
                        f"({', '.join(['%s'] * len(cols))})", rows)
                    cur.executemany(
                        "INSERT INTO queuectl_events (job_id, event, attempt, at, detail) "
                        "VALUES (%s, 'enqueued', %s, %s, %s)",
                        [(j.id, j.attempts, now, IMPORTED) for j in jobs])
                self._add_deps(conn, deps, failed)
                conn.execute("SELECT pg_notify(%s, 'enqueued')", (self.channel,))
        except psycopg.errors.UniqueViolation:
            raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None
        except psycopg.Error as e:
            raise self._fail(e) from None

    def export_jobs(self, batch: int = 1000):
        last = 0
        while True:
            rows = self._rows(f"SELECT seq, {JOB_COLS}, output, output_truncated "
                              "FROM queuectl_jobs WHERE seq > %s ORDER BY seq LIMIT %s",
                              (last, batch))
            jobs = [Job(*row[1:]) for row in rows]
            after = self._after_of([j.id for j in jobs])
            for job in jobs:
                job.after = after.get(job.id)
                yield job
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def _after_of(self, ids: list[str]) -> dict:
        """{job id: [ids it runs after]} for those of `ids` that have any."""
        out: dict = {}
        for job_id, dep in self._rows(
                "SELECT job_id, dep_id FROM queuectl_job_deps WHERE job_id = ANY(%s::text[]) "
                "ORDER BY job_id, dep_id", (ids,)):
            out.setdefault(job_id, []).append(dep)
        return out

    def _first_duplicate(self, ids: list[str]) -> str:
        """The first id that exists already, else the first repeated in `ids`."""
        found = {r[0] for r in self._rows(
            "SELECT id FROM queuectl_jobs WHERE id = ANY(%s::text[])", (ids,))}
        seen = set()
        for job_id in ids:
            if job_id in found:
                return job_id
        for job_id in ids:
            if job_id in seen:
                return job_id
            seen.add(job_id)
        return ids[0]

    def claim(self, worker_id: str, lease_timeout: float,
              queues: "list[str] | None" = None) -> "Job | None":
        params = self._p(worker=worker_id, lease=round(lease_timeout * 1000),
                         queues=list(queues) if queues else None)
        rows = None
        if not self._limited:
            # Refuses to claim if a limit appeared since we last looked ...
            rows = self._rows(SQL_CLAIM_UNLIMITED, params)
            if not rows:
                self._limits_checked = -1e9        # ... so look again now
        if rows is None or not rows and self._limited:
            # Concurrency limits are counted under a lock on the limited
            # queues' rows, so concurrent claims cannot both see room for one.
            with self._tx() as (c, _):
                c.execute("SELECT name FROM queuectl_queues WHERE max_running > 0 "
                          "ORDER BY name FOR UPDATE")
                rows = c.execute(SQL_CLAIM_LOCKED, params).fetchall()
        return Job(*rows[0]) if rows else None

    @property
    def _limited(self) -> bool:
        """Does any queue have a concurrency limit? (Looked up every few seconds.)"""
        now = time.monotonic()
        if now >= self._limits_checked + 2.0:
            (self._has_limits,) = self._rows(
                "SELECT EXISTS (SELECT 1 FROM queuectl_queues WHERE max_running > 0)")[0]
            self._limits_checked = now
        return self._has_limits

    def finish(self, job: Job, outcome, decision, next_lease: "float | None" = None,
               queues: "list[str] | None" = None):
        state, event, _, _ = ending(decision, job, 0)
        error = None if state == "completed" else _text(outcome.error)
        params = self._p(
            state=state, event=event, delay=round(decision.delay * 1000),
            exit_code=outcome.exit_code, error=error, output=_text(outcome.output) or None,
            truncated=bool(outcome.truncated), id=job.id, worker=job.worker_id,
            attempts=job.attempts, cancelled=CANCELLED_ERROR,
            duration=round(outcome.duration, 3))
        both = next_lease is not None and not self._limited
        if both:
            params.update(lease=round(next_lease * 1000),
                          queues=list(queues) if queues else None)
        done = self._x(SQL_FINISH_CLAIM if both else SQL_FINISH, params).fetchone()
        if done is None:
            raise LeaseLost(f"job {job.id} is no longer held by worker {job.worker_id}")
        if done[1] and done[0] != "failed":
            # (If we die before this commits, settle_dependents() does it.)
            self._settle_now([job.id])
        if state == "failed" or self._has_limits:
            # Idle workers recompute when to look next (or see room under a limit).
            self._notify("retry" if state == "failed" else "finished")
        if both:
            if done[2] is not None:
                return Job(*done[2:])
            # Nothing claimable just then (or a limit appeared, or a dependent
            # was just unblocked): the ordinary claim looks again.
            self._limits_checked = -1e9
        if next_lease is not None:
            return self.claim(job.worker_id, next_lease, queues)
        return None

    def hand_back(self, job: Job, outcome) -> None:
        cur = self._x(SQL_HAND_BACK, self._p(
            exit_code=outcome.exit_code, error=_text(outcome.error),
            output=_text(outcome.output) or None, truncated=bool(outcome.truncated),
            id=job.id, worker=job.worker_id, attempts=job.attempts,
            duration=round(outcome.duration, 3)))
        if cur.rowcount != 1:
            # Cancelled meanwhile (it ends cancelled), or no longer ours (LeaseLost).
            super().hand_back(job, outcome)
            return
        self._notify("retry")

    def heartbeat(self, worker_id: str, job_id: "str | None", lease_timeout: float,
                  held=()) -> bool:
        # (`held` is always empty here: this backend does not claim ahead.)
        lease = round(lease_timeout * 1000)
        if self._identity is not None and self._identity[0] == worker_id:
            # An upsert: a row swept as stale while we were frozen comes back.
            _, host, pid, started = self._identity
            self._x(SQL_HEARTBEAT_WORKER, self._p(worker=worker_id, host=host, pid=pid,
                                                  started=started, lease=lease))
        else:
            self._x(f"UPDATE queuectl_workers SET heartbeat_at = {NOW}, expires_at = {NOW} + "
                    "%(lease)s::bigint WHERE id = %(worker)s::text",
                    self._p(worker=worker_id, lease=lease))
        self._drain_notifies()
        if job_id is None:
            return True
        cur = self._x(SQL_HEARTBEAT_JOB, self._p(job=job_id, worker=worker_id, lease=lease))
        return cur.rowcount == 1

    def dead_jobs(self, queue=None, exit_code=None) -> list[Job]:
        rows = self._rows(
            f"SELECT {JOB_COLS} FROM queuectl_jobs WHERE state = 'dead' "
            "AND (%(queue)s::text IS NULL OR queue = %(queue)s::text) "
            "AND (%(code)s::bigint IS NULL OR exit_code = %(code)s::bigint) ORDER BY seq",
            {"queue": queue, "code": exit_code})
        return [Job(*r) for r in rows]

    def purge(self, states: list[str], older_than: float) -> int:
        with self._tx() as (c, now):
            where = ("state = ANY(%(states)s::text[]) AND finished_at <= %(cutoff)s::bigint")
            params = {"states": list(states), "cutoff": now - round(older_than * 1000)}
            # Dependents whose settling was cut short must not lose the rows
            # that say what they wait for: settle them first.
            ended = [r[0] for r in c.execute(
                f"SELECT id FROM queuectl_jobs WHERE {where} AND has_dependents "
                "AND EXISTS (SELECT 1 FROM queuectl_job_deps d JOIN queuectl_jobs j "
                "ON j.id = d.job_id WHERE d.dep_id = queuectl_jobs.id AND j.blocked)",
                params).fetchall()]
            if ended:
                self._settle(c, ended)
            return c.execute(f"DELETE FROM queuectl_jobs WHERE {where}", params).rowcount

    def cancel(self, job_id: str) -> str:
        return self._retrying(lambda: self._cancel(job_id))

    def _cancel(self, job_id: str) -> str:
        conn = self._ensure()
        with conn.transaction():
            c = conn
            (now,) = c.execute(f"SELECT {NOW}", self._p()).fetchone()
            row = c.execute("SELECT state, has_dependents FROM queuectl_jobs WHERE id = %s "
                            "FOR UPDATE", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"job {job_id} not found")
            state, has_dependents = row
            if state in ("pending", "failed"):
                c.execute(SQL_CANCEL, {"now": now, "error": CANCELLED_ERROR, "id": job_id,
                                       "detail": json.dumps({"error": CANCELLED_ERROR})})
                if has_dependents:
                    self._settle(c, [job_id])
                return "cancelled"
            if state == "processing":
                c.execute("UPDATE queuectl_jobs SET cancel_requested = true WHERE id = %s",
                          (job_id,))
                return "cancelling"
            raise Conflict(f"job {job_id} is {state}; there is nothing to cancel")

    def cancel_requested(self, job_id: str) -> bool:
        rows = self._rows("SELECT cancel_requested FROM queuectl_jobs WHERE id = %s",
                          (job_id,))
        return bool(rows and rows[0][0])

    def queues(self) -> list[dict]:
        return queue_rows(self._rows("SELECT queue, state, count(*) FROM queuectl_jobs "
                                     "GROUP BY queue, state"),
                          self._rows("SELECT name, paused, max_running FROM queuectl_queues"))

    def set_queue(self, name: str, *, paused=None, limit=None) -> None:
        self._x("INSERT INTO queuectl_queues (name, paused, max_running) "
                "VALUES (%(name)s, COALESCE(%(paused)s::boolean, false), COALESCE(%(limit)s::bigint, 0)) "
                "ON CONFLICT (name) DO UPDATE SET "
                "paused = COALESCE(%(paused)s::boolean, queuectl_queues.paused), "
                "max_running = COALESCE(%(limit)s::bigint, queuectl_queues.max_running)",
                {"name": name, "paused": paused, "limit": limit})
        self._notify("queue")          # a resumed queue or a raised limit: look again

    def held_by(self, worker_id: str) -> list[Job]:
        rows = self._rows(f"SELECT {JOB_COLS} FROM queuectl_jobs WHERE state = 'processing' "
                          "AND worker_id = %s ORDER BY started_at", (worker_id,))
        return [Job(*r) for r in rows]

    def rescue_expired(self, decide) -> list[Job]:
        (seen,) = self._rows(f"SELECT {NOW}", self._p())[0]
        forget = seen - STALE_WORKER_TTL
        (due,) = self._rows(
            f"SELECT EXISTS ({SQL_EXPIRED}) OR EXISTS (SELECT 1 FROM queuectl_workers "
            "WHERE expires_at < %(forget)s::bigint)", {"seen": seen, "forget": forget})[0]
        if not due:
            return []
        rescued = []
        with self._tx() as (c, now):
            # Rows of dead workers are kept a while (they still say which
            # workers were asked to stop), then forgotten.
            c.execute("DELETE FROM queuectl_workers WHERE expires_at < %s", (forget,))
            rows = c.execute(SQL_EXPIRED + " FOR UPDATE SKIP LOCKED", {"seen": seen}).fetchall()
            for row in rows:
                job = Job(*row[:-2])
                # A job being cancelled is not retried when its worker is lost.
                decision = CANCEL if row[-1] else decide(job)
                state, event, run_at, finished = ending(decision, job, now)
                error = CANCELLED_ERROR if row[-1] else rescue_error(job, seen)
                cur = c.execute(SQL_RESCUE, {
                    "state": state, "now": now, "finished": finished, "run_at": run_at,
                    "error": error, "id": job.id, "worker": job.worker_id,
                    "attempts": job.attempts, "event": event,
                    "detail1": json.dumps({"error": error}),
                    "detail2": json.dumps({"error": error, "run_at": iso(run_at)}
                                          if state == "failed" else {"error": error})})
                if cur.rowcount != 2:
                    continue
                if row[-2] and state != "failed":
                    self._settle(c, [job.id])
                job.state, job.run_at, job.last_error = state, run_at, error
                rescued.append(job)
        if rescued:
            self._notify("rescued")
        return rescued

    def dlq_retry(self, job_id: str) -> None:
        cur = self._x(SQL_DLQ_RETRY, self._p(id=job_id, queue=None, exit_code=None))
        if cur.rowcount != 1:
            rows = self._rows("SELECT state FROM queuectl_jobs WHERE id = %s", (job_id,))
            if not rows:
                raise NotFound(f"job {job_id} not found")
            raise Conflict(f"job {job_id} is not in the DLQ (state: {rows[0][0]})")
        self._notify("dlq_retry")

    def dlq_retry_all(self, queue=None, exit_code=None) -> int:
        n = self._x(SQL_DLQ_RETRY, self._p(id=None, queue=queue, exit_code=exit_code)).rowcount
        if n:
            self._notify("dlq_retry")
        return n

    # ------------------------------------------------------------ schedules
    def add_schedule(self, name, cron, tz, job, next_after, replace=False) -> int:
        with self._tx() as (c, now):
            first = next_after(now)
            conflict = ("DO UPDATE SET cron = EXCLUDED.cron, tz = EXCLUDED.tz, job = EXCLUDED.job, "
                        "next_run_at = EXCLUDED.next_run_at, last_run_at = NULL, "
                        "created_at = EXCLUDED.created_at" if replace else "DO NOTHING")
            cur = c.execute("INSERT INTO queuectl_schedules (name, cron, tz, job, next_run_at, "
                            "created_at) VALUES (%s, %s, %s, %s, %s, %s) "
                            f"ON CONFLICT (name) {conflict}",
                            (name, cron, tz, job, first, now))
            if cur.rowcount != 1:
                raise Conflict(f"schedule {name} already exists (remove it first, or "
                               "use --replace)")
        return first

    def schedules(self) -> list[dict]:
        return [schedule_dict(*r) for r in self._rows(
            "SELECT name, cron, tz, job, next_run_at, last_run_at FROM queuectl_schedules "
            "ORDER BY name")]

    def remove_schedule(self, name: str) -> None:
        if self._x("DELETE FROM queuectl_schedules WHERE name = %s", (name,)).rowcount != 1:
            raise NotFound(f"schedule {name} not found")

    def fire_schedules(self, next_after, make_job) -> tuple:
        (due,) = self._rows(f"SELECT min(next_run_at) <= {NOW} FROM queuectl_schedules",
                            self._p())[0]
        if not due:
            return [], []
        fired, failed = [], []
        with self._tx() as (c, now):
            # A schedule another worker is firing is skipped; one it has fired
            # no longer matches (its next_run_at moved past now).
            for name, cron, tz, job, at in c.execute(
                    "SELECT name, cron, tz, job, next_run_at FROM queuectl_schedules "
                    "WHERE next_run_at <= %s ORDER BY next_run_at, name "
                    "FOR UPDATE SKIP LOCKED", (now,)).fetchall():
                job_id = firing_id(name, at)
                try:
                    following = next_after(cron, tz, now)
                    new = make_job(job, job_id)
                except QueueError as e:
                    failed.append((name, str(e)))       # the others still fire
                    continue
                c.execute("UPDATE queuectl_schedules SET next_run_at = %s, last_run_at = %s "
                          "WHERE name = %s", (following, at, name))
                if c.execute(SQL_ENQUEUE_SKIP, self._enqueue_params([new])).fetchall():
                    fired.append(job_id)
        return fired, failed

    # ------------------------------------------------------------ jobs: reads
    def get_job(self, job_id: str, with_output: bool = False) -> Job:
        cols = JOB_COLS + (", output, output_truncated" if with_output else "")
        rows = self._rows(f"SELECT {cols} FROM queuectl_jobs WHERE id = %s", (job_id,))
        if not rows:
            raise NotFound(f"job {job_id} not found")
        job = Job(*rows[0])
        job.after = self._after_of([job_id]).get(job_id, [])
        return job

    _FILTER = ("(%(state)s::text IS NULL OR state = %(state)s::text) AND "
               "(%(like)s::text IS NULL OR id ILIKE %(like)s::text ESCAPE '\\' "
               "OR command ILIKE %(like)s::text ESCAPE '\\')")

    def list_jobs(self, state: "str | None" = None, limit: int = 0, *, offset: int = 0,
                  search: "str | None" = None, newest_first: bool = False) -> list[Job]:
        rows = self._rows(
            f"SELECT {JOB_COLS} FROM queuectl_jobs WHERE {self._FILTER} "
            f"ORDER BY seq {'DESC' if newest_first else ''} "
            "LIMIT %(limit)s OFFSET %(offset)s",
            {"state": state, "like": like_pattern(search) if search else None,
             "limit": limit if limit > 0 else None, "offset": offset})
        return [Job(*r) for r in rows]

    def count_jobs(self, state: "str | None" = None, search: "str | None" = None) -> int:
        return self._rows(f"SELECT count(*) FROM queuectl_jobs WHERE {self._FILTER}",
                          {"state": state,
                           "like": like_pattern(search) if search else None})[0][0]

    # Two transactions' events can commit out of seq order; an event is
    # visible well within this long after its `at` (a statement's own time).
    commit_lag_ms = 5000

    def now_ms(self) -> int:
        return self._rows(f"SELECT {NOW}", self._p())[0][0]

    def attempt_ends(self, since_ms=None, after_seq=None, limit: int = 0) -> list[tuple]:
        where = ["e.event = ANY(%(events)s::text[])"]
        if since_ms is not None:
            where.append("e.seq >= %(from_seq)s::bigint AND e.at >= %(since)s::bigint")
        if after_seq is not None:
            where.append("e.seq > %(after)s::bigint")
        return self._rows(
            "SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail "
            "FROM queuectl_events e JOIN queuectl_jobs j ON j.id = e.job_id "
            f"WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT %(limit)s",
            {"events": list(ENDING_EVENTS), "since": since_ms, "after": after_seq,
             "limit": limit if limit > 0 else None,
             "from_seq": None if since_ms is None else self._seq_since(since_ms)})

    def _seq_since(self, since_ms: int) -> int:
        return first_seq_at(
            self._rows("SELECT min(seq), max(seq) FROM queuectl_events")[0],
            lambda s: next(iter(self._rows("SELECT at FROM queuectl_events WHERE seq >= %s "
                                           "ORDER BY seq LIMIT 1", (s,))), (None,))[0],
            since_ms)

    def event_counts(self, since_ms: int, bucket_ms: int) -> list[tuple]:
        return self._rows(
            "SELECT (at - %(since)s::bigint) / %(bucket)s::bigint, event, "
            "worker_id IS NOT NULL, count(*) FROM queuectl_events "
            "WHERE seq >= %(from_seq)s::bigint AND at >= %(since)s::bigint "
            "AND event = ANY(%(events)s::text[]) GROUP BY 1, 2, 3",
            {"since": since_ms, "bucket": bucket_ms, "events": list(ENDING_EVENTS),
             "from_seq": self._seq_since(since_ms)})

    def recent_failures(self, limit: int, since_ms: int) -> list[tuple]:
        return self._rows(
            "SELECT e.seq, e.job_id, j.queue, e.event, e.at, e.worker_id, e.detail "
            "FROM queuectl_events e JOIN queuectl_jobs j ON j.id = e.job_id "
            "WHERE e.seq >= %s AND e.at >= %s AND (e.event = 'lease_expired' OR e.event IN "
            "('retry_scheduled', 'dead') AND e.worker_id IS NOT NULL) "
            "ORDER BY e.seq DESC LIMIT %s", (self._seq_since(since_ms), since_ms, limit))

    def max_event_seq(self) -> int:
        return self._rows("SELECT coalesce(max(seq), 0) FROM queuectl_events")[0][0]

    def counts(self) -> dict:
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._rows("SELECT state, count(*) FROM queuectl_jobs GROUP BY state"))
        return counts

    def history(self, job_id: "str | None" = None, limit: int = 0) -> list[dict]:
        rows = self._rows(
            "SELECT job_id, event, attempt, at, worker_id, detail FROM queuectl_events "
            "WHERE %(job)s::text IS NULL OR job_id = %(job)s::text "
            "ORDER BY seq DESC LIMIT %(limit)s",
            {"job": job_id, "limit": limit if limit > 0 else None})
        return [event_dict(*row) for row in reversed(rows)]

    def has_unfinished(self, queues: "list[str] | None" = None) -> bool:
        # Running jobs first (a small partial index); then waiting ones
        # outside paused queues. See SQLiteStore.has_unfinished.
        params = {"queues": list(queues) if queues else None}
        only = "AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))"
        if self._rows(f"SELECT 1 FROM queuectl_jobs WHERE state = 'processing' {only} LIMIT 1",
                      params):
            return True
        return bool(self._rows(
            "SELECT 1 FROM queuectl_jobs WHERE state IN ('pending', 'failed') AND queue NOT IN "
            f"(SELECT name FROM queuectl_queues WHERE paused) {only} LIMIT 1", params))

    def next_due_in(self, queues: "list[str] | None" = None) -> "float | None":
        (wait,) = self._rows(
            f"SELECT min(run_at) - {NOW} FROM queuectl_jobs "
            "WHERE state IN ('pending', 'failed') AND NOT blocked "
            "AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[])) "
            f"AND queue NOT IN ({SQL_BLOCKED})",
            self._p(queues=list(queues) if queues else None))[0]
        if wait is None:
            return None
        return max(0.0, wait / 1000)

    def wait_for_change(self, timeout: float, wake_fds=()) -> None:
        conn = self._ensure()
        try:
            if not self._listening:
                conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self.channel)))
                self._listening = True
            # Anything that arrived while we were busy wakes us at once.
            woke = False
            for _ in conn.notifies(timeout=0):
                woke = True
            if woke:
                return
            ready = select.select([conn.fileno(), *wake_fds], [], [], max(0.0, timeout))[0]
            if conn.fileno() in ready:
                for _ in conn.notifies(timeout=0):     # consume what arrived
                    pass
        except psycopg.Error as e:
            raise self._fail(e) from None

    def _drain_notifies(self) -> None:
        """Drop wake-ups queued while a job ran (they would pile up in memory)."""
        if self._listening and self.conn is not None:
            try:
                for _ in self.conn.notifies(timeout=0):
                    pass
            except psycopg.Error as e:
                raise self._fail(e) from None

    # ------------------------------------------------------------ workers
    def register_worker(self, worker_id: str, host: str, pid: int,
                        lease_timeout: float) -> None:
        conn = self._ensure()
        try:
            conn.execute("SELECT set_config('application_name', %s, false)",
                         (f"queuectl worker {worker_id}"[:63],))
            (now,) = conn.execute(
                f"INSERT INTO queuectl_workers (id, host, pid, started_at, heartbeat_at, "
                f"expires_at) VALUES (%(worker)s, %(host)s, %(pid)s, {NOW}, {NOW}, "
                f"{NOW} + %(lease)s::bigint) RETURNING started_at",
                self._p(worker=worker_id, host=host, pid=pid,
                        lease=round(lease_timeout * 1000))).fetchone()
        except psycopg.Error as e:
            raise self._fail(e) from None
        self._identity = (worker_id, host, pid, now)

    def deregister_worker(self, worker_id: str) -> None:
        self._identity = None
        self._x("DELETE FROM queuectl_workers WHERE id = %s", (worker_id,))
        self._notify("worker_left")     # its job, if any, can be rescued now

    def stop_requested(self, worker_id: str) -> bool:
        rows = self._rows("SELECT stop_requested FROM queuectl_workers WHERE id = %s",
                          (worker_id,))
        return bool(rows and rows[0][0])

    def request_stop(self) -> list[str]:
        rows = self._rows(
            f"UPDATE queuectl_workers SET stop_requested = true "
            f"WHERE expires_at >= {NOW} RETURNING id, started_at", self._p())
        if rows:
            self._notify("stop")
        return [r[0] for r in sorted(rows, key=lambda r: (r[1], r[0]))]

    def active_workers(self) -> list[dict]:
        rows = self._rows(
            f"SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.stop_requested, "
            "(SELECT j.id FROM queuectl_jobs j WHERE j.state = 'processing' "
            f" AND j.worker_id = w.id LIMIT 1), {NOW} "
            f"FROM queuectl_workers w WHERE w.expires_at >= {NOW} "
            "ORDER BY w.started_at, w.id", self._p())
        return [{"id": r[0], "host": r[1], "pid": r[2], "started_at": iso(r[3]),
                 "heartbeat_at": iso(r[4]), "heartbeat_age": round((r[7] - r[4]) / 1000, 3),
                 "stopping": bool(r[5]), "job_id": r[6]} for r in rows]

    # ------------------------------------------------------------ config
    def config(self) -> dict:
        values = cfgmod.defaults()
        for key, raw in self._rows("SELECT key, value FROM queuectl_config"):
            if key in values:
                values[key] = json.loads(raw)
        return values

    def config_set(self, key: str, value) -> None:
        self._x("INSERT INTO queuectl_config (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (key, json.dumps(value)))
