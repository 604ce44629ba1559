"""End-to-end: `queuectl add [OPTIONS] -- COMMAND [ARG...]` (a job without JSON),
`--json` on the write commands, and durations written 90s/15m/1w/1h30m."""

from __future__ import annotations

import json
import os
import time

import pytest

from e2e_util import EMPTY_COUNTS, assert_one_error_line, counts, parse_at, snapshot

pytestmark = pytest.mark.e2e


def run_all(cli) -> None:
    cli.run("worker", "start", "--burst", "--quiet", check=0, timeout=30)


def added(out: str) -> str:
    assert out.startswith("enqueued "), out
    return out.split()[1]


def test_add_quotes_several_words_so_they_arrive_as_typed(cli):
    a = added(cli.ok("add", "--", "printf", r"%s\n", "a b"))   # as typed in a shell
    b = added(cli.ok("add", "--", "printf", "[%s]", "$HOME", "it's", "*", "", "x;y"))
    # One word is a shell command as written: the shell sees && and $((...)).
    c = added(cli.ok("add", "--", "echo one && echo $((1 + 2))"))
    assert cli.job(a)["command"] == "printf '%s\\n' 'a b'"
    run_all(cli)
    assert cli.ok("logs", a) == "a b\n"
    assert cli.ok("logs", b) == "[$HOME][it's][*][][x;y]"
    assert cli.ok("logs", c) == "one\n3\n"


def test_add_a_later_double_dash_belongs_to_the_command(cli):
    j = added(cli.ok("add", "--", "printf", "%s,", "--", "-x", "--json"))
    run_all(cli)
    assert cli.ok("logs", j) == "--,-x,--json,"


def test_add_runs_in_the_directory_it_was_run_in(cli, tmp_path):
    here = tmp_path / "work dir"
    (here / "sub").mkdir(parents=True)
    cli.cwd = here
    j = added(cli.ok("add", "--", "pwd"))
    k = added(cli.ok("add", "--cwd", "sub", "--", "pwd"))        # stored absolute
    cli.cwd = tmp_path                                           # the worker runs elsewhere
    assert cli.job(j)["cwd"] == str(here)
    assert cli.job(k)["cwd"] == str(here / "sub")
    run_all(cli)
    assert cli.ok("logs", j) == f"{here}\n"
    assert cli.ok("logs", k) == f"{here / 'sub'}\n"


def test_add_options_become_the_payload_fields(cli, tmp_path):
    cli.ok("add", "--id", "dep", "--", "true")
    before = time.time()
    out = cli.ok("add", "--id", "full", "--queue", "mail", "--priority", "-5",
                 "--delay", "1h30m", "--timeout", "90s", "--max-retries", "2",
                 "--after", "dep", "--after", "dep", "--env", "A=1", "--env", "B=x=y",
                 "--fatal-exit-code", "3", "--fatal-exit-code", "4", "--cwd", "/",
                 "--", "echo", "hi")
    assert out == "enqueued full\n"
    job = cli.job("full")
    assert job["command"] == "echo hi"
    assert (job["queue"], job["priority"], job["timeout"], job["max_retries"]) == \
        ("mail", -5, 90, 2)
    assert job["after"] == ["dep"] and job["blocked"]
    assert job["env"] == {"A": "1", "B": "x=y"}
    assert job["fatal_exit_codes"] == [3, 4] and job["cwd"] == "/"
    assert before + 5400 - 5 <= parse_at(job["run_at"]) <= time.time() + 5400 + 5
    cli.ok("add", "--id", "at", "--run-at", "2030-01-02T03:04:05Z", "--", "true")
    assert cli.job("at")["run_at"] == "2030-01-02T03:04:05.000Z"
    # Left out: the config's defaults, as for a JSON payload.
    cli.ok("config", "set", "max_retries", "5")
    cli.ok("config", "set", "job_timeout", "2m")
    plain = cli.job(added(cli.ok("add", "--", "true")))
    assert (plain["max_retries"], plain["timeout"], plain["queue"], plain["priority"]) == \
        (5, 120, "default", 0)


ADD_ERRORS = [
    ([], "command"),
    (["--"], "command"),
    (["--id", "has space", "--", "true"], "field 'id'"),
    (["--priority", "high", "--", "true"], "priority"),
    (["--priority", str(2**31), "--", "true"], "priority"),
    (["--max-retries", "-1", "--", "true"], "max_retries"),
    (["--delay", "1h1h", "--", "true"], "delay"),
    (["--delay", "5", "--run-at", "2030-01-01T00:00:00Z", "--", "true"], "run-at"),
    (["--run-at", "next tuesday", "--", "true"], "run_at"),
    (["--timeout", "-1", "--", "true"], "timeout"),
    (["--env", "NOEQUALS", "--", "true"], "--env"),
    (["--env", "1BAD=x", "--", "true"], "env"),
    (["--fatal-exit-code", "300", "--", "true"], "fatal_exit_codes"),
    (["--after", "me", "--id", "me", "--", "true"], "after"),
    (["--queue", "a b", "--", "true"], "field 'queue'"),
    (["--", "   "], "command"),
    (["--jsn", "--", "true"], "did you mean '--json'"),
]


