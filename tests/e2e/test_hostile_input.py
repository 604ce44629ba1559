"""Hostile input: property-based tests (hypothesis) over enqueue payloads,
config values and CLI arguments, plus the size limits.

Every input either succeeds as documented (README, "Command reference") or
fails with exit 2 (1 for a conflict such as a duplicate id) and one line
`queuectl: error: …` on stderr: never a traceback or an "internal error", and
a failing command leaves the database exactly as it was.

Most examples run in-process through the CLI's own `main()` against a real
SQLite file (fast); a smaller number go through the real `queuectl` console
script. Examples are derandomized, so CI runs the same ones every time.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import sqlite3
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from e2e_util import QUEUECTL, assert_one_error_line

from queuectl.cli.main import main

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite")]   # input handling, before any backend

SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
ERROR_LINE = re.compile(r"queuectl: error: [^\n]+\n")
ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_INT = 2**31 - 1
TABLES = ("jobs", "events", "config", "queues", "job_deps", "schedules", "meta")


# ---------------------------------------------------------------- running it

def run_main(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """queuectl's main(argv) in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_in = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:          # --help, --version (argparse)
                code = e.code or 0
    finally:
        sys.stdin = old_in
    return code, out.getvalue(), err.getvalue()


def snapshot(db: str) -> "list | None":
    """Every row of every table (None: no database file)."""
    if not os.path.exists(db):
        return None
    with contextlib.closing(sqlite3.connect(db)) as c:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return [c.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() if t in names else None
                for t in TABLES]


