"""End-to-end: the success path, show/logs/history, JSON output, persistence,
packaging details (python -m, file mode), job environment."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from e2e_util import (QUEUECTL, EMPTY_COUNTS, ISO_MS_Z, assert_one_error_line, counts,
                      events, history, parse_at)

pytestmark = pytest.mark.e2e

JOB_KEYS = {"id", "command", "state", "attempts", "max_retries", "priority", "run_at",
            "timeout", "created_at", "updated_at", "started_at", "finished_at",
            "exit_code", "last_error", "worker_id"}


def test_success_path_show_logs_history(cli):
    out = cli.ok("enqueue", json.dumps(
        {"id": "hello", "command": "echo hello-out; echo hello-err >&2"}))
    assert out == "enqueued hello\n"
    job = cli.job("hello")
    assert job["state"] == "pending" and job["attempts"] == 0

    p = cli.run("worker", "start", "--burst", timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "", "worker logs go to stderr"

    job = cli.job("hello")
    assert JOB_KEYS <= set(job), JOB_KEYS - set(job)
    assert job["state"] == "completed"
    assert job["attempts"] == 1
    assert job["exit_code"] == 0
    assert job["last_error"] is None
    assert job["worker_id"]
    assert job["output"] == "hello-out\nhello-err\n"
    for key in ("run_at", "created_at", "updated_at", "started_at", "finished_at"):
        assert ISO_MS_Z.fullmatch(job[key]), (key, job[key])
    assert parse_at(job["created_at"]) <= parse_at(job["started_at"]) <= parse_at(job["finished_at"])

    # Human `show`: the fields, then the captured output of the latest attempt.
    text = cli.ok("show", "hello")
    assert "completed" in text and "hello" in text
    assert "hello-out\nhello-err" in text

    # `logs`: exactly what the job printed, on stdout.
    assert cli.ok("logs", "hello") == "hello-out\nhello-err\n"

    hist = history(cli, "hello")
    assert [e["event"] for e in hist] == ["enqueued", "processing", "completed"]
    for e in hist:
        assert e["job_id"] == "hello"
        assert ISO_MS_Z.fullmatch(e["at"]), e
    assert [e["attempt"] for e in hist][1:] == [1, 1]
    ats = [parse_at(e["at"]) for e in hist]
    assert ats == sorted(ats), "history must be oldest first"

    assert counts(cli) == {**EMPTY_COUNTS, "completed": 1}
    # The burst worker deregistered when it exited.
    assert cli.active_workers() == 0


def test_history_lists_every_job_oldest_first(cli):
    for i in range(3):
        cli.enqueue(id=f"h{i}", command="true")
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    hist = history(cli)
    assert [(e["job_id"], e["event"]) for e in hist if e["event"] == "enqueued"] == [
        ("h0", "enqueued"), ("h1", "enqueued"), ("h2", "enqueued")]
    assert sum(e["event"] == "completed" for e in hist) == 3
    ats = [parse_at(e["at"]) for e in hist]
    assert ats == sorted(ats)
    # --limit N: the N most recent, still oldest first.
    last2 = [json.loads(x) for x in cli.ok("history", "--limit", "2").splitlines()]
    assert last2 == hist[-2:]


def test_history_of_unknown_job_is_exit_1(cli):
    assert_one_error_line(cli.run("history", "--job-id", "nope"), 1)
    assert_one_error_line(cli.run("show", "nope"), 1)
    assert_one_error_line(cli.run("logs", "nope"), 1)


def test_invalid_command_records_127_and_not_found(cli):
    cli.enqueue(id="bad", command="definitely-not-a-command-qz", max_retries=0)
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    job = cli.job("bad")
    assert job["state"] == "dead"
    assert job["attempts"] == 1
    assert job["exit_code"] == 127
    assert "not found" in job["last_error"]
    assert "127" in job["last_error"]
    assert "not found" in cli.ok("logs", "bad")


def test_job_environment_has_id_and_attempt(cli):
    # Attempt 1 prints its environment and fails; attempt 2 prints it and succeeds.
    cli.ok("config", "set", "backoff_base", "1")
    cli.enqueue(id="envjob", max_retries=1,
                command='echo "id=$QUEUECTL_JOB_ID attempt=$QUEUECTL_ATTEMPT"; '
                        'test "$QUEUECTL_ATTEMPT" = 2')
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    job = cli.job("envjob")
    assert job["state"] == "completed", job
    assert job["attempts"] == 2
    assert cli.ok("logs", "envjob") == "id=envjob attempt=2\n"
    assert events(cli, "envjob") == ["enqueued", "processing", "retry_scheduled",
                                     "processing", "completed"]


@pytest.mark.backends("sqlite")   # the runner's behaviour, the same on every backend
def test_job_runs_under_sh_with_stdin_from_dev_null(cli, tmp_path):
    # `cat` must see EOF at once (stdin is /dev/null), not hang on the worker's stdin.
    cli.enqueue(id="stdin", command="cat; echo after-cat", timeout=5)
    cli.run("worker", "start", "--burst", check=0, timeout=20, input="should-not-be-read\n")
    job = cli.job("stdin")
    assert job["state"] == "completed", job
    assert job["output"] == "after-cat\n"


def test_priority_then_fifo(cli):
    cli.enqueue(id="low", command="true", priority=-1)
    cli.enqueue(id="mid1", command="true")
    cli.enqueue(id="high", command="true", priority=10)
    cli.enqueue(id="mid2", command="true")
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    started = [e["job_id"] for e in history(cli) if e["event"] == "processing"]
    assert started == ["high", "mid1", "mid2", "low"]


def test_delay_is_respected(cli):
    cli.enqueue(id="later", command="true", delay=1)
    cli.enqueue(id="now", command="true")
    p = cli.run("worker", "start", "--burst", check=0, timeout=20)
    assert p.returncode == 0
    later, now = cli.job("later"), cli.job("now")
    assert later["state"] == now["state"] == "completed"
    waited = parse_at(later["started_at"]) - parse_at(later["created_at"])
    assert waited >= 1.0, waited


def test_bulk_enqueue_jsonl_array_and_file(cli, tmp_path):
    lines = "\n".join(json.dumps({"id": f"b{i}", "command": "true"}) for i in range(3)) + "\n"
    assert cli.ok("enqueue", "-", input=lines) == "enqueued 3 jobs\n"
    array = json.dumps([{"id": "a1", "command": "true"}, {"command": "true", "priority": 2}])
    assert cli.ok("enqueue", "-", input=array) == "enqueued 2 jobs\n"
    f = tmp_path / "jobs.jsonl"
    f.write_text(json.dumps({"id": "f1", "command": "true"}) + "\n")
    assert cli.ok("enqueue", "--file", f) == "enqueued 1 jobs\n"
    listed = cli.json("list")
    assert len(listed) == 6
    assert [j["id"] for j in listed][:4] == ["b0", "b1", "b2", "a1"]
    assert {j["state"] for j in listed} == {"pending"}
    assert len([e for e in history(cli) if e["event"] == "enqueued"]) == 6


@pytest.mark.backends("sqlite")   # about database files
def test_persistence_across_processes(cli, tmp_path):
    # Process 1 enqueues; independent later processes see it, run it, report it.
    db = tmp_path / "persist.db"
    env = {k: v for k, v in cli.env.items() if k != "QUEUECTL_DB"}
    def q(*args, **kw):
        return subprocess.run(QUEUECTL + ["--db", str(db), *args], text=True,
                              capture_output=True, env=env, cwd=tmp_path, timeout=30, **kw)

    assert q("enqueue", json.dumps({"id": "keep", "command": "echo kept"})).stdout == "enqueued keep\n"
    listed = json.loads(q("list", "--json").stdout)
    assert [j["id"] for j in listed] == ["keep"]
    # --db after the command works as well.
    assert json.loads(q("status", "--json").stdout)["jobs"]["pending"] == 1
    assert q("worker", "start", "--burst").returncode == 0
    shown = json.loads(q("show", "keep", "--json").stdout)
    assert shown["state"] == "completed" and shown["output"] == "kept\n"
    # The fixture's own database was never touched.
    assert not os.path.exists(cli.db) or cli.json("list") == []


@pytest.mark.backends("sqlite")   # about database files
def test_db_from_env_and_default_path(cli, tmp_path):
    # $QUEUECTL_DB is used when there is no --db ...
    cli.enqueue(id="viaenv", command="true")
    assert os.path.exists(cli.db)
    # ... and ./queuectl.db when there is neither.
    work = tmp_path / "cwd"
    work.mkdir()
    env = {k: v for k, v in cli.env.items() if k != "QUEUECTL_DB"}
    p = subprocess.run(QUEUECTL + ["enqueue", json.dumps({"id": "viacwd", "command": "true"})],
                       text=True, capture_output=True, env=env, cwd=work, timeout=30)
    assert p.returncode == 0, p.stderr
    assert (work / "queuectl.db").exists()
    assert [j["id"] for j in cli.json("list")] == ["viaenv"]


@pytest.mark.backends("sqlite")   # about database files
def test_new_database_file_mode_is_0600(cli):
    old = os.umask(0)        # even a permissive umask must not widen the mode
    try:
        cli.ok("status")     # a read creates nothing ...
        assert not os.path.exists(cli.db)
        cli.enqueue(command="true")    # ... the first write creates the file
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(cli.db).st_mode)
    assert mode == 0o600, oct(mode)


def test_json_outputs_parse_and_empty_lists(cli):
    assert cli.json("list") == []
    assert cli.json("list", "--state", "dead") == []
    assert cli.json("dlq", "list") == []
    assert cli.json("worker", "list") == []
    st = cli.json("status")
    assert st["jobs"] == EMPTY_COUNTS
    assert st["workers"]["active"] == 0
    cfg = cli.json("config", "list")
    assert {"max_retries", "backoff_base", "backoff_max", "job_timeout",
            "lease_timeout"} <= set(cfg)
    assert cli.ok("history") == ""
    cli.enqueue(id="j1", command="true")
    listed = cli.json("list")
    assert [j["id"] for j in listed] == ["j1"]
    assert JOB_KEYS <= set(listed[0])
    assert cli.json("list", "--state", "pending")[0]["id"] == "j1"
    assert cli.json("list", "--state", "completed") == []
    shown = cli.json("show", "j1")
    assert shown["id"] == "j1" and "output" in shown


@pytest.mark.backends("sqlite")   # rejected before any database is opened
def test_list_unknown_state_is_exit_2(cli):
    line = assert_one_error_line(cli.run("list", "--state", "bogus"), 2)
    assert "bogus" in line


def test_list_limit(cli):
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"id": f"l{i}", "command": "true"}) + "\n" for i in range(5)))
    assert [j["id"] for j in cli.json("list", "--limit", "2")] == ["l0", "l1"]
    assert len(cli.json("list", "--limit", "0")) == 5


@pytest.mark.backends("sqlite")   # rejected before any database is opened
def test_python_dash_m_help(cli):
    p = subprocess.run([sys.executable, "-m", "queuectl", "--help"], text=True,
                       capture_output=True, timeout=30, env=cli.env)
    assert p.returncode == 0, p.stderr
    assert "usage" in p.stdout.lower()
    for command in ("enqueue", "worker", "status", "list", "dlq", "config"):
        assert command in p.stdout


@pytest.mark.backends("sqlite")   # rejected before any database is opened
def test_missing_command_is_usage_error(cli):
    assert_one_error_line(cli.run(), 2)
    assert_one_error_line(cli.run("frobnicate"), 2)
    assert_one_error_line(cli.run("worker"), 2)


def test_huge_output_keeps_a_bounded_tail(cli):
    # ~8 MB of output: the job completes, and only a bounded tail is kept.
    cli.enqueue(id="chatty", command="head -c 8000000 /dev/zero | tr '\\0' x; echo; echo THE-END")
    p = cli.run("worker", "start", "--burst", timeout=60)
    assert p.returncode == 0, p.stderr
    job = cli.job("chatty")
    assert job["state"] == "completed", job
    assert job["output"].endswith("x\nTHE-END\n")
    assert 1000 < len(job["output"]) <= 1024 * 1024, len(job["output"])
    logs = cli.run("logs", "chatty")
    assert logs.returncode == 0
    assert logs.stdout == job["output"]
    assert "truncated" in logs.stderr


def test_nul_characters_in_output_are_kept_as_replacement_characters(cli):
    cli.enqueue(id="nul", command="printf 'a\\000b'")
    cli.ok("worker", "start", "--burst")
    assert cli.job("nul")["state"] == "completed"
    assert cli.ok("logs", "nul") == "a\ufffdb"