@pytest.mark.backends("sqlite")       # refused before any database is opened
@pytest.mark.parametrize("argv,word", ADD_ERRORS, ids=[" ".join(a) or "nothing"
                                                       for a, _ in ADD_ERRORS])
def test_add_bad_input_is_one_line_exit_2_and_nothing_written(cli, argv, word):
    line = assert_one_error_line(cli.run("add", *argv), 2)
    assert word in line, line
    assert not os.path.exists(cli.db), "bad input creates no database"


def test_add_bad_input_writes_nothing_to_an_existing_queue(cli):
    cli.ok("add", "--id", "x", "--", "true")
    before = snapshot(cli)
    assert_one_error_line(cli.run("add", "--priority", str(2**31), "--", "true"), 2)
    assert_one_error_line(cli.run("add", "--env", "oops", "--", "true"), 2)
    p = cli.run("add", "--id", "x", "--", "false")         # a duplicate: exit 1
    assert p.returncode == 1 and "already exists" in p.stderr
    assert snapshot(cli) == before


def test_add_skip_existing_and_json(cli):
    # (--json before the --: after it, it would be a word of the command)
    assert json.loads(cli.ok("add", "--id", "a", "--json", "--", "true")) == \
        {"id": "a", "enqueued": True}
    assert json.loads(cli.ok("add", "--id", "a", "--skip-existing", "--json", "--", "true")) \
        == {"id": "a", "enqueued": False}
    assert cli.ok("add", "--id", "a", "--skip-existing", "--", "true") == "exists a\n"
    assert cli.run("add", "--id", "a", "--skip-existing", "--", "false").returncode == 1
    assert counts(cli)["pending"] == 1


# ---------------------------------------------------------------- --json on writes

def test_write_commands_print_json_with_json(cli):
    assert cli.json("enqueue", '{"id":"e","command":"exit 3","max_retries":0}') == \
        {"id": "e", "enqueued": True}
    out = json.loads(cli.ok("enqueue", "-", "--json", "--skip-existing",
                            input='{"id":"e","command":"exit 3","max_retries":0}\n'
                                  '{"id":"f","command":"true"}\n'))
    assert out == {"enqueued": ["f"], "existing": ["e"]}
    assert cli.json("cancel", "f") == {"id": "f", "state": "cancelled"}
    run_all(cli)
    assert cli.json("dlq", "retry", "e") == {"retried": 1, "id": "e"}
    run_all(cli)
    assert cli.json("dlq", "retry", "--all") == {"retried": 1}
    assert cli.json("config", "set", "lease-timeout", "1m") == \
        {"key": "lease_timeout", "value": 60}
    assert cli.json("config", "set", "backoff_base", "1.5") == \
        {"key": "backoff_base", "value": 1.5}


# ---------------------------------------------------------------- durations

def test_durations_in_payloads_options_and_config(cli):
    before = time.time()
    cli.enqueue(id="d", command="true", delay="1h30m", timeout="1h")
    job = cli.job("d")
    assert job["timeout"] == 3600
    assert before + 5400 - 5 <= parse_at(job["run_at"]) <= time.time() + 5400 + 5
    cli.enqueue(id="w", command="true", delay="1w", timeout=90)
    assert parse_at(cli.job("w")["run_at"]) >= before + 604800 - 5
    for key, text, value in [("job_timeout", "1h30m", "5400"), ("completed_ttl", "1w", "604800"),
                             ("lease_timeout", "90", "90"), ("backoff_max", "2h", "7200")]:
        cli.ok("config", "set", key, text)
        assert cli.ok("config", "get", key) == value + "\n"
    assert cli.ok("purge", "--state", "dead", "--older-than", "1w2d") == "purged 0 jobs\n"
    assert cli.json("stats", "--since", "1h30m")
    started = time.monotonic()
    p = cli.run("wait", "d", "--timeout", "0.5s")
    assert p.returncode == 124 and time.monotonic() - started < 10


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("argv", [["wait", "--all", "--timeout", "1h1h"],
                                  ["purge", "--state", "dead", "--older-than", "3 days"],
                                  ["config", "set", "job_timeout", "1x"],
                                  ["enqueue", '{"command":"true","delay":"soon"}']])
def test_a_bad_duration_is_one_line_exit_2(cli, argv):
    line = assert_one_error_line(cli.run(*argv), 2)
    assert "1h30m" in line, line
    assert counts(cli) == EMPTY_COUNTS


@pytest.mark.backends("sqlite")
def test_add_without_double_dash_and_an_option_like_word_says_where_the_command_goes(cli):
    line = assert_one_error_line(cli.run("add", "ls", "-l"), 2)
    assert "after '--'" in line, line
    assert not os.path.exists(cli.db)
    # Words that look like no option need no --.
    assert cli.ok("add", "--id", "plain", "echo", "hi") == "enqueued plain\n"
    assert cli.job("plain")["command"] == "echo hi"
