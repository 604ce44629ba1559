"""End-to-end: claiming ahead is invisible except in speed (SQLite, the only
backend that claims ahead). A job taken ahead stays `pending` until it really
starts: status and list show it so, a cancel that lands before its turn
cancels it at once and it never starts, its started_at is its real start; and
a worker frozen past its lease never starts a job taken ahead that another
worker has taken meanwhile."""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import datetime

import pytest

from e2e_util import history, parse_at, start_logged, wait_exit, wait_until, worker_log

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite")]


def _bulk(cli, lines) -> None:
    import json
    cli.ok("enqueue", "-", input="".join(json.dumps(x) + "\n" for x in lines))


def test_a_job_taken_ahead_is_pending_until_it_starts_and_a_cancel_keeps_it_from_starting(
        cli, tmp_path):
    d = tmp_path
    # `a` is short, so the next claim takes `stop` and the rest ahead; `stop`
    # freezes its own worker (SIGSTOP to its parent) while the rest wait.
    _bulk(cli, [{"id": "a", "command": "true"},
                {"id": "stop", "command": f"touch {d}/stopped; kill -STOP $PPID"},
                {"id": "victim", "command": f"touch {d}/victim-ran"},
                {"id": "late", "command": f"date +%s.%N > {d}/late-start"}])
    log = tmp_path / "w.log"
    w = start_logged(cli, log, "--count", "1", "--burst")
    wait_until(lambda: (d / "stopped").exists(), timeout=20, message="the worker to freeze")
    worker_pid = cli.json("worker", "list")[0]["pid"]
    wait_until(lambda: open(f"/proc/{worker_pid}/stat").read().rsplit(")", 1)[1].split()[0]
               == "T", message="the worker to be stopped")
    # While the batch waits: one job is running (or ended, unrecorded), the
    # jobs taken ahead are pending, as far as anyone can tell.
    status = cli.json("status")["jobs"]
    assert status["processing"] <= 1, status
    assert cli.job("victim")["state"] == "pending" and cli.job("late")["state"] == "pending"
    assert cli.job("victim")["started_at"] is None
    # A cancel now is a cancel of a pending job: done at once.
    assert cli.ok("cancel", "victim").startswith("cancelled victim")
    time.sleep(1.0)          # frozen a while longer: late's start is later than its claim
    resumed = time.time()
    os.kill(worker_pid, signal.SIGCONT)
    assert wait_exit(w, 30) == 0, worker_log(log)
    assert not (d / "victim-ran").exists(), worker_log(log)
    assert cli.job("victim")["state"] == "cancelled"
    assert [e["event"] for e in history(cli, "victim")] == ["enqueued", "cancelled"]
    late = cli.job("late")
    assert late["state"] == "completed", (late, worker_log(log))
    real = float((d / "late-start").read_text())
    started = parse_at(late["started_at"])
    assert started >= resumed - 0.05 and abs(started - real) < 0.5, (started, real, resumed)


def _runs(path) -> list:
    """(job id, worker pid, start time) of every run the jobs noted."""
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), float(parts[2])))
    return out


