"""End-to-end: named queues (worker --queue, pause, resume, limit) and cancel."""

from __future__ import annotations

import json
import signal
import time

import pytest

from e2e_util import (assert_one_error_line, counts, events, parse_at, read_pid,
                      pgroup_gone, snapshot, wait_exit, wait_until)

pytestmark = pytest.mark.e2e


def test_queue_field_list_and_worker_filter(cli):
    cli.enqueue(id="m1", command="true", queue="mail")
    cli.enqueue(id="d1", command="true")
    rows = {q["name"]: q for q in cli.json("queue", "list")}
    assert set(rows) == {"default", "mail"}
    assert rows["mail"]["pending"] == 1 and rows["mail"]["paused"] is False
    assert rows["mail"]["limit"] == 0
    assert cli.job("m1")["queue"] == "mail" and cli.job("d1")["queue"] == "default"
    # A worker for "mail" only leaves "default" alone.
    p = cli.start("--queue", "mail", "--queue", "other", "--quiet")
    cli.wait_state("m1", "completed")
    time.sleep(0.5)
    assert cli.job("d1")["state"] == "pending"
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 10) == 0
    text = cli.ok("queue", "list")
    assert "mail" in text and "default" in text


def test_pause_while_workers_poll_then_resume(cli):
    p = cli.start("--count", "2", "--quiet")
    wait_until(lambda: cli.active_workers() == 2, message="workers up")
    assert cli.ok("queue", "pause", "bulk") == "paused bulk\n"
    for i in range(4):
        cli.enqueue(id=f"b{i}", command="true", queue="bulk")
    cli.enqueue(id="other", command="true")
    cli.wait_state("other", "completed")
    time.sleep(1.0)     # the workers keep polling; nothing of "bulk" may start
    assert [cli.job(f"b{i}")["state"] for i in range(4)] == ["pending"] * 4
    assert cli.json("queue", "list")[0]["paused"] is True
    assert cli.ok("queue", "resume", "bulk") == "resumed bulk\n"
    for i in range(4):
        cli.wait_state(f"b{i}", "completed")
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 10) == 0


def test_limit_of_one_with_four_workers_never_runs_two_at_once(cli):
    assert cli.ok("queue", "limit", "solo", "1") == "limit 1 for solo\n"
    ids = [f"s{i}" for i in range(6)]
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"id": i, "command": "sleep 0.3", "queue": "solo"}) + "\n" for i in ids))
    cli.enqueue(id="free", command="sleep 0.3")
    p = cli.start("--count", "4", "--quiet")
    for i in ids:
        cli.wait_state(i, "completed", timeout=30)
    spans = sorted((parse_at(cli.job(i)["started_at"]), parse_at(cli.job(i)["finished_at"]))
                   for i in ids)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two 'solo' jobs overlapped: {spans}"
    # Other queues are not held back by it.
    free = cli.wait_state("free", "completed")
    assert parse_at(free["started_at"]) < spans[1][0]
    assert cli.json("queue", "list")[1]["limit"] == 1
    assert cli.ok("queue", "limit", "solo", "0") == "no limit for solo\n"
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 10) == 0


def test_cancel_pending_and_terminal(cli):
    cli.enqueue(id="wait", command="true", delay=3600)
    assert cli.ok("cancel", "wait") == "cancelled wait\n"
    job = cli.job("wait")
    assert job["state"] == "cancelled" and job["finished_at"] is not None
    assert events(cli, "wait") == ["enqueued", "cancelled"]
    assert counts(cli)["cancelled"] == 1
    assert cli.json("list", "--state", "cancelled")[0]["id"] == "wait"
    before = snapshot(cli)
    line = assert_one_error_line(cli.run("cancel", "wait"), 1)
    assert "nothing to cancel" in line
    assert_one_error_line(cli.run("cancel", "ghost"), 1)
    assert_one_error_line(cli.run("cancel", "bad id"), 2)
    assert snapshot(cli) == before


def test_cancel_a_running_job_kills_its_process_group(cli, tmp_path):
    pidfile = tmp_path / "pid"
    cli.enqueue(id="long", command=f"sleep 60 & echo $$ > {pidfile}; wait", max_retries=3)
    p = cli.start("--quiet")
    cli.wait_state("long", "processing")
    pgid = read_pid(pidfile)
    t0 = time.monotonic()
    assert cli.ok("cancel", "long").startswith("cancelling long")
    job = cli.wait_state("long", "cancelled", timeout=10)
    assert time.monotonic() - t0 < 4.0
    wait_until(lambda: pgroup_gone(pgid), timeout=5, message="the job's process group gone")
    assert job["attempts"] == 1, "not retried"
    assert events(cli, "long")[-1] == "cancelled"
    # The worker carries on with other work.
    cli.enqueue(id="after", command="true")
    cli.wait_state("after", "completed")
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 10) == 0


