"""End-to-end: claiming ahead (config `claim_ahead`). After a job shorter
than 20 ms a worker claims several at once and records them together; a job
that turns out long gives the rest back; `claim_ahead 0` turns it off; a
SIGKILLed worker's jobs (run or not) are rescued and none is lost.

SQLite only: the PostgreSQL backend never claims ahead (store.can_claim_ahead).
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from e2e_util import history, start_logged, wait_exit, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite")]   # see the docstring


def _max_held(events: list[dict]) -> int:
    """The most jobs one worker held at once (claimed and not yet ended)."""
    held, most = Counter(), 0
    for e in events:
        w = e.get("worker_id")
        if e["event"] == "processing":
            held[w] += 1
            most = max(most, held[w])
        elif e["event"] in ("completed", "retry_scheduled", "dead", "cancelled",
                            "lease_expired") and w:
            held[w] -= 1
    return most


def _bulk(cli, lines) -> None:
    cli.ok("enqueue", "-", input="".join(json.dumps(x) + "\n" for x in lines))


@pytest.mark.parametrize("ahead", ["7", "0"])
def test_short_jobs_are_claimed_ahead_unless_claim_ahead_is_0(cli, ahead):
    cli.ok("config", "set", "claim_ahead", ahead)
    _bulk(cli, [{"id": f"j{i:02d}", "command": "true"} for i in range(40)])
    cli.run("worker", "start", "--burst", "--quiet", check=0, timeout=60)
    assert cli.json("status")["jobs"]["completed"] == 40
    evs = history(cli)
    # Invisible either way: one job at a time per worker, each with its own
    # start (a job taken ahead stays pending until it really starts) ...
    assert _max_held(evs) == 1
    # ... but with claim_ahead, a batch's attempts are recorded in one
    # transaction (one commit time), with the next claim.
    ends = Counter(e["at"] for e in evs if e["event"] == "completed")
    if ahead == "0":
        assert max(ends.values()) <= 2
    else:
        assert 3 <= max(ends.values()) <= 8
    # Order is kept either way: jobs start in enqueue order.
    started = [e["job_id"] for e in evs if e["event"] == "processing"]
    assert started == sorted(started)


def test_a_long_job_gives_back_the_jobs_taken_ahead(cli, tmp_path):
    # Worker A takes the short jobs and, after them, `long` and the first k
    # jobs ahead. While `long` runs, A gives k back: worker B runs them all.
    _bulk(cli, [{"id": f"j{i}", "command": "true"} for i in range(6)]
          + [{"id": "long", "command": "sleep 4"}]
          + [{"id": f"k{i}", "command": "true"} for i in range(6)])
    a = start_logged(cli, tmp_path / "a.log", "--count", "1")
    a_id = cli.wait_state("long", "processing", timeout=20)["worker_id"]
    b = start_logged(cli, tmp_path / "b.log", "--count", "1")
    for i in range(6):
        k = cli.wait_state(f"k{i}", "completed", timeout=20)
        assert k["worker_id"] != a_id, k
    assert cli.job("long")["state"] == "processing"         # still running: given back
    cli.wait_state("long", "completed", timeout=20)
    for p in (a, b):
        p.send_signal(signal.SIGTERM)
        assert wait_exit(p, 20) == 0
    assert all(e["event"] != "lease_expired" for e in history(cli))


def test_sigkilled_worker_holding_jobs_taken_ahead_loses_none(cli, tmp_path):
    # Jobs note each run in a file. The worker is SIGKILLed mid-drain, while it
    # holds jobs taken ahead (run, unrecorded or not started). A new worker
    # finishes: every job completed once in history, each ran at least once,
    # and one that ran twice was taken back from the killed worker.
    cli.ok("config", "set", "lease_timeout", "1")
    cli.ok("config", "set", "backoff_base", "1")
    runs = tmp_path / "runs"
    _bulk(cli, [{"id": f"j{i:03d}", "command": f"echo j{i:03d} >> {runs}"}
                for i in range(400)])
    doomed = start_logged(cli, tmp_path / "doomed.log", "--count", "1")
    wait_until(lambda: runs.exists() and len(runs.read_text().split()) >= 60,
               timeout=30, message="the first worker to be busy")
    worker_pid = int(cli.json("worker", "list")[0]["pid"])
    os.kill(doomed.pid, signal.SIGSTOP)      # (so that it starts no replacement)
    os.kill(worker_pid, signal.SIGKILL)
    os.kill(doomed.pid, signal.SIGKILL)
    wait_exit(doomed, 20)
    cli.run("worker", "start", "--burst", "--quiet", check=0, timeout=120)

    jobs = cli.json("list", "--limit", "0")
    assert Counter(j["state"] for j in jobs) == {"completed": 400}
    evs = history(cli)
    completions = Counter(e["job_id"] for e in evs if e["event"] == "completed")
    assert set(completions.values()) == {1} and len(completions) == 400
    ran = Counter(runs.read_text().split())
    assert set(ran) == {j["id"] for j in jobs}
    rescued = {e["job_id"] for e in evs if e["event"] == "lease_expired"}
    assert rescued, "the kill left no job behind: it came too late to test anything"
    twice = {job_id for job_id, n in ran.items() if n > 1}
    # A job that ran twice was taken back from the killed worker: rescued
    # (it was running), or one of the batch it had reserved, run but not
    # yet recorded (at most claim_ahead of them; reserved jobs stay pending,
    # so they need no rescue).
    assert len(twice - rescued) <= 7, twice - rescued
    assert all(n <= 2 for n in ran.values())
    print(f"claim-ahead kill: {len(rescued)} jobs taken back, {len(twice)} of them "
          "had run (their result not yet recorded), none lost")
