"""The PostgreSQL dialect: workers on many hosts sharing one database.

Every operation a worker repeats is one statement in autocommit mode (a
data-modifying CTE changes the job and appends its event atomically), so a
job costs one round trip: finish and claim the next (`finish_claim`). The claim
takes the best ready row with `FOR UPDATE SKIP LOCKED`, so concurrent workers
never wait for each other or take the same job. All times come from the
database server's clock, never from a host's, unless a test injects a clock.
Idle workers sleep on LISTEN until an enqueue, a retry, a rescue or a stop
request sends a NOTIFY, and poll as a fallback.

A connection that breaks is reopened on the next call, with backoff; the
error in between is a `StoreError` the worker reports and retries.

What is the same on SQLite lives in store/core.py; the statements are in
sql/postgres.sql.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from queuectl.errors import DuplicateJob, InvalidInput, LeaseLost, StoreError
from queuectl.model import Decision, Job, NewJob, Outcome, options_json
from queuectl.store.base import CANCELLED_ERROR, ending, migrations, skip_existing_jobs
from queuectl.store.core import APP, JOB_COLS, SCHEMA_VERSION, STALE_WORKER_TTL, SQLStore
from queuectl.store.queries import load_queries

TYPE_CHECKING = False          # (typing is not imported at run time: a CLI start pays for it)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PostgresStore", "describe_url", "APP", "SCHEMA_VERSION", "STALE_WORKER_TTL",
           "JOB_COLS"]

SQL = load_queries("postgres")

MIGRATION_LOCK = 0x71756575_6374_6c   # advisory lock key taken while migrating
RECONNECT_MAX = 5.0                   # longest pause between reconnection attempts (s)


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


class _Deadlock(StoreError):
    """A transaction lost a deadlock (the caller may run it again)."""


class PostgresStore(SQLStore):
    idle_wait = 5.0     # NOTIFY wakes idle workers; polling is only the fallback
    sql = SQL

    def __init__(self, url: str, *, clock=None, worker: bool = False, create: bool = True):
        self.url = url
        self.where = describe_url(url)
        self.clock = clock               # None: the database's clock
        self.worker = worker
        self.create = create
        self.temporary = False           # reading a database that has no queue yet
        self._identity = None            # (worker id, host, pid, started)
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
        self.conn: "psycopg.Connection | None" = None
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
            conn = psycopg.connect(make_conninfo("", **self._params), autocommit=True)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to {self.where}: {_one_line(e)}") from None
        try:
            if self.worker:
                # Worker state changes may be lost in a server crash: the
                # lease rescue runs such a job again (docs/ARCHITECTURE.md).
                conn.execute(SQL["async_commit"])
            if self.temporary:
                conn.execute(SQL["use_temporary_schema"])
            if self._identity is not None:
                conn.execute(SQL["application_name"],
                             (f"queuectl worker {self._identity[0]}"[:63],))
        except psycopg.Error as e:
            conn.close()
            raise StoreError(f"{self.where}: {_one_line(e)}") from None
        self.conn = conn
        self._listening = False

    def _ensure(self) -> psycopg.Connection:
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
        assert self.conn is not None
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
        if isinstance(e, psycopg.errors.DeadlockDetected):
            return _Deadlock(f"{self.where}: {_one_line(e)}")
        return StoreError(f"{self.where}: {_one_line(e)}")

    def _x(self, name: str, params: Any = None) -> psycopg.Cursor:
        """Execute one statement (autocommit) and return its cursor."""
        conn = self._ensure()
        try:
            return conn.execute(SQL[name], params)
        except psycopg.Error as e:
            raise self._fail(e) from None

    def _rows(self, name: str, params: Any = None) -> list:
        return self._x(name, params).fetchall()

    def _run(self, name: str, params: Any = None) -> int:
        return self._x(name, params).rowcount

    def _many(self, c: Any, name: str, rows: list) -> None:
        with c.cursor() as cur:
            cur.executemany(SQL[name], rows)

    @contextmanager
    def _write(self) -> Iterator[tuple[psycopg.Connection, int]]:
        """A transaction; yields (connection, now in epoch ms)."""
        conn = self._ensure()
        try:
            with conn.transaction():
                (now,) = conn.execute(SQL["now"], self._p()).fetchall()[0]
                yield conn, now
        except psycopg.Error as e:
            raise self._fail(e) from None

    _tx = _write

    def _p(self, **params: Any) -> dict:
        params["now"] = self.clock.now_ms() if self.clock is not None else None
        return params

    @staticmethod
    def _list(values: "Sequence[Any]") -> list:
        return list(values)

    @staticmethod
    def _text(value: "str | None") -> "str | None":
        return _text(value)

    def _is_duplicate(self, e: BaseException) -> bool:
        return isinstance(e, psycopg.errors.UniqueViolation)

    def _notify(self, what: str) -> None:
        self._x("notify", (self.channel, what))

    def _notify_in(self, c: Any, what: str) -> None:
        c.execute(SQL["notify"], (self.channel, what))

    def _lock_dependents(self, c: Any, ids: list) -> None:
        # Rows are locked in seq order everywhere (a dependency always has a
        # smaller seq than its dependents), so enqueue, cancel, rescue and
        # settle cannot deadlock.
        c.execute(SQL["lock_dependents"], {"ids": ids})

    def _insert_deps(self, c: Any, deps: list) -> None:
        c.execute(SQL["add_dependencies"], {"jobs": [j for j, _ in deps],
                                            "deps": [d for _, d in deps]})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    # ------------------------------------------------------------ schema
    def _channel_name(self) -> str:
        (schema,) = self._rows("current_schema")[0]
        name = f"queuectl_{schema or 'public'}"
        if len(name.encode("utf-8")) > 63:      # identifiers are at most 63 bytes
            import hashlib
            name = "queuectl_" + hashlib.sha1(name.encode("utf-8")).hexdigest()
        return name

    def _schema_version(self) -> int:
        """0 if this schema has no queue yet; refuses foreign or newer ones."""
        (found,) = self._rows("meta_exists")[0]
        if not found:
            return 0
        return self._check_meta(dict(self._rows("meta")),
                                f"{self.where}: table queuectl_meta does not belong to "
                                "queuectl; refusing to touch it")

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version. Safe to race:
        concurrent callers queue on an advisory lock and re-read the version."""
        conn = self._ensure()
        try:
            # A session lock taken *before* the transaction: a transaction that
            # began before the winner committed would not see its tables.
            conn.execute(SQL["lock_migrations"], (MIGRATION_LOCK,))
            try:
                with conn.transaction():
                    version = self._schema_version()
                    for number, script in migrations("postgres"):
                        if number > version:
                            conn.execute(script)
                    conn.execute(SQL["set_meta"], (APP, str(SCHEMA_VERSION)))
            finally:
                if not conn.broken:
                    conn.execute(SQL["unlock_migrations"], (MIGRATION_LOCK,))
        except psycopg.Error as e:
            raise self._fail(e) from None
        return SCHEMA_VERSION

    def _use_temporary_schema(self) -> None:
        """A read-only command on a database without a queue reads an empty,
        session-private copy of the schema instead of creating tables."""
        self.temporary = True
        conn = self._ensure()
        try:
            conn.execute(SQL["use_temporary_schema"])
            (found,) = conn.execute(SQL["meta_exists"]).fetchall()[0]
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
            timeouts=[float(j.timeout or 0) for j in jobs],    # (filled in: never None)
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
                conn.execute(SQL["enqueue"], params)
            else:
                # One transaction: insert what is new, then check that every id
                # that existed has the same command (else undo it all).
                with conn.transaction():
                    inserted = {r[0] for r in conn.execute(SQL["enqueue_skip_existing"],
                                                           params)}
                    rest = [j for j in jobs if j.id not in inserted]
                    found: dict = dict(conn.execute(SQL["existing_commands"], {
                        "ids": [j.id for j in rest]}).fetchall()) if rest else {}
                    _, existed = skip_existing_jobs(rest, found)
        except psycopg.errors.UniqueViolation:
            raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None
        except psycopg.Error as e:
            raise self._fail(e) from None
        return existed

    def _enqueue_after(self, conn: psycopg.Connection, jobs: list[NewJob],
                       skip_existing: bool) -> list[str]:
        """enqueue() of a batch with dependencies: one transaction."""
        existed: list[str] = []
        with conn.transaction():
            (now,) = conn.execute(SQL["now"], self._p()).fetchall()[0]
            if skip_existing:
                found: dict = dict(conn.execute(SQL["existing_commands"], {
                    "ids": [j.id for j in jobs]}).fetchall())
                jobs, existed = skip_existing_jobs(jobs, found)
            blocked, deps, failed = self._plan(conn, jobs)
            if jobs:
                conn.execute(SQL["enqueue"], self._enqueue_params(jobs, blocked))
            self._add_deps(conn, deps, failed, now)
        return existed

    def _insert_if_new(self, c: Any, job: NewJob, now: int) -> bool:
        return bool(c.execute(SQL["enqueue_skip_existing"],
                              self._enqueue_params([job])).fetchall())

    def _retrying(self, fn: Callable, retry_duplicate: bool = False, ids: Sequence = (),
                  tries: int = 3) -> Any:
        """fn() (one transaction), again if it lost a deadlock, or (for
        --skip-existing) if a concurrent enqueue inserted one of its ids
        between our look and our insert."""
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                return fn()
            except _Deadlock:
                if last:
                    raise
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

    def cancel(self, job_id: str) -> str:
        return self._retrying(lambda: SQLStore.cancel(self, job_id))

    def _settle_now(self, ended: list) -> None:
        """_settle in a transaction of its own (after an autocommit finish)."""
        with self._write() as (c, now):
            self._settle(c, ended, now)

    def settle_dependents(self) -> int:
        """Settle dependents whose dependencies all ended but which are still
        blocked: a worker that died between a job's finish and the settling
        transaction that follows it leaves them so. Returns how many jobs'
        dependents were settled."""
        unblocked = self._run("unblock_all")
        if unblocked:
            self._notify("unblocked")
        ended = [r[0] for r in self._rows("unsettled")]
        if ended:
            with self._write() as (c, now):
                self._settle(c, ended, now)
        return unblocked + len(ended)

    # ------------------------------------------------------------ claim and finish
    def claim(self, worker_id: str, lease_timeout: float,
              queues: "list[str] | None" = None) -> "Job | None":
        params = self._p(worker=worker_id, lease=round(lease_timeout * 1000),
                         queues=list(queues) if queues else None)
        rows = None
        if not self._limited:
            # Refuses to claim if a limit appeared since we last looked ...
            rows = self._rows("claim_unlimited", params)
            if not rows:
                self._limits_checked = -1e9        # ... so look again now
        if rows is None or not rows and self._limited:
            # Concurrency limits are counted under a lock on the limited
            # queues' rows, so concurrent claims cannot both see room for one.
            with self._write() as (c, _):
                c.execute(SQL["lock_limited_queues"])
                rows = c.execute(SQL["claim_locked"], params).fetchall()
        return Job(*rows[0]) if rows else None

    @property
    def _limited(self) -> bool:
        """Does any queue have a concurrency limit? (Looked up every few seconds.)"""
        now = time.monotonic()
        if now >= self._limits_checked + 2.0:
            (self._has_limits,) = self._rows("any_limit")[0]
            self._limits_checked = now
        return self._has_limits

    def finish(self, job: Job, outcome: Outcome, decision: Decision,
               next_lease: "float | None" = None,
               queues: "list[str] | None" = None) -> "Job | None":
        state, event, _, _ = ending(decision, job, 0)
        error = None if state == "completed" else _text(outcome.error)
        params = self._p(
            state=state, event=event, delay=round(decision.delay * 1000),
            exit_code=outcome.exit_code, error=error, output=_text(outcome.output) or None,
            truncated=bool(outcome.truncated), id=job.id, worker=job.worker_id,
            attempts=job.attempts, cancelled=CANCELLED_ERROR,
            duration=round(outcome.duration, 3))
        both = next_lease is not None and not self._limited
        if both and next_lease is not None:
            params.update(lease=round(next_lease * 1000),
                          queues=list(queues) if queues else None)
        done = self._x("finish_claim" if both else "finish", params).fetchone()
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

    def heartbeat(self, worker_id: str, job_id: "str | None", lease_timeout: float,
                  held: Sequence[str] = ()) -> bool:
        # (`held` is always empty here: this backend does not take jobs ahead.)
        lease = round(lease_timeout * 1000)
        if self._identity is not None and self._identity[0] == worker_id:
            # An upsert: a row swept as stale while we were frozen comes back.
            _, host, pid, started = self._identity
            self._x("beat_worker_upsert", self._p(worker=worker_id, host=host, pid=pid,
                                                  started=started, lease=lease))
        else:
            self._x("beat_worker", self._p(worker=worker_id, lease=lease))
        self._drain_notifies()
        if job_id is None:
            return True
        return self._run("renew_lease", self._p(job=job_id, worker=worker_id,
                                                lease=lease)) == 1

    # ------------------------------------------------------------ rescue
    def rescue_expired(self, decide: Callable[[Job], Decision]) -> list[Job]:
        (seen,) = self._rows("now", self._p())[0]
        forget = seen - STALE_WORKER_TTL
        (due,) = self._rows("any_expired", {"seen": seen, "forget": forget})[0]
        if not due:
            return []
        rescued = []
        with self._write() as (c, now):
            # Rows of dead workers are kept a while (they still say which
            # workers were asked to stop), then forgotten.
            c.execute(SQL["forget_workers"], {"forget": forget})
            for row in c.execute(SQL["expired"], {"seen": seen}).fetchall():
                job = self._rescue_job(c, now, row, seen, decide)
                if job:
                    rescued.append(job)
        if rescued:
            self._notify("rescued")
        return rescued

    # ------------------------------------------------------------ reads, waiting
    # Two transactions' events can commit out of seq order; an event is
    # visible well within this long after its `at` (a statement's own time).
    commit_lag_ms = 5000

    def now_ms(self) -> int:
        return self._rows("now", self._p())[0][0]

    def wait_for_change(self, timeout: float, wake_fds: Sequence[int] = ()) -> None:
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
            conn.execute(SQL["application_name"], (f"queuectl worker {worker_id}"[:63],))
            (now,) = conn.execute(SQL["insert_worker"], self._p(
                worker=worker_id, host=host, pid=pid,
                lease=round(lease_timeout * 1000))).fetchall()[0]
        except psycopg.Error as e:
            raise self._fail(e) from None
        self._identity = (worker_id, host, pid, now)

    def request_stop(self) -> list[str]:
        rows = self._rows("request_stop", self._p())
        if rows:
            self._notify("stop")
        return [r[0] for r in sorted(rows, key=lambda r: (r[1], r[0]))]
