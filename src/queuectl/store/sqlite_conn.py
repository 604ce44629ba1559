"""The SQLite dialect's connection: opening and checking the file, PRAGMAs,
migrations, the write transaction with its busy-lock retry, and the primitives
store/reads.py declares. `SQLiteStore` (sqlite.py) adds the operations.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from queuectl.clock import SystemClock
from queuectl.errors import StoreError
from queuectl.store.base import (
    migrations,
)
from queuectl.store.core import APP, SCHEMA_VERSION, SQLStore
from queuectl.store.queries import load_queries
from queuectl.store.watch import LeaseWatch

TYPE_CHECKING = False          # (typing is not imported at run time: a CLI start pays for it)
if TYPE_CHECKING:
    from typing import Any

SQL = load_queries("sqlite")

BUSY_TIMEOUT = 30.0      # seconds a writer waits for the lock before failing


class SQLiteBase(SQLStore):
    """One SQLite file: connection, transactions, migrations."""

    NO_LIMIT = -1
    sql = SQL

    def __init__(self, path: str, *, clock=None, worker: bool = False, create: bool = True):
        self.path = self.where = path
        self.create = create
        self.clock = clock or SystemClock()
        self._identity = None                  # (host, pid, started) once registered
        self._watch = LeaseWatch()       # what the rescue has watched, and since when
        self._data_version = None
        self._file_id: "tuple[int, int] | None" = None
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
            c.execute(SQL["sync_normal"] if worker else SQL["sync_full"])
            c.execute(SQL["foreign_keys_on"])
            if version != SCHEMA_VERSION:
                self._migrate()
        except sqlite3.Error as e:
            raise self._translate(e) from None

    def _schema_version(self) -> int:
        """0 for an empty database; raises StoreError for a foreign file."""
        try:
            rows = dict(self.conn.execute(SQL["meta"]))
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if "no such table" in msg:
                tables = {r[0] for r in self.conn.execute(SQL["tables"])}
                if "meta" in tables:
                    # Another process created the schema between our two reads:
                    # read it again (once; a second miss is a real error).
                    return self._check(dict(self.conn.execute(SQL["meta"])))
                if tables:
                    raise StoreError(self._foreign()) from None
                return 0
            if "not a database" in msg or "encrypted" in msg:
                raise StoreError(f"{self.path} is not a queuectl database "
                                 "(not an SQLite file); refusing to touch it") from None
            raise
        return self._check(rows)

    def _foreign(self) -> str:
        return (f"{self.path} is an SQLite database but not a queuectl database; "
                "refusing to touch it")

    def _check(self, meta: dict) -> int:
        return self._check_meta(meta, self._foreign())

    def migrate(self) -> int:
        try:
            if self._retry_busy(self._schema_version) != SCHEMA_VERSION:
                self._migrate()
        except sqlite3.Error as e:
            raise self._translate(e) from None
        return SCHEMA_VERSION

    def _migrate(self) -> None:
        c = self.conn
        if self._read("journal_mode")[0][0].lower() != "wal":
            self._retry_busy(c.execute, SQL["set_wal"])
        # Table rebuilds (new CHECKs) drop and rename tables that foreign keys
        # point at: the keys are off for the migration (a no-op inside a
        # transaction, hence here) and checked before the commit.
        c.execute(SQL["foreign_keys_off"])
        try:
            self._retry_busy(c.execute, SQL["begin_immediate"])
        except BaseException:
            c.execute(SQL["foreign_keys_on"])
            raise
        try:
            version = self._schema_version()        # again, now under the write lock
            for number, script in migrations("sqlite"):
                if number > version:
                    for stmt in _statements(script):
                        c.execute(stmt)
            if c.execute(SQL["foreign_key_check"]).fetchone() is not None:
                raise StoreError(f"database {self.path}: migration broke a foreign key; "
                                 "nothing was changed")
            c.execute(SQL["set_meta"], (APP, str(SCHEMA_VERSION)))
            c.execute(SQL["commit"])
        except BaseException:
            c.execute(SQL["rollback"])
            raise
        finally:
            c.execute(SQL["foreign_keys_on"])

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
    def _write(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """A short write transaction that takes the lock up front (BEGIN IMMEDIATE)."""
        c = self.conn
        self._retry_busy(c.execute, SQL["begin_immediate"])
        try:
            # The time is read once the lock is ours, so waiting for it never
            # shortens a lease or back-dates a change.
            yield c, self._now()
            c.execute(SQL["commit"])
        except BaseException as e:
            if c.in_transaction:
                try:
                    c.execute(SQL["rollback"])
                except sqlite3.Error:
                    pass
            if isinstance(e, sqlite3.Error):
                raise self._translate(e) from None
            raise

    def _read(self, name: str, params: Any = ()) -> list:
        return self._retry_busy(lambda: self.conn.execute(SQL[name], params).fetchall())

    def _rows(self, name: str, params: Any = None) -> list:
        return self._read(name, () if params is None else params)

    def _run(self, name: str, params: Any = None) -> int:
        with self._write() as (c, _):
            return c.execute(SQL[name], () if params is None else params).rowcount

    def _many(self, c: Any, name: str, rows: list) -> None:
        c.executemany(SQL[name], rows)

    def _p(self, **params: Any) -> dict:
        params["now"] = self._now()
        return params

    @staticmethod
    def _list(values: "Sequence[Any]") -> str:
        return json.dumps(list(values))

    @staticmethod
    def _bool(value: Any) -> int:
        return int(bool(value))

    def _is_duplicate(self, e: BaseException) -> bool:
        return isinstance(e, sqlite3.IntegrityError) and "UNIQUE" in str(e)

    def _retry_busy(self, fn: Callable, *args: Any) -> Any:
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

    def now_ms(self) -> int:
        return self._now()



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
