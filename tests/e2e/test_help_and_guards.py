"""End-to-end: `help`, `enqueue --help`'s payload fields, "did you mean", the
guard rails (worker count, config ranges, database URL schemes, a new queue
named by `queue pause`) and tables fitted to the terminal."""

from __future__ import annotations

import json
import re
import os

import pytest

from e2e_util import EMPTY_COUNTS, assert_one_error_line, counts, snapshot
from queuectl.config import KEYS
from queuectl.model import FIELDS

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------- help

@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("topic", [[], ["add"], ["enqueue"], ["worker", "start"],
                                   ["dlq"], ["completion"]])
def test_help_is_the_commands_help(cli, topic):
    p = cli.run("help", *topic)
    assert p.returncode == 0 and p.stderr == ""
    assert p.stdout == cli.ok(*topic, "--help")
    assert p.stdout.startswith("usage: queuectl")


@pytest.mark.backends("sqlite")
def test_help_lists_add_help_and_completion(cli):
    text = cli.ok("help")
    for command in ("add", "help", "completion", "enqueue"):
        assert re.search(rf"^    {command}\b", text, re.M), command
    assert "_ids" not in text                     # the hidden helper of the scripts


@pytest.mark.backends("sqlite")
def test_enqueue_help_lists_every_payload_field_with_a_meaning(cli):
    text = cli.ok("enqueue", "--help")
    tail = text[text.index("payload fields:"):]
    for field in FIELDS:
        line = next((x for x in tail.splitlines() if x.split()[:1] == [field]), None)
        assert line is not None, field
        assert len(line.split()) > 3, line           # a meaning, not just the name


# ---------------------------------------------------------------- did you mean

DID_YOU_MEAN = [
    (["lst"], "'list'"),
    (["enqeue", "{}"], "'enqueue'"),
    (["help", "wrker"], "'worker'"),
    (["worker", "strt"], "'start'"),
    (["dlq", "rety", "x"], "'retry'"),
    (["list", "--jsn"], "'--json'"),
    (["worker", "start", "--cont", "2"], "'--count'"),
    (["list", "--state", "pendng"], "'pending'"),
    (["config", "set", "claim_ahed", "3"], "'claim_ahead'"),
    (["config", "get", "max_retry"], "'max_retries'"),
    (["enqueue", '{"comand": "true"}'], "'command'"),
    (["enqueue", '{"command": "true", "priorty": 1}'], "'priority'"),
    (["completion", "bsh"], "'bash'"),
]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("argv,suggestion", DID_YOU_MEAN,
                         ids=[" ".join(a) for a, _ in DID_YOU_MEAN])
def test_a_close_miss_gets_did_you_mean(cli, argv, suggestion):
    line = assert_one_error_line(cli.run(*argv), 2)
    assert f"did you mean {suggestion}?" in line, line
    assert not os.path.exists(cli.db)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("argv", [["xyzzy"], ["list", "--frobnicate"],
                                  ["config", "set", "zzz", "1"],
                                  ["enqueue", '{"command": "true", "qqqq": 1}']])
def test_nothing_close_gets_no_guess(cli, argv):
    line = assert_one_error_line(cli.run(*argv), 2)
    assert "did you mean" not in line, line


# ---------------------------------------------------------------- guard rails

@pytest.mark.backends("sqlite")
def test_worker_count_has_a_maximum_with_its_reason(cli):
    line = assert_one_error_line(cli.run("worker", "start", "--count", "10000"), 2)
    assert "at most 256" in line and "process" in line, line
    assert_one_error_line(cli.run("worker", "start", "--count", "257"), 2)
    assert not os.path.exists(cli.db), "refused before anything is opened or forked"


def test_config_ranges_are_enforced(cli):
    cli.ok("config", "set", "claim_ahead", "64")
    before = snapshot(cli)
    for key, value in [("claim_ahead", "100"), ("claim_ahead", "65"), ("lease_timeout", "0s"),
                       ("max_retries", str(2**31)), ("backoff_base", "0.5"),
                       ("backoff_max", "2000000000"), ("completed_ttl", "-1")]:
        line = assert_one_error_line(cli.run("config", "set", key, value), 2)
        assert key in line, line
    assert "from 0 to 64" in assert_one_error_line(
        cli.run("config", "set", "claim_ahead", "100"), 2)
    assert snapshot(cli) == before
    assert cli.ok("config", "get", "claim_ahead") == "64\n"


def test_every_documented_config_maximum_is_refused_one_above(cli):
    for name, key in KEYS.items():
        assert_one_error_line(cli.run("config", "set", name, str(int(key.maximum) + 1)), 2)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("url", ["mysql://root@localhost/jobs", "redis://localhost:6379",
                                 "http://example.com/queuectl.db", "MongoDB://x"])
