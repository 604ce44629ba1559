"""A database made by an older queuectl is upgraded in place, data kept."""

from __future__ import annotations

import sqlite3

from queuectl.store import open_store
from queuectl.store.base import migrations
from queuectl.store.sqlite import SCHEMA_VERSION

OLD_JOB = ("old", "echo from v1", 3, 0, 1_700_000_000_000, 0.0, 1_700_000_000_000,
           1_700_000_000_000)


def _make_v1(backend: str, url: str) -> None:
    script = dict(migrations(backend))[1]
    if backend == "sqlite":
        conn = sqlite3.connect(url)
        conn.executescript(script)
        conn.execute("INSERT INTO meta VALUES ('app', 'queuectl'), ('schema_version', '1')")
        conn.execute("INSERT INTO jobs (id, command, max_retries, priority, run_at, timeout, "
                     "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", OLD_JOB)
        conn.execute("INSERT INTO events (job_id, event, attempt, at) "
                     "VALUES ('old', 'enqueued', 0, 1700000000000)")
        conn.commit()
        conn.close()
        return
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(script)
            conn.execute("INSERT INTO queuectl_meta VALUES ('app', 'queuectl'), "
                         "('schema_version', '1')")
            conn.execute("INSERT INTO queuectl_jobs (id, command, max_retries, priority, "
                         "run_at, timeout, created_at, updated_at) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", OLD_JOB)


def _version(backend: str, url: str) -> str:
    if backend == "sqlite":
        with sqlite3.connect(url) as conn:
            return conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                                ).fetchone()[0]
    import psycopg
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT value FROM queuectl_meta WHERE key = 'schema_version'"
                            ).fetchone()[0]


def test_a_version_1_database_is_upgraded_and_keeps_its_jobs(backend, db_url):
    _make_v1(backend, db_url)
    assert _version(backend, db_url) == "1"
    # Any command upgrades it (a read needs the new columns too) ...
    with open_store(db_url, create=False) as store:
        assert store.get_job("old").command == "echo from v1"
    assert _version(backend, db_url) == str(SCHEMA_VERSION)
    # ... and the old job runs as before, its history kept.
    with open_store(db_url) as store:
        old = store.get_job("old")
        assert old.options is None and old.queue == "default"
        if backend == "sqlite":
            assert [e["event"] for e in store.history("old")] == ["enqueued"]
        store.register_worker("w", "h", 1, 30)
        job = store.claim("w", 30)
        assert job.id == "old"
    assert _version(backend, db_url) == str(SCHEMA_VERSION)
