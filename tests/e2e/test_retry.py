"""End-to-end: retries with measured exponential backoff, the DLQ, dlq retry."""

from __future__ import annotations

import json

import pytest

from e2e_util import assert_one_error_line, counts, events, history, parse_at, snapshot

pytestmark = pytest.mark.e2e


def _kill_dead(cli, *ids):
    """Make dead jobs quickly: always-failing, no retries."""
    for job_id in ids:
        cli.enqueue(id=job_id, command="echo failing; exit 5", max_retries=0)
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    for job_id in ids:
        assert cli.job(job_id)["state"] == "dead"


def test_backoff_spacing_then_dlq_then_retry(cli):
    cli.ok("config", "set", "backoff_base", "2")
    cli.ok("config", "set", "max_retries", "2")
    cli.enqueue(id="flaky", command="echo attempt $QUEUECTL_ATTEMPT; exit 3")
    p = cli.run("worker", "start", "--burst", timeout=40)
    assert p.returncode == 0, p.stderr

    job = cli.job("flaky")
    assert job["state"] == "dead"
    assert job["attempts"] == 3            # max_retries + 1
    assert job["max_retries"] == 2
    assert job["exit_code"] == 3
    assert job["last_error"].startswith("exit code 3")
    assert job["output"] == "attempt 3\n"

    hist = history(cli, "flaky")
    assert [e["event"] for e in hist] == [
        "enqueued", "processing", "retry_scheduled", "processing", "retry_scheduled",
        "processing", "dead"]
    starts = [parse_at(e["at"]) for e in hist if e["event"] == "processing"]
    assert [e["attempt"] for e in hist if e["event"] == "processing"] == [1, 2, 3]
    gap1, gap2 = starts[1] - starts[0], starts[2] - starts[1]
    # backoff_base ** k after failed attempt k, +0..10% jitter, never less.
    assert 2.0 <= gap1 < 3.0, gap1
    assert 4.0 <= gap2 < 6.0, gap2

    dead = cli.json("dlq", "list")
    assert [j["id"] for j in dead] == ["flaky"]
    assert dead[0]["state"] == "dead" and dead[0]["attempts"] == 3
    assert "flaky" in cli.ok("dlq", "list")
    assert counts(cli)["dead"] == 1

    assert cli.ok("dlq", "retry", "flaky") == "retried flaky\n"
    job = cli.job("flaky")
    assert job["state"] == "pending"
    assert job["attempts"] == 0
    assert cli.json("dlq", "list") == []
    assert events(cli, "flaky")[-1] == "dlq_retry"
    assert counts(cli) == {"pending": 1, "processing": 0, "completed": 0, "failed": 0, "dead": 0,
                           "cancelled": 0}


def test_dlq_retry_makes_the_job_runnable_again(cli, tmp_path):
    marker = tmp_path / "second-time"
    cli.enqueue(id="once", max_retries=0,
                command=f"test -e {marker} || {{ touch {marker}; exit 1; }}")
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    assert cli.job("once")["state"] == "dead"
    assert cli.ok("dlq", "retry", "once") == "retried once\n"
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    job = cli.job("once")
    assert job["state"] == "completed"
    assert job["attempts"] == 1          # counted again from 0
    assert job["exit_code"] == 0 and job["last_error"] is None


@pytest.mark.backends("sqlite")   # CLI error paths; the store's NotFound/Conflict are in the contract suite
def test_dlq_retry_of_non_dead_or_unknown_id_changes_nothing(cli):
    _kill_dead(cli, "deadjob")
    cli.enqueue(id="done", command="true")
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    cli.enqueue(id="waiting", command="true", delay=3600)
    assert cli.job("done")["state"] == "completed"

    before = snapshot(cli)
    for job_id in ("waiting", "done", "no-such-job"):
        line = assert_one_error_line(cli.run("dlq", "retry", job_id), 1)
        assert job_id in line
        assert snapshot(cli) == before
    # Neither an id nor --all (or both) is a usage error.
    assert_one_error_line(cli.run("dlq", "retry"), 2)
    assert_one_error_line(cli.run("dlq", "retry", "deadjob", "--all"), 2)
    assert snapshot(cli) == before
    assert cli.job("deadjob")["state"] == "dead"


def test_dlq_retry_all(cli):
    _kill_dead(cli, "d1", "d2", "d3")
    cli.enqueue(id="fine", command="true")
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    assert len(cli.json("dlq", "list")) == 3

    assert cli.ok("dlq", "retry", "--all") == "retried 3 jobs\n"
    for job_id in ("d1", "d2", "d3"):
        job = cli.job(job_id)
        assert job["state"] == "pending" and job["attempts"] == 0, job
        assert events(cli, job_id)[-1] == "dlq_retry"
    assert cli.job("fine")["state"] == "completed"
    assert cli.json("dlq", "list") == []
    assert cli.ok("dlq", "retry", "--all") == "retried 0 jobs\n"


def test_max_retries_is_copied_at_enqueue(cli):
    cli.ok("config", "set", "max_retries", "0")
    cli.enqueue(id="zero", command="exit 1")
    cli.ok("config", "set", "max_retries", "5")
    cli.enqueue(id="five", command="true")
    cli.enqueue(id="own", command="true", max_retries=1)
    assert cli.job("zero")["max_retries"] == 0
    assert cli.job("five")["max_retries"] == 5
    assert cli.job("own")["max_retries"] == 1
    # The copy, not today's config, decides: one attempt, then the DLQ.
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    zero = cli.job("zero")
    assert zero["state"] == "dead" and zero["attempts"] == 1


def test_job_timeout_default_is_copied_at_enqueue(cli):
    cli.ok("config", "set", "job_timeout", "7")
    cli.enqueue(id="t7", command="true")
    cli.enqueue(id="t0", command="true", timeout=0)
    cli.ok("config", "set", "job_timeout", "0")
    assert cli.job("t7")["timeout"] == 7
    assert cli.job("t0")["timeout"] == 0


def test_failure_with_stderr_is_readable(cli):
    cli.enqueue(id="loud", max_retries=0, command="echo out; echo 'it broke' >&2; exit 4")
    cli.run("worker", "start", "--burst", check=0, timeout=20)
    job = cli.job("loud")
    assert job["exit_code"] == 4
    assert job["last_error"].startswith("exit code 4") and "it broke" in job["last_error"]
    assert cli.ok("logs", "loud") == "out\nit broke\n"
    dead = json.loads(cli.ok("dlq", "list", "--json"))
    assert dead[0]["last_error"] == job["last_error"]
