"""End-to-end: migrate, export and import (moving a queue between databases)."""

from __future__ import annotations

import json
import subprocess

import pytest

from e2e_util import QUEUECTL, assert_one_error_line, counts, history, snapshot

pytestmark = pytest.mark.e2e


def _source(tmp_path) -> str:
    """An SQLite queue with a completed, a dead, a delayed and a pending job."""
    src = str(tmp_path / "source.db")
    def q(*args, **kw):
        return subprocess.run(QUEUECTL + ["--db", src, *args], capture_output=True,
                              text=True, timeout=60, check=True, **kw).stdout
    q("enqueue", json.dumps({"id": "ok", "command": "echo done"}))
    q("enqueue", json.dumps({"id": "bad", "command": "echo oops >&2; exit 4",
                             "max_retries": 0, "priority": 3}))
    q("worker", "start", "--burst", "--quiet")
    q("enqueue", json.dumps({"id": "later", "command": "true", "delay": 3600,
                             "timeout": 5}))
    q("enqueue", json.dumps({"id": "next", "command": "echo 'ünï'"}))
    return q("export")


def test_export_import_round_trip_into_either_backend(cli, tmp_path):
    exported = _source(tmp_path)
    lines = [json.loads(x) for x in exported.splitlines()]
    assert [j["id"] for j in lines] == ["ok", "bad", "later", "next"]
    assert lines[0]["output"] == "done\n" and lines[1]["state"] == "dead"
    assert cli.ok("import", input=exported) == "imported 4 jobs\n"
    assert cli.ok("export") == exported
    assert counts(cli) == {"pending": 2, "processing": 0, "completed": 1, "failed": 0,
                           "dead": 1, "cancelled": 0}
    assert [e.get("imported") for e in history(cli, "bad")] == [True]
    # The imported jobs are live: the pending one runs, the dead one can be retried.
    cli.ok("dlq", "retry", "bad")
    assert cli.job("bad")["state"] == "pending" and cli.job("bad")["attempts"] == 0
    assert cli.ok("export", "--state", "completed").count("\n") == 1


def test_import_is_all_or_nothing(cli, tmp_path):
    cli.enqueue(id="next", command="true")
    exported = _source(tmp_path)
    before = snapshot(cli)
    # "next" exists already: exit 1, nothing written.
    line = assert_one_error_line(cli.run("import", input=exported), 1)
    assert "next" in line
    assert snapshot(cli) == before
    # A malformed line: exit 2, naming the line.
    bad = exported + '{"id": "x", "command": "true", "state": "sleeping"}\n'
    line = assert_one_error_line(cli.run("import", input=bad), 2)
    assert "line 5" in line and "state" in line
    assert snapshot(cli) == before


def test_a_processing_job_is_imported_as_pending(cli):
    record = {"id": "was-running", "command": "true", "state": "processing",
              "attempts": 1, "max_retries": 2}
    assert cli.ok("import", "-", input=json.dumps(record) + "\n") == "imported 1 jobs\n"
    job = cli.job("was-running")
    assert job["state"] == "pending" and job["attempts"] == 1
    assert job["worker_id"] is None and job["lease_expires_at"] is None
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    assert cli.job("was-running")["state"] == "completed"


def test_migrate_reports_the_schema_version(cli):
    from queuectl.store.sqlite import SCHEMA_VERSION
    assert cli.ok("migrate").startswith(f"schema version {SCHEMA_VERSION}: ")
    assert cli.ok("migrate").startswith(f"schema version {SCHEMA_VERSION}: ")   # idempotent
    assert counts(cli)["pending"] == 0