def test_a_worker_frozen_past_its_lease_never_starts_a_job_taken_back_meanwhile(
        cli, tmp_path):
    # Two workers drain short jobs with a 1 s lease; one is frozen (SIGSTOP)
    # for longer than the lease at random moments, again and again, then let
    # go. Its jobs taken ahead are taken by the other worker meanwhile. No run
    # may start on a worker after another worker claimed that job. (This also
    # caught, once in a full run, a job claimed the ordinary way (the first
    # of a batch) started after a freeze between the claim's commit and the
    # start: a claim's age is now measured from before the claim.)
    cli.ok("config", "set", "lease_timeout", "1")
    cli.ok("config", "set", "backoff_base", "1")
    runs = tmp_path / "runs"
    rng = random.Random(13)
    trials, deadline = 0, time.monotonic() + 60
    a = start_logged(cli, tmp_path / "a.log", "--count", "1")
    b = start_logged(cli, tmp_path / "b.log", "--count", "1")
    wait_until(lambda: len(cli.json("worker", "list")) == 2, message="two workers")
    pids = [x["pid"] for x in cli.json("worker", "list")]
    n = 0
    while trials < 12 and time.monotonic() < deadline:
        _bulk(cli, [{"id": f"t{n + i:04d}",
                     "command": f'echo "$QUEUECTL_JOB_ID $PPID $(date +%s.%N)" >> {runs}'}
                    for i in range(300)])
        n += 300
        time.sleep(rng.uniform(0.02, 0.15))         # mid-drain
        victim = pids[trials % 2]
        os.kill(victim, signal.SIGSTOP)
        time.sleep(2.6 + rng.uniform(0, 0.4))        # longer than the lease and a rescue round
        os.kill(victim, signal.SIGCONT)
        trials += 1
        wait_until(lambda: cli.json("status")["jobs"]["pending"] == 0, timeout=30,
                   message="the batch to drain")
    wait_until(lambda: cli.json("status")["jobs"]["completed"] == n, timeout=30,
               message="every job completed")
    # When each job was taken from each worker: claimed by another worker,
    # or taken back from this one by a rescue.
    taken: dict = {}
    for e in history(cli):
        if e["event"] in ("processing", "lease_expired"):
            pid = int(e["worker_id"].split(":")[-2])
            taken.setdefault(e["job_id"], []).append((parse_at(e["at"]), pid, e["event"]))
    stale = []
    for job_id, pid, t in _runs(runs):
        # A run by `pid` is stale if, when it began, the job's last claim or
        # rescue was not `pid`'s own claim. (A job taken ahead notes its
        # claim at its start, just before the run; one whose run was never
        # recorded, its worker frozen, notes none: it ran while reserved.)
        before = [x for x in taken.get(job_id, []) if x[0] <= t + 0.001]
        last = max(before) if before else None
        if last is not None and (last[2] != "processing" or last[1] != pid):
            stale.append((job_id, pid, t))
    for p in (a, b):
        p.send_signal(signal.SIGTERM)
        wait_exit(p, 20)
    assert not stale, (f"{len(stale)} stale starts after a freeze ({trials} freezes): "
                       f"{stale[:5]} {[taken[j] for j, _, _ in stale[:5]]}")


def test_a_worker_frozen_right_before_starting_a_job_taken_ahead_does_not_start_it(
        cli, tmp_path):
    # Deterministic: the worker is frozen at the one moment that matters,
    # between recording a job and starting the next one taken ahead. `b` is
    # the first job of a batch (taken after the short `a`); while it runs,
    # this test takes the database's write lock, so that the worker, once `b`
    # ends, waits for it in the very transaction that records `b`; then the
    # worker is frozen, the lock let go, and a second worker takes everything
    # over. Let go again, the frozen worker must start none of the jobs it
    # had taken ahead.
    import sqlite3
    cli.ok("config", "set", "lease_timeout", "1")
    cli.ok("config", "set", "backoff_base", "1")
    d = tmp_path
    held = [f"h{i}" for i in range(5)]
    _bulk(cli, [{"id": "a", "command": "true"},
                {"id": "b", "command": f"touch {d}/b-started; sleep 0.1"}]
          + [{"id": h, "command": f'echo "$QUEUECTL_JOB_ID $PPID" >> {d}/runs'}
             for h in held])
    w1 = start_logged(cli, tmp_path / "w1.log", "--count", "1")
    wait_until(lambda: (d / "b-started").exists(), timeout=20, message="b to start")
    lock = sqlite3.connect(cli.db, timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    w1_pid = int(cli.job("b")["worker_id"].split(":")[-2])
    time.sleep(0.4)             # b ends; its worker now waits for the lock to record it
    os.kill(w1_pid, signal.SIGSTOP)
    lock.execute("ROLLBACK")
    lock.close()
    try:
        w2 = start_logged(cli, tmp_path / "w2.log", "--count", "1")

        def taken_over():
            runs = (d / "runs").read_text().split("\n") if (d / "runs").exists() else []
            return len([r for r in runs if r]) >= len(held)
        wait_until(taken_over, timeout=30, message="the second worker to run the held jobs")
    finally:
        os.kill(w1_pid, signal.SIGCONT)
    wait_until(lambda: all(cli.job(h)["state"] == "completed" for h in held), timeout=20,
               message="the held jobs to complete")
    time.sleep(1.0)             # room for a stale start, were there to be one
    runs = [line.split() for line in (d / "runs").read_text().splitlines()]
    by_w1 = [job for job, pid in runs if int(pid) == w1_pid]
    for p in (w1, w2):
        p.send_signal(signal.SIGTERM)
        wait_exit(p, 20)
    assert by_w1 == [], (by_w1, worker_log(tmp_path / "w1.log"))
    assert sorted(job for job, _ in runs) == held, runs