@pytest.mark.backends("sqlite")   # rejected before any database is opened
@pytest.mark.parametrize("args", [
    ["queue", "pause", "bad name"], ["queue", "limit", "q", "-1"], ["queue", "limit", "q", "x"],
    ["queue"], ["worker", "start", "--queue", "no/slash"],
])
def test_queue_usage_errors(cli, args):
    before = snapshot(cli)
    assert_one_error_line(cli.run(*args), 2)
    assert snapshot(cli) == before


@pytest.mark.backends("sqlite")   # CLI behaviour; set_queue is in the contract suite
def test_undoing_a_setting_of_an_unknown_queue_is_an_error(cli):
    # A misspelt `queue resume` must not answer "resumed" while the real
    # queue stays paused, nor leave a new queue row behind.
    assert_one_error_line(cli.run("queue", "resume", "mail"), 1)   # no database yet
    cli.ok("queue", "pause", "mail")
    before = (snapshot(cli), cli.ok("queue", "list", "--json"))
    line = assert_one_error_line(cli.run("queue", "resume", "mial"), 1)
    assert "queue mial not found" in line
    assert_one_error_line(cli.run("queue", "limit", "mial", "0"), 1)
    assert (snapshot(cli), cli.ok("queue", "list", "--json")) == before
    assert cli.ok("queue", "resume", "mail") == "resumed mail\n"
    assert cli.ok("queue", "resume", "mail") == "resumed mail\n", "resuming twice is fine"
    assert cli.ok("queue", "limit", "mail", "0") == "no limit for mail\n"
    cli.enqueue(id="j", command="true", queue="jobsonly")    # a queue with jobs, no settings
    assert cli.ok("queue", "resume", "jobsonly") == "resumed jobsonly\n"


@pytest.mark.backends("sqlite")   # CLI behaviour; grouping is tested above
def test_dlq_group_limit_and_exit_code_range(cli):
    for code in (1, 2, 2, 3, 3, 3):
        cli.enqueue(command=f"exit {code}", max_retries=0)
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    groups = cli.json("dlq", "list", "--group", "--limit", "2")
    assert [(g["exit_code"], g["count"]) for g in groups] == [(3, 3), (2, 2)]
    assert len(cli.json("dlq", "list", "--group", "--limit", "0")) == 3
    before = snapshot(cli)
    for code in ("-1", "256"):
        line = assert_one_error_line(cli.run("dlq", "retry", "--all", "--exit-code", code), 2)
        assert "--exit-code must be from 0 to 255" in line
    assert snapshot(cli) == before


@pytest.mark.backends("sqlite")   # rejected before any database is opened
def test_bad_queue_field_is_rejected(cli):
    line = assert_one_error_line(cli.run("enqueue", json.dumps({"command": "true",
                                                                "queue": "a b"})), 2)
    assert "queue" in line


def test_purge_and_dlq_triage(cli):
    for i, code in enumerate((2, 2, 3)):
        cli.enqueue(id=f"d{i}", command=f"echo 'failed at step {i}' >&2; exit {code}",
                    max_retries=0, queue="etl" if i else "default")
    cli.enqueue(id="fine", command="true")
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    groups = cli.json("dlq", "list", "--group")
    assert groups[0] == {"exit_code": 2, "error": "exit code #: failed at step #", "count": 2,
                         "examples": ["d0", "d1"]}
    assert groups[1]["exit_code"] == 3 and groups[1]["count"] == 1
    assert "failed at step #" in cli.ok("dlq", "list", "--group")
    assert cli.ok("dlq", "retry", "--all", "--queue", "etl", "--exit-code", "2") == \
        "retried 1 jobs\n"
    assert cli.job("d1")["state"] == "pending"
    assert_one_error_line(cli.run("dlq", "retry", "d0", "--queue", "etl"), 2)
    # Purge: nothing is old enough yet; then everything finished goes.
    assert cli.ok("purge", "--state", "completed", "--older-than", "1h") == "purged 0 jobs\n"
    assert cli.ok("purge", "--state", "completed", "--state", "dead",
                  "--older-than", "0s") == "purged 3 jobs\n"
    assert sorted(j["id"] for j in cli.json("list")) == ["d1"]
    assert_one_error_line(cli.run("purge", "--state", "pending", "--older-than", "1d"), 2)
    assert_one_error_line(cli.run("purge", "--state", "dead", "--older-than", "soon"), 2)
    assert_one_error_line(cli.run("purge", "--state", "dead"), 2)


def test_completed_ttl_makes_workers_prune(cli):
    assert cli.ok("config", "set", "completed_ttl", "1s") == "completed_ttl = 1\n"
    assert cli.json("config", "list")["completed_ttl"] == 1
    cli.enqueue(id="short-lived", command="true")
    p = cli.start("--quiet")
    cli.wait_state("short-lived", "completed")
    # Workers apply the TTL every 30 s; the first look comes 3 s after start.
    wait_until(lambda: cli.json("list") == [], timeout=15, message="the job to be pruned")
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 10) == 0