@pytest.mark.parametrize("argv", [["status"], ["enqueue", '{"command":"true"}'],
                                  ["add", "--", "true"], ["worker", "start", "--burst"],
                                  ["config", "set", "max_retries", "1"]])
def test_a_database_url_of_an_unknown_scheme_is_an_error(cli, tmp_path, url, argv):
    line = assert_one_error_line(cli.run("--db", url, *argv), 2)
    assert url.split("://")[0] + "://" in line
    assert "postgresql://" in line and "sqlite://" in line, line
    assert os.listdir(tmp_path) == [], "no file made of the URL"
    cli.env["QUEUECTL_DB"] = url                          # the same from the environment
    assert_one_error_line(cli.run(*argv), 2)


@pytest.mark.backends("sqlite")
def test_file_and_sqlite_urls_name_a_file(cli, tmp_path):
    for url in (f"file://{tmp_path}/a.db", f"sqlite://{tmp_path}/a.db", f"{tmp_path}/a.db"):
        cli.ok("--db", url, "add", "--", "true")
    assert cli.json("--db", str(tmp_path / "a.db"), "status")["jobs"]["pending"] == 3


def test_queue_pause_of_a_queue_without_jobs_says_it_made_one(cli):
    p = cli.run("queue", "pause", "nosuch")
    assert p.returncode == 0 and p.stdout == "paused nosuch\n"
    assert "new queue nosuch" in p.stderr, p.stderr
    cli.ok("add", "--queue", "mail", "--", "true")
    p = cli.run("queue", "pause", "mail")
    assert (p.returncode, p.stdout, p.stderr) == (0, "paused mail\n", "")
    p = cli.run("queue", "pause", "nosuch")                 # it exists now
    assert (p.returncode, p.stderr) == (0, "")


# ---------------------------------------------------------------- tables

LONG = "echo " + "word " * 60


def test_list_and_dlq_list_fit_the_terminal(cli):
    cli.ok("add", "--id", "long", "--", LONG)
    cli.ok("add", "--id", "dies", "--max-retries", "0", "--",
           f"echo {'the error says this ' * 10} >&2; exit 3")
    cli.run("worker", "start", "--burst", "--quiet", check=0, timeout=30)
    for columns in (80, 120):
        cli.env["COLUMNS"] = str(columns)
        for argv in (["list"], ["dlq", "list"]):
            lines = cli.ok(*argv).splitlines()
            assert len(lines) >= 2
            assert all(len(x) <= columns for x in lines), (argv, columns, lines)
            assert any(x.endswith("…") for x in lines[1:]), lines
    full = {j["id"]: j for j in cli.json("list")}
    assert full["long"]["command"] == LONG.strip() or full["long"]["command"] == LONG
    dead = cli.json("dlq", "list")
    assert "the error says this " * 5 in dead[0]["last_error"]
    cli.env["COLUMNS"] = "400"                                  # room for everything
    assert LONG.strip() in cli.ok("list")
    assert counts(cli) != EMPTY_COUNTS


def test_json_output_is_not_cut(cli):
    cli.enqueue(id="j", command=LONG)
    cli.env["COLUMNS"] = "40"
    assert json.loads(cli.ok("list", "--json"))[0]["command"] == LONG


# ---------------------------------------------------------------- which database

def test_status_names_the_database(cli, backend, tmp_path):
    if backend == "sqlite":
        (tmp_path / "elsewhere").mkdir()
        cli.cwd = tmp_path / "elsewhere"
        cli.env["QUEUECTL_DB"] = "rel.db"
        expected = str(tmp_path / "elsewhere" / "rel.db")
        cli.ok("add", "--", "true")
    else:
        assert "postgres@" in cli.db
        cli.env["QUEUECTL_DB"] = cli.db.replace("postgres@", "postgres:pw-s3cret@", 1)
        expected = cli.db
    text = cli.ok("status")
    assert text.splitlines()[0] == f"database  {expected}", text
    assert cli.json("status")["database"] == expected
    assert "s3cret" not in text


def test_list_last_n_is_the_newest_n_newest_at_the_bottom(cli):
    for n in range(5):
        cli.ok("add", "--id", f"j{n}", "--", "true")
    cli.ok("cancel", "j1")
    cli.ok("cancel", "j4")
    assert [j["id"] for j in cli.json("list", "--last", "2")] == ["j3", "j4"]
    rows = cli.ok("list", "--last", "3").splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["j2", "j3", "j4"]
    assert [j["id"] for j in cli.json("list", "--last", "9", "--state", "pending")] == \
        ["j0", "j2", "j3"]
    assert [j["id"] for j in cli.json("list", "--last", "1", "--state", "cancelled")] == ["j4"]
    assert cli.json("list", "--last", "0") == []
    assert "not both" in assert_one_error_line(
        cli.run("list", "--last", "2", "--limit", "2"), 2)