def assert_refused(code: int, out: str, err: str, codes=(2,)) -> str:
    assert code in codes, (code, out, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert ERROR_LINE.fullmatch(err), f"not one error line: {err!r}"
    assert out == "", out
    return err


# ---------------------------------------------------------------- the documented rules

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _utf8(s: str) -> "int | None":
    try:
        return len(s.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def documented_error(obj, existing: set) -> "str | None":
    """Why the README refuses payload `obj` (a field name or rule), None if it
    accepts it, "?" where the README leaves it to the timestamp parser."""
    if not isinstance(obj, dict):
        return "not an object"
    fields = ("id", "command", "queue", "max_retries", "priority", "run_at", "delay",
              "timeout", "fatal_exit_codes", "cwd", "env", "after")
    for k in obj:
        if k not in fields:
            return f"unknown {k}"
    c = obj.get("command")
    if not isinstance(c, str) or not c.strip() or "\0" in c or _utf8(c) is None \
            or _utf8(c) > 65536:
        return "command"
    if "id" in obj and not (isinstance(obj["id"], str) and ID_RE.fullmatch(obj["id"])):
        return "id"
    if "max_retries" in obj and not (_is_int(obj["max_retries"])
                                     and 0 <= obj["max_retries"] <= MAX_INT):
        return "max_retries"
    if "priority" in obj and not (_is_int(obj["priority"]) and abs(obj["priority"]) <= MAX_INT):
        return "priority"
    if "run_at" in obj and "delay" in obj:
        return "run_at and delay"
    if "delay" in obj and not (_is_num(obj["delay"]) and 0 <= obj["delay"] <= 1e9):
        return "delay"
    if "timeout" in obj and not (_is_num(obj["timeout"]) and 0 <= obj["timeout"] <= 1e9):
        return "timeout"
    if "queue" in obj and not (isinstance(obj["queue"], str) and ID_RE.fullmatch(obj["queue"])):
        return "queue"
    codes = obj.get("fatal_exit_codes")
    if codes is not None and not (isinstance(codes, list) and len(codes) <= 256 and
                                  all(_is_int(x) and 1 <= x <= 255 for x in codes)):
        return "fatal_exit_codes"
    cwd = obj.get("cwd")
    if cwd is not None and not (isinstance(cwd, str) and cwd and "\0" not in cwd
                                and _utf8(cwd) is not None and _utf8(cwd) <= 4096):
        return "cwd"
    env = obj.get("env")
    if env is not None:
        if not isinstance(env, dict) or len(env) > 1000:
            return "env"
        size = 0
        for k, v in env.items():
            if not ENV_NAME.fullmatch(k) or not isinstance(v, str) or "\0" in v \
                    or _utf8(v) is None:
                return "env"
            size += len(k) + _utf8(v) + 2
        if size > 65536:
            return "env"
    after = obj.get("after")
    if after is not None:
        if not isinstance(after, list) or len(after) > 1000 or not all(
                isinstance(a, str) and ID_RE.fullmatch(a) for a in after):
            return "after"
        if obj.get("id") in after:
            return "after (itself)"
        if any(a not in existing for a in after):
            return "after (unknown job)"
    if "run_at" in obj:
        if not isinstance(obj["run_at"], str):
            return "run_at"
        if obj["run_at"] not in GOOD_TIMES:
            return "?"
    return None


GOOD_TIMES = ["2030-01-02T03:04:05Z", "2030-01-02", "2030-01-02 03:04:05.123456+02:00",
              "1999-12-31T23:59:59.5-05:30", "2030-01-02T03:04:05,25Z"]
BAD_TIMES = ["", " ", "tomorrow", "2030-13-01", "2030-01-02T25:00:00", "0", "2030/01/02",
             "2030-01-02T03:04:05+25:00", "\u0661\u0669\u0669\u0669-01-01"]

ids = st.sampled_from(["a", "b", "job-1", "x.y:z_", "A" * 128]) | st.text(
    st.characters(codec="utf-8"), max_size=12) | st.text(
    "abc-_.:;$ `'\"\\|&<>()*?!#~%^{}[]\n", min_size=1, max_size=10)
texts = st.text(st.characters(codec="utf-8"), max_size=30) | st.text(max_size=30) | \
    st.sampled_from(["true", "echo hi", " ", "\t\n", "a\0b", "\ud800", "é" * 40000, "x" * 65537,
                     "$(rm -rf /tmp/nothing)", "'; DROP TABLE jobs; --"])
numbers = st.integers(min_value=-2**40, max_value=2**40) | st.floats(allow_nan=True) | \
    st.sampled_from([0, 1, MAX_INT, MAX_INT + 1, -1, 1e9, 1e9 + 1, 0.5, True, False, None])
junk = st.recursive(st.none() | st.booleans() | numbers | texts,
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3),
                    max_leaves=6)
env_names = st.sampled_from(["A", "_X", "PATH_2", "1A", "A-B", "", "é", "A B"]) | \
    st.from_regex(ENV_NAME, fullmatch=True).filter(lambda s: len(s) < 20)
FIELD_VALUES = {
    "id": ids | junk,
    "command": texts | junk,
    "queue": ids | junk,
    "max_retries": numbers | junk,
    "priority": numbers,
    "run_at": st.sampled_from(GOOD_TIMES + BAD_TIMES) | texts | numbers,
    "delay": numbers,
    "timeout": numbers,
    "fatal_exit_codes": st.lists(st.integers(-5, 300), max_size=5) | junk,
    "cwd": texts | junk,
    "env": st.dictionaries(env_names, texts | junk, max_size=4) | junk,
    "after": st.lists(ids, max_size=3) | junk,
}


@st.composite
def payloads(draw):
    """A payload object: mostly valid, with some fields hostile."""
    obj = {"command": draw(st.sampled_from(["true", "echo ok"]) | FIELD_VALUES["command"])}
    for key in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES) + ["bogus", "ID", ""]),
                             max_size=4, unique=True)):
        obj[key] = draw(FIELD_VALUES.get(key, junk))
    if draw(st.booleans()):
        obj.pop("command")
        obj["command"] = "true"          # valid command, key moved last
    return obj


def encode(obj) -> str:
    """The payload as JSON (NaN/Infinity come out as the non-JSON literals)."""
    return json.dumps(obj)


def existing_ids(db: str) -> set:
    if not os.path.exists(db):
        return set()
    with contextlib.closing(sqlite3.connect(db)) as c:
        return {r[0] for r in c.execute("SELECT id FROM jobs")}


