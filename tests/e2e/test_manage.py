"""End-to-end: managing jobs (remove, requeue, edit, cancel --all, queue
remove), list --queue, the missing-database note and `wait`'s hints, through
real `queuectl` processes; and those commands racing two draining workers."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest

from e2e_util import assert_one_error_line, counts, events, history, snapshot, start_logged, \
    wait_until

pytestmark = pytest.mark.e2e


def test_remove_requeue_edit_and_their_errors(cli):
    cli.enqueue(id="a", command="true")
    cli.ok("add", "--id", "b", "--after", "a", "--", "true")
    cli.ok("add", "--id", "c", "--queue", "x", "--", "true")
    before = snapshot(cli)
    # A job others wait for: refused without --force; nothing changed.
    line = assert_one_error_line(cli.run("remove", "a"), 1)
    assert line == ("queuectl: error: job a has 1 waiting dependent (b); --force removes "
                    "it and cancels them")
    assert_one_error_line(cli.run("remove", "no/such"), 2)
    assert_one_error_line(cli.run("requeue", "a"), 1)           # pending: nothing to requeue
    assert_one_error_line(cli.run("edit", "a"), 2)              # nothing to change
    assert_one_error_line(cli.run("edit", "a", "--priority", "x"), 2)
    assert_one_error_line(cli.run("edit", "a", "--delay", "soon"), 2)
    assert_one_error_line(cli.run("edit", "a", "--max-retries", "-1"), 2)
    assert_one_error_line(cli.run("edit", "nope", "--priority", "1"), 1)
    assert_one_error_line(cli.run("edit", "a", "--delay", "1m", "--run-at",
                                  "2030-01-01T00:00:00"), 2)
    assert_one_error_line(cli.run("cancel", "--all", "--state", "completed"), 2)
    assert_one_error_line(cli.run("cancel", "a", "--yes"), 2)
    assert_one_error_line(cli.run("queue", "remove", "x"), 1)   # it has a job
    assert snapshot(cli) == before

    assert cli.json("remove", "a", "--force") == {"removed": ["a"], "cancelled": ["b"],
                                                  "errors": []}
    assert cli.job("b")["state"] == "cancelled"
    assert cli.job("b")["last_error"] == "dependency a was removed"
    assert cli.run("show", "a").returncode == 1
    assert cli.ok("history", "--job-id", "b")

    edited = cli.json("edit", "c", "--priority", "7", "--delay", "1h", "--timeout", "1h30m",
                      "--max-retries", "0")
    assert (edited["priority"], edited["timeout"], edited["max_retries"]) == (7, 5400, 0)
    assert cli.ok("edit", "c", "--run-at", "2030-01-01T00:00:00").startswith(
        "edited c: priority 7, due 2030-01-01T00:00:00.000Z")

    # Several ids: each failure reported on its own line, the others still done; exit 1.
    r = cli.run("requeue", "c", "b", "nope")
    assert r.returncode == 1
    assert r.stdout == "requeued b (was cancelled)\n"      # its dependency went with a
    assert r.stderr.splitlines() == [
        "queuectl: error: job c is pending; only completed, dead or cancelled jobs can be "
        "requeued", "queuectl: error: job nope not found"]
    p = cli.run("cancel", "c", "--json")
    assert json.loads(p.stdout) == {"id": "c", "state": "cancelled"}
    assert cli.json("requeue", "c") == {"requeued": ["c"], "errors": []}
    job = cli.job("c")
    assert (job["state"], job["attempts"], job["finished_at"]) == ("pending", 0, None)
    assert events(cli, "c") == ["enqueued", "cancelled", "enqueued"]
    assert history(cli, "c")[-1]["requeued"] == "cancelled"

    assert cli.ok("remove", "b", "c") == "removed b\nremoved c\n"
    assert cli.json("list") == []


def test_queue_remove(cli):
    cli.ok("queue", "pause", "x")
    cli.ok("add", "--queue", "y", "--id", "j", "--", "true")
    cli.ok("queue", "limit", "y", "2")
    assert_one_error_line(cli.run("queue", "remove", "nosuch"), 1)
    line = assert_one_error_line(cli.run("queue", "remove", "y"), 1)
    assert line == "queuectl: error: queue y has 1 job; remove or purge them first"
    assert cli.ok("queue", "remove", "x") == "removed queue x\n"
    assert [q["name"] for q in cli.json("queue", "list")] == ["y"]
    cli.ok("remove", "j")
    assert cli.json("queue", "remove", "y") == {"removed": "y"}
    assert cli.json("queue", "list") == []


def test_cancel_all_asks_for_yes_before_killing_running_jobs(cli, tmp_path):
    cli.ok("add", "--id", "run", "--queue", "a", "--", "sleep 30")
    p = start_logged(cli, tmp_path / "w.log", "--quiet")
    cli.wait_state("run", "processing")
    for i in range(3):
        cli.ok("add", "--id", f"a{i}", "--queue", "a", "--", "true")
    cli.ok("add", "--id", "other", "--queue", "b", "--delay", "1h", "--", "true")

    def look():             # (heartbeats move the running job's lease: not compared)
        return (counts(cli), cli.ok("history"),
                [(j["id"], j["state"]) for j in cli.json("list")])

    before = look()
    line = assert_one_error_line(cli.run("cancel", "--all", "--queue", "a"), 2)
    assert "would cancel 1 running job (of 4)" in line and "--yes" in line
    assert look() == before
    out = cli.json("cancel", "--all", "--queue", "a", "--yes")
    assert out == {"cancelled": ["a0", "a1", "a2"], "cancelling": ["run"]}
    cli.wait_state("run", "cancelled")
    assert cli.job("other")["state"] == "pending"
    assert cli.ok("cancel", "--all", "--state", "pending") == "cancelled 1 job\n"
    assert cli.job("other")["state"] == "cancelled"
    p.send_signal(signal.SIGTERM)
    p.wait(20)


def test_list_queue_and_last(cli):
    for i, q in enumerate("abcab"):
        cli.ok("add", "--id", f"j{i}", "--queue", q, "--", "true")
    rows = cli.json("list", "--queue", "a", "--queue", "b")
    assert [r["id"] for r in rows] == ["j0", "j1", "j3", "j4"]
    assert [r["id"] for r in cli.json("list", "--queue", "b", "--last", "1")] == ["j4"]
    text = cli.ok("list", "--queue", "c")
    assert text.splitlines()[1].split()[0] == "j2" and len(text.splitlines()) == 2
    r = cli.run("list", "--queue", "nosuch")
    assert r.returncode == 0 and r.stderr == "no jobs in queue nosuch\n"
    assert_one_error_line(cli.run("list", "--queue", "bad name"), 2)


@pytest.mark.backends("sqlite")          # a file that is not there
def test_a_read_of_a_missing_database_says_so_and_answers_empty(cli, tmp_path):
    missing = tmp_path / "elsewhere" / ".." / "nothere.db"
    (tmp_path / "elsewhere").mkdir()
    for args in (["list"], ["status", "--json"], ["dlq", "list"], ["queue", "list"],
                 ["stats", "--json"]):
        r = cli.run("--db", missing, *args)
        assert r.returncode == 0, r
        assert r.stderr.splitlines()[0] == f"queuectl: no queue at {tmp_path}/nothere.db yet"
    assert cli.json("--db", missing, "status")["jobs"]["pending"] == 0
    assert not (tmp_path / "nothere.db").exists()
    r = cli.run("--db", missing, "_ids")
    assert r.returncode == 0 and r.stdout == r.stderr == ""   # completion stays quiet


@pytest.mark.backends("sqlite")          # CLI behaviour over the store's reads
def test_wait_says_once_why_nothing_moves(cli, tmp_path):
    cli.ok("add", "--id", "p1", "--queue", "slow", "--", "true")
    cli.ok("queue", "pause", "slow")
    r = cli.run("wait", "p1", "--timeout", "3.5")
    assert r.returncode == 124
    lines = r.stderr.splitlines()
    assert lines[:2] == [
        f"queuectl: wait: no active worker on this database ({cli.db}); "
        "jobs wait until one starts (queuectl worker start)",
        "queuectl: wait: queue slow is paused; its jobs wait (queuectl queue resume slow)"]
    assert len(lines) == 3 and "timed out" in lines[2], "each reason once"
    p = start_logged(cli, tmp_path / "w.log", "--quiet")
    wait_until(lambda: cli.active_workers() == 1)
    r = cli.run("wait", "--all", "--timeout", "3")
    assert r.returncode == 124
    assert "queue slow is paused" in r.stderr and "no active worker" not in r.stderr
    cli.ok("queue", "resume", "slow")
    r = cli.run("wait", "p1", "--timeout", "20")
    assert r.returncode == 0 and r.stderr == ""
    cli.ok("add", "--id", "long", "--", "sleep 4")
    r = cli.run("wait", "long", "--timeout", "30")
    assert r.returncode == 0 and r.stderr == "", "a running job is moving"
    p.send_signal(signal.SIGTERM)
    p.wait(20)


def test_commands_racing_two_draining_workers(cli, tmp_path):
    """220 jobs, 2 workers; remove, requeue, edit and cancel --all issued while
    they drain (queue c waits behind a, so that its jobs are still there to
    edit, and b is cancelled while it waits). Every job that was not removed ends completed or cancelled;
    each ran exactly as often as its history says it was claimed (a requeued
    job twice), none ran twice at once, and no removed job ran after."""
    marks = tmp_path / "ran.txt"
    cmd = f'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT" >> {marks}; sleep 0.1'
    a = [f"a{i:03d}" for i in range(150)]
    b = [f"b{i:03d}" for i in range(50)]
    lines = [json.dumps({"id": i, "command": cmd, "queue": "a"}) for i in a]
    c = [f"c{i:03d}" for i in range(20)]
    lines += [json.dumps({"id": i, "command": cmd, "queue": "b", "priority": -10}) for i in b]
    lines += [json.dumps({"id": i, "command": cmd, "queue": "c", "priority": -20}) for i in c]
    cli.ok("enqueue", "-", input="\n".join(lines) + "\n")
    p = start_logged(cli, tmp_path / "w.log", "--count", "2", "--quiet")
    wait_until(lambda: counts(cli)["completed"] >= 25, timeout=60)

    cancel = cli.run("cancel", "--all", "--queue", "b", "--state", "pending",
                     "--state", "failed", "--json")
    requeue = cli.run("requeue", *a[:30], "--json")
    remove = cli.run("remove", *a[30:60], "--json")
    edit = [cli.run("edit", i, "--priority", "5", "--json") for i in c[::2]]
    assert cli.run("wait", "--all", "--timeout", "120", timeout=130).returncode == 0

    requeued = json.loads(requeue.stdout)["requeued"]
    removed = json.loads(remove.stdout)["removed"]
    refused = [e["id"] for e in json.loads(remove.stdout)["errors"]]
    edited = [i for i, r in zip(c[::2], edit, strict=True) if r.returncode == 0]
    cancelled = json.loads(cancel.stdout)["cancelled"]
    assert requeued and removed and cancelled and edited, (
        requeue.stdout, remove.stdout, cancel.stdout, [r.stderr for r in edit])
    for r in edit:
        assert r.returncode == 0 or "only a waiting job" in r.stderr, r.stderr
    for e in json.loads(remove.stdout)["errors"]:
        assert "is processing; cancel it first" in e["error"], e
    for e in json.loads(requeue.stdout)["errors"]:
        assert "only completed, dead or cancelled" in e["error"], e

    ran = Counter(line.split()[0] for line in marks.read_text().splitlines())
    jobs = {j["id"]: j for j in cli.json("list", "--limit", "0")}
    claims = Counter(e["job_id"] for e in history(cli) if e["event"] == "processing")
    assert set(jobs) == set(a + b + c) - set(removed), "no job lost"
    for job_id in removed:
        assert ran[job_id] <= 1, job_id                  # ran before it was removed, or never
    for job_id, job in jobs.items():
        assert ran[job_id] == claims[job_id], (job_id, ran[job_id], claims[job_id])
        if job_id in cancelled:
            assert job["state"] == "cancelled" and ran[job_id] == 0
        else:
            assert job["state"] == "completed", job
            assert ran[job_id] == (2 if job_id in requeued else 1), job_id
    for job_id in refused + edited:
        assert jobs[job_id]["state"] == "completed"
    for job_id in edited:
        assert jobs[job_id]["priority"] == 5
    assert set(cancelled) <= set(b)
    p.send_signal(signal.SIGTERM)
    p.wait(30)
