"""End-to-end: malformed input is rejected with exit 2, one error line, and
nothing written; config validation; database-path errors leave files untouched."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from e2e_util import EMPTY_COUNTS, assert_one_error_line, counts, history, snapshot

pytestmark = pytest.mark.e2e

OK = {"command": "true"}

# (label, payload text, a word the error must contain, e.g. the field's name)
MALFORMED = [
    ("not-json", "not json at all", "json"),
    ("truncated-json", '{"command": "true"', "json"),
    ("nan", '{"command": "true", "timeout": NaN}', ""),
    ("array", json.dumps([OK]), ""),
    ("string", json.dumps("echo hi"), ""),
    ("number", "42", ""),
    ("missing-command", json.dumps({"id": "x"}), "command"),
    ("empty-command", json.dumps({"command": ""}), "command"),
    ("blank-command", json.dumps({"command": "  \t "}), "command"),
    ("command-number", json.dumps({"command": 5}), "command"),
    ("unknown-field", json.dumps({**OK, "retries": 3}), "retries"),
    ("max-retries-string", json.dumps({**OK, "max_retries": "3"}), "max_retries"),
    ("max-retries-float", json.dumps({**OK, "max_retries": 1.5}), "max_retries"),
    ("max-retries-bool", json.dumps({**OK, "max_retries": True}), "max_retries"),
    ("max-retries-negative", json.dumps({**OK, "max_retries": -1}), "max_retries"),
    ("priority-string", json.dumps({**OK, "priority": "high"}), "priority"),
    ("priority-float", json.dumps({**OK, "priority": 1.5}), "priority"),
    ("id-empty", json.dumps({**OK, "id": ""}), "id"),
    ("id-space", json.dumps({**OK, "id": "has space"}), "id"),
    ("id-too-long", json.dumps({**OK, "id": "x" * 129}), "id"),
    ("run-at-garbage", json.dumps({**OK, "run_at": "next tuesday"}), "run_at"),
    ("run-at-number", json.dumps({**OK, "run_at": 1700000000}), "run_at"),
    ("run-at-and-delay", json.dumps({**OK, "run_at": "2030-01-01T00:00:00Z", "delay": 5}),
     "delay"),
    ("delay-negative", json.dumps({**OK, "delay": -1}), "delay"),
    ("timeout-negative", json.dumps({**OK, "timeout": -1}), "timeout"),
    ("timeout-not-a-duration", json.dumps({**OK, "timeout": "10 sec"}), "timeout"),
    ("delay-not-a-duration", json.dumps({**OK, "delay": "1h1h"}), "delay"),
]


@pytest.mark.backends("sqlite")   # rejected before any database is opened
@pytest.mark.parametrize("payload,word", [(p, w) for _, p, w in MALFORMED],
                         ids=[label for label, _, _ in MALFORMED])
def test_malformed_payload_is_rejected_and_nothing_written(cli, payload, word):
    line = assert_one_error_line(cli.run("enqueue", payload), 2)
    assert word.lower() in line.lower(), line
    assert counts(cli) == EMPTY_COUNTS
    assert cli.ok("history") == ""


def test_at_least_15_malformed_payloads():
    assert len(MALFORMED) >= 15


def test_valid_edge_payloads_are_accepted(cli):
    # The validator must not be over-eager: these are all fine.
    good = [
        {"command": "true", "id": "a" * 128},
        {"command": "true", "id": "A-z_0.9:x"},
        {"command": "true", "max_retries": 0, "priority": -5, "timeout": 0.5},
        {"command": "true", "run_at": "2030-01-01T00:00:00Z"},
        {"command": "true", "delay": 0},
    ]
    for payload in good:
        assert cli.ok("enqueue", json.dumps(payload)).startswith("enqueued ")
    assert len(cli.json("list")) == len(good)


def test_bulk_jsonl_with_bad_line_enqueues_nothing(cli):
    cli.enqueue(id="existing", command="true")
    before = snapshot(cli)
    lines = [json.dumps({"id": "ok1", "command": "true"}),
             json.dumps({"id": "ok2", "command": "true"}),
             json.dumps({"id": "bad3", "command": "true", "max_retries": "x"}),
             json.dumps({"id": "ok4", "command": "true"})]
    p = cli.run("enqueue", "-", input="\n".join(lines) + "\n")
    line = assert_one_error_line(p, 2)
    assert "line 3" in line and "max_retries" in line, line
    assert snapshot(cli) == before

    # A JSON syntax error on line 2 is reported as line 2.
    p = cli.run("enqueue", "-", input=lines[0] + "\n{oops\n" + lines[1] + "\n")
    line = assert_one_error_line(p, 2)
    assert "line 2" in line, line
    assert snapshot(cli) == before


def test_bulk_file_with_bad_line_enqueues_nothing(cli, tmp_path):
    f = tmp_path / "jobs.jsonl"
    f.write_text(json.dumps({"command": "true"}) + "\n" + json.dumps({"command": ""}) + "\n")
    before = snapshot(cli)
    line = assert_one_error_line(cli.run("enqueue", "--file", f), 2)
    assert "line 2" in line, line
    assert snapshot(cli) == before
    assert snapshot(cli)[0] == EMPTY_COUNTS


def test_bulk_array_with_bad_item_enqueues_nothing(cli):
    items = [{"id": "i1", "command": "true"}, {"id": "i2", "command": "true"},
             {"id": "i3", "command": "true", "bogus": 1}]
    before = snapshot(cli)
    line = assert_one_error_line(cli.run("enqueue", "-", input=json.dumps(items)), 2)
    assert "item 3" in line and "bogus" in line, line
    assert snapshot(cli) == before
    assert cli.json("list") == []


def test_bulk_with_existing_id_is_all_or_nothing(cli):
    cli.enqueue(id="taken", command="echo original")
    before = snapshot(cli)
    lines = "".join(json.dumps({"id": i, "command": "true"}) + "\n"
                    for i in ("new1", "taken", "new2"))
    p = cli.run("enqueue", "-", input=lines)
    line = assert_one_error_line(p, 1)
    assert "taken" in line and "already exists" in line
    assert snapshot(cli) == before


def test_duplicate_id_is_exit_1_and_original_untouched(cli):
    cli.enqueue(id="dup", command="echo original", priority=5, max_retries=1)
    before = snapshot(cli)
    job_before = cli.job("dup")
    p = cli.run("enqueue", json.dumps({"id": "dup", "command": "echo other", "priority": 9}))
    assert p.returncode == 1
    assert p.stderr == "queuectl: error: job dup already exists\n"
    assert p.stdout == ""
    assert cli.job("dup") == job_before
    assert snapshot(cli) == before
    assert [e["event"] for e in history(cli, "dup")] == ["enqueued"]


@pytest.mark.backends("sqlite")   # rejected before any database is opened
def test_enqueue_without_payload_is_usage_error(cli):
    before = snapshot(cli)
    assert_one_error_line(cli.run("enqueue"), 2)
    assert_one_error_line(cli.run("enqueue", json.dumps(OK), "--file", "x"), 2)
    assert snapshot(cli) == before


# ---------------------------------------------------------------- config

def test_config_defaults_and_bare_get(cli):
    expected = {"max_retries": "3", "backoff_base": "2", "backoff_max": "3600",
                "job_timeout": "0", "lease_timeout": "30"}
    for key, value in expected.items():
        assert cli.ok("config", "get", key) == value + "\n", key
    listed = cli.json("config", "list")
    assert {k: str(v) for k, v in listed.items() if k in expected} == expected
    text = cli.ok("config", "list")
    for key in expected:
        assert key in text


def test_config_set_get_and_aliases(cli):
    cli.ok("config", "set", "max_retries", "5")
    assert cli.ok("config", "get", "max_retries") == "5\n"
    cli.ok("config", "set", "max-retries", "6")
    assert cli.ok("config", "get", "max_retries") == "6\n"
    assert cli.ok("config", "get", "max-retries") == "6\n"
    cli.ok("config", "set", "backoff", "3")
    assert cli.ok("config", "get", "backoff_base") == "3\n"
    assert cli.ok("config", "get", "backoff") == "3\n"
    cli.ok("config", "set", "backoff_base", "1.5")
    assert cli.ok("config", "get", "backoff_base") == "1.5\n"
    cli.ok("config", "set", "lease_timeout", "2")
    assert cli.json("config", "list")["lease_timeout"] == 2
    cli.ok("config", "set", "job_timeout", "0")
    assert cli.ok("config", "get", "job_timeout") == "0\n"
    # Config persists: a fresh process sees it.
    assert cli.json("config", "list")["max_retries"] == 6


DEFAULTS = {"max_retries": 3, "backoff_base": 2, "backoff_max": 3600, "job_timeout": 0,
            "lease_timeout": 30, "claim_ahead": 7, "completed_ttl": 0}

BAD_CONFIG = [
    ("set", "no_such_key", "1"),
    ("set", "max_retries", "-1"),
    ("set", "max_retries", "1.5"),
    ("set", "max_retries", "abc"),
    ("set", "max-retries", "many"),
    ("set", "backoff_base", "0.5"),
    ("set", "backoff", "fast"),
    ("set", "backoff_base", "nan"),
    ("set", "backoff_max", "-1"),
    ("set", "job_timeout", "-5"),
    ("set", "job_timeout", "soon"),
    ("set", "lease_timeout", "-1"),
    ("get", "no_such_key"),
]


@pytest.mark.backends("sqlite")   # rejected before any database is opened
@pytest.mark.parametrize("args", BAD_CONFIG, ids=["-".join(a) or "empty" for a in BAD_CONFIG])
def test_config_rejects_unknown_keys_and_bad_values(cli, args):
    assert_one_error_line(cli.run("config", *args), 2)
    assert cli.json("config", "list") == DEFAULTS


# ---------------------------------------------------------------- database path

@pytest.mark.backends("sqlite")   # about database files
def test_missing_database_directory_is_one_line_exit_1(cli, tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    db = missing / "q.db"
    for args in (["status"], ["enqueue", json.dumps(OK)], ["list", "--json"],
                 ["worker", "start", "--burst"]):
        p = cli.run("--db", db, *args, timeout=20)
        assert_one_error_line(p, 1)
    assert not (tmp_path / "no").exists()


def _assert_untouched(cli, tmp_path, path):
    data = path.read_bytes()
    names = sorted(os.listdir(path.parent))
    for args in (["status"], ["enqueue", json.dumps(OK)], ["config", "set", "max_retries", "1"],
                 ["worker", "start", "--burst"]):
        p = cli.run("--db", path, *args, timeout=20)
        line = assert_one_error_line(p, 1)
        assert str(path.name) in line or "database" in line, line
    assert path.read_bytes() == data
    assert sorted(os.listdir(path.parent)) == names, "no -wal/-shm/-journal files appear"


@pytest.mark.backends("sqlite")   # about database files
def test_text_file_as_database_is_untouched(cli, tmp_path):
    d = tmp_path / "text"
    d.mkdir()
    f = d / "notes.txt"
    f.write_text("these are my notes, not a database\n" * 50)
    _assert_untouched(cli, tmp_path, f)


@pytest.mark.backends("sqlite")   # about database files
def test_binary_garbage_as_database_is_untouched(cli, tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    f = d / "blob.db"
    f.write_bytes(bytes(range(256)) * 64)
    _assert_untouched(cli, tmp_path, f)


@pytest.mark.backends("sqlite")   # about database files
def test_foreign_sqlite_database_is_untouched(cli, tmp_path):
    d = tmp_path / "foreign"
    d.mkdir()
    f = d / "app.db"
    conn = sqlite3.connect(f)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('alice')")
    conn.commit()
    conn.close()
    _assert_untouched(cli, tmp_path, f)


@pytest.mark.backends("sqlite")   # about database files
def test_directory_as_database_is_exit_1(cli, tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    assert_one_error_line(cli.run("--db", d, "status"), 1)
    assert os.listdir(d) == []