def _job_row(db: str, job_id: str) -> dict:
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.row_factory = sqlite3.Row
        return dict(c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def check_enqueue(db: str, obj, text: "str | None" = None, *, argv_runner=run_main) -> None:
    """Enqueue `obj` (or raw `text`) through the CLI and hold it to the README."""
    text = encode(obj) if text is None else text
    existing = existing_ids(db)
    before = snapshot(db)
    code, out, err = argv_runner(["--db", db, "enqueue", text])
    expected = documented_error(obj, existing) if text == encode(obj) else "?"
    if isinstance(obj, dict) and expected is None and obj.get("id") in existing:
        expected = "duplicate"
    if code != 0:
        assert_refused(code, out, err, codes=(1, 2))
        assert snapshot(db) == before, "a refused enqueue changed the database"
        if expected == "duplicate":
            assert code == 1 and "already exists" in err, err
        else:
            assert code == 2, (code, err)
            assert expected is not None, f"documented as valid, refused: {obj!r}: {err}"
        return
    assert err == "", err
    assert expected in (None, "?"), f"documented as invalid ({expected}), accepted: {obj!r}"
    m = re.fullmatch(r"enqueued (\S+)\n", out)
    assert m, out
    job_id = m.group(1)
    if isinstance(obj, dict) and "id" in obj:
        assert job_id == obj["id"]
    assert existing_ids(db) == existing | {job_id}, "exactly one job added"
    row = _job_row(db, job_id)
    assert row["command"] == obj["command"] and row["state"] in ("pending", "cancelled")
    assert row["queue"] == obj.get("queue", "default")
    assert row["priority"] == obj.get("priority", 0)
    assert row["max_retries"] == obj.get("max_retries", 3)


# ---------------------------------------------------------------- properties

@settings(max_examples=250, **SETTINGS)
@given(obj=payloads())
def test_enqueue_payloads_succeed_as_documented_or_fail_cleanly(tmp_path, obj):
    db = str(tmp_path / "q.db")
    if not os.path.exists(db):
        run_main(["--db", db, "enqueue", '{"id":"a","command":"true"}'])
    check_enqueue(db, obj)


@settings(max_examples=150, **SETTINGS)
@given(text=st.text(max_size=60) | st.binary(max_size=40).map(
    lambda b: b.decode("utf-8", "surrogateescape")) | st.sampled_from([
        "", "{}", "[]", "[{}]", "null", "1", '"x"', "{", '{"command":"true",}',
        '{"command":"true","command":"false"}', '{"command":NaN}', '{"command":"a","delay":Infinity}',
        '{"command":"true"} {"command":"true"}', "[" * 100000, '{"a":' * 5000, "\ufeff{}",
        '{"command":"\\ud800"}', '{"command":"true","priority":1e400}',
        '{"command":"true","priority":' + "9" * 5000 + "}"]))
def test_any_text_as_the_payload_is_refused_cleanly_or_enqueued(tmp_path, text):
    db = str(tmp_path / "q.db")
    before = snapshot(db)
    code, out, err = run_main(["--db", db, "enqueue", text])
    if code == 0:
        obj = json.loads(text)
        assert documented_error(obj, set()) in (None, "?"), (text, out)
        assert re.fullmatch(r"enqueued \S+\n", out)
    else:
        assert_refused(code, out, err)
        assert snapshot(db) == before


@settings(max_examples=60, **SETTINGS)
@given(items=st.lists(payloads(), min_size=1, max_size=6),
       form=st.sampled_from(["lines", "array", "crlf"]))
def test_bulk_enqueue_is_all_or_nothing(tmp_path, items, form):
    """`enqueue -` holds every line to the same rules and writes all or nothing."""
    db = str(tmp_path / "q.db")
    if not os.path.exists(db):
        run_main(["--db", db, "enqueue", '{"id":"a","command":"true"}'])
    existing = existing_ids(db)
    if form == "array":
        text = json.dumps(items)
    else:
        text = ("\r\n" if form == "crlf" else "\n").join(encode(i) for i in items) + "\n"
    before = snapshot(db)
    code, out, err = run_main(["--db", db, "enqueue", "-"], stdin=text)
    # The batch is valid if every item is, given the ones before it.
    seen, problem = set(existing), None
    for item in items:
        why = documented_error(item, seen)
        given_id = item.get("id") if isinstance(item, dict) else None
        if why is None and given_id is not None and given_id in seen:
            why = "duplicate"
        if why is not None:
            problem = why
            break
        if given_id is not None:
            seen.add(given_id)
    if code == 0:
        assert problem in (None, "?"), (problem, items)
        assert out == f"enqueued {len(items)} jobs\n"
        assert len(existing_ids(db)) == len(existing) + len(items)
    else:
        assert_refused(code, out, err, codes=(1, 2))
        assert problem is not None, (items, err)
        assert snapshot(db) == before, "a refused batch wrote something"


CONFIG_KEYS = st.sampled_from(["max_retries", "MAX-RETRIES", " backoff ", "backoff_base",
                               "backoff_max", "job_timeout", "lease_timeout", "completed_ttl",
                               "Lease-Timeout", "bogus", "", "max retries"]) | st.text(max_size=10)
CONFIG_VALUES = st.sampled_from(["0", "1", "3", " 7 ", "2.5", "-1", "1e3", "1e9", "1e10", "nan",
                                 "inf", "-inf", "0x10", "1_000", "", " ", "5s", "15m", "2h",
                                 "7d", "1.5h", "3.0", "\u0663", "true", "None",
                                 str(2**64), "0.0001"]) | st.text(max_size=8) | \
    st.integers(-10, 10**10).map(str) | st.floats(allow_nan=True).map(repr)
CONFIG = {"max_retries": ("int", 0), "backoff_base": ("number", 1), "backoff_max": ("number", 0),
          "job_timeout": ("number", 0), "lease_timeout": ("number", 1),
          "completed_ttl": ("duration", 0)}


@settings(max_examples=200, **SETTINGS)
@given(key=CONFIG_KEYS, value=CONFIG_VALUES)
def test_config_values_are_set_as_documented_or_refused_cleanly(tmp_path, key, value):
    db = str(tmp_path / "q.db")
    before = snapshot(db)
    code, out, err = run_main(["--db", db, "config", "set", "--", key, value])
    if code != 0:
        assert_refused(code, out, err)
        assert snapshot(db) == before
        return
    name = key.strip().lower().replace("-", "_")
    name = {"backoff": "backoff_base"}.get(name, name)
    assert name in CONFIG, f"unknown key {key!r} accepted"
    kind, minimum = CONFIG[name]
    shown = out.removesuffix("\n")
    assert shown.startswith(f"{name} = "), out
    stored = float(shown.split(" = ", 1)[1])
    assert math.isfinite(stored) and minimum <= stored <= (1e10 if kind == "duration" else 1e9)
    if kind == "int":
        assert stored.is_integer() and re.fullmatch(r"\s*[-+]?\d[\d_]*\s*", value), value
    code, got, err = run_main(["--db", db, "config", "get", name])
    assert (code, got) == (0, shown.split(" = ", 1)[1] + "\n"), err


WORDS = ["status", "list", "show", "logs", "history", "dlq", "list", "retry", "cancel",
         "queue", "pause", "resume", "limit", "config", "get", "set", "list", "purge",
         "export", "stats", "schedule", "add", "remove", "migrate", "enqueue", "worker",
         "stop", "--json", "--limit", "--state", "--all", "--queue", "--exit-code",
         "--older-than", "--since", "--job-id", "--group", "--skip-existing", "--file",
         "--tz", "--replace", "--db", "--help", "--version", "-h", "--", "-",
         "a", "b", "0", "-1", "99999999999999999999", "completed", "dead", "pending",
         "1h", "x" * 200, "a b", "a;b", "*/5 * * * *", '{"command":"true"}', "\n", "é"]
ARGS = st.lists(st.sampled_from(WORDS) | st.text(st.characters(codec="utf-8",
                                                               exclude_characters="\0"),
                                                 max_size=8), max_size=6)
SAFE_FIRST = ["status", "list", "show", "logs", "history", "dlq", "cancel", "queue", "config",
              "purge", "export", "stats", "schedule", "migrate", "enqueue", "--json", "--help",
              "--version", "-h", "bogus", ""]


@settings(max_examples=250, **SETTINGS)
@given(first=st.sampled_from(SAFE_FIRST), rest=ARGS)
def test_any_command_line_succeeds_or_fails_with_one_line(tmp_path, first, rest):
    """Random command lines (minus the ones that serve or block: `worker start`,
    `wait`, `dashboard`, `top`, and `--debug`, whose traceback is its point):
    exit 0, or 1/2 with one error line and the database untouched."""
    argv = [first] + rest
    assume(not {"start", "wait", "dashboard", "top", "import"} & set(argv))
    assume("--db" not in argv and "--debug" not in argv)
    db = str(tmp_path / "q.db")
    if not os.path.exists(db):
        run_main(["--db", db, "enqueue", '{"id":"a","command":"true"}'])
        run_main(["--db", db, "enqueue", '{"id":"b","command":"false","max_retries":0}'])
    before = snapshot(db)
    code, out, err = run_main(["--db", db] + argv, stdin="")
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if code != 0:
        assert code in (1, 2), (argv, code, err)
        assert ERROR_LINE.fullmatch(err), (argv, err)
        assert snapshot(db) == before, f"{argv} failed but changed the database"


# ---------------------------------------------------------------- the real console script

def real_cli(env):
    def run(argv):
        p = subprocess.run(QUEUECTL + argv, capture_output=True, env=env, timeout=30)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))
    return run


@settings(max_examples=25, **SETTINGS)
@given(obj=payloads())
def test_enqueue_payloads_through_the_real_console_script(cli, obj):
    text = encode(obj)
    assume(len(text.encode("utf-8", "surrogatepass")) < 100_000)   # one argv string
    assume("\0" not in text)
    check_enqueue(cli.db, obj, argv_runner=real_cli(cli.env))


def test_bytes_that_are_not_utf8_in_argv_are_refused_cleanly(cli):
    """argv arrives as bytes; Python turns undecodable ones into lone surrogates."""
    for raw in (b'{"command":"echo \xff\xfe"}', b'{"command":"true","id":"\xc3"}',
                b'{"command":"true","queue":"q\x80"}', b"\xff"):
        p = subprocess.run(QUEUECTL + [b"enqueue", raw], capture_output=True, env=cli.env,
                           timeout=30)
        err = p.stderr.decode("utf-8", "backslashreplace")
        assert p.returncode == 2 and err.count("\n") == 1 and \
            err.startswith("queuectl: error: "), (raw, p.returncode, err)
        assert "Traceback" not in err
    assert not os.path.exists(cli.db), "nothing written, not even a database file"


# ---------------------------------------------------------------- size limits

def _lines(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


@pytest.mark.parametrize("name, make, words", [
    ("10 MB command (JSON array)", lambda: json.dumps([{"command": "x" * (10 << 20)}]),
     ["field 'command' is 10485760 bytes long", "the limit is 65536 bytes"]),
    ("10 MB command (JSON Lines)", lambda: _lines({"command": "x" * (10 << 20)}),
     ["line 1 is 1048", "the limit is 2097152"]),
    ("100k env variables", lambda: _lines({"command": "true",
                                           "env": {f"V{i}": "x" for i in range(100_000)}}),
     ["field 'env' has 100000 variables; the limit is 1000"]),
    ("env over 64 KiB", lambda: _lines({"command": "true", "env": {"BIG": "x" * 70_000}}),
     ["field 'env' is 70005 bytes in all; the limit is 65536 bytes"]),
    ("100k after", lambda: _lines({"command": "true", "after": [f"j{i}" for i in range(100_000)]}),
     ["field 'after' lists 100000 jobs; the limit is 1000"]),
    ("a cwd over 4 KiB", lambda: _lines({"command": "true", "cwd": "/" + "d" * 5000}),
     ["field 'cwd' is longer than 4096 bytes"]),
    ("100,001 jobs", lambda: '{"command":"true"}\n' * 100_001,
     ["100001 jobs in one batch; the limit is 100000"]),
    ("input over 128 Mi characters", lambda: " " * (128 * 2**20 + 1),
     ["the input is longer than 134217728 characters"]),
])
def test_huge_payloads_are_refused_with_their_limit(cli, tmp_path, name, make, words):
    path = tmp_path / "input.json"
    path.write_text(make())
    for args, stdin in ((["enqueue", "--file", path], None),
                        (["enqueue", "-"], path.read_text())):
        if stdin is not None and len(stdin) > (16 << 20):
            continue                      # one pipe read of the biggest is enough
        line = assert_one_error_line(cli.run(*args, input=stdin, timeout=60), 2)
        for w in words:
            assert w in line, (name, line)
    assert not os.path.exists(cli.db), "nothing written"


def test_a_big_command_in_argv_is_refused_with_its_limit(cli):
    # (Linux caps one argv string at 128 KiB, so a 10 MB one cannot even reach
    # queuectl as an argument: it goes through stdin or --file, above.)
    line = assert_one_error_line(cli.run("enqueue", json.dumps({"command": "é" * 40_000}, ensure_ascii=False)), 2)
    assert "field 'command' is 80000 bytes long; the limit is 65536 bytes" in line
    cli.enqueue(id="max", command="x" * 65536)           # exactly at the limit: accepted
    assert len(cli.job("max")["command"]) == 65536
