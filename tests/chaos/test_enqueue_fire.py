"""Enqueue under fire: bulk `enqueue -` of 1,000 jobs SIGKILLed at random
moments (before, during and after its one transaction): every batch is then
either entirely present or entirely absent, with one `enqueued` event per job,
and a batch that printed `enqueued 1000 jobs` is always present."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import Counter

import pytest

from chaos_util import QUEUECTL, history, size, summary

pytestmark = pytest.mark.chaos

BATCH = 1000


def _batch(b: int) -> str:
    return "".join(json.dumps({"id": f"b{b:03d}-{i:04d}", "command": "true"}) + "\n"
                   for i in range(BATCH))


def _enqueue(cli, b: int, kill_after: "float | None"):
    """One `enqueue -`; SIGKILLed `kill_after` seconds after it started."""
    p = subprocess.Popen(QUEUECTL + ["enqueue", "-"], env=cli.env, cwd=cli.cwd,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    t0 = time.monotonic()
    try:
        p.stdin.write(_batch(b))
        p.stdin.close()
    except BrokenPipeError:
        pass
    if kill_after is not None:
        time.sleep(max(0.0, kill_after - (time.monotonic() - t0)))
        p.kill()
    p.wait(60)
    took = time.monotonic() - t0
    out, err = p.stdout.read(), p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    return p.returncode, out, err, took


def test_bulk_enqueues_killed_at_random_moments_are_all_or_nothing(cli, backend):
    rng = random.Random()
    n = size(16, 100)
    cli.ok("migrate")
    # How long one batch takes here, unkilled (the faster of two): the kills
    # land anywhere from the interpreter's start-up to the reply.
    full = None
    for b in (0, 1):
        rc, out, err, took = _enqueue(cli, b, None)
        assert rc == 0 and out.strip() == f"enqueued {BATCH} jobs", (out, err)
        full = took if full is None else min(full, took)
    acked = {0, 1}
    killed = 0
    for b in range(2, n):
        rc, out, err, _ = _enqueue(cli, b, rng.uniform(0.25 * full, 1.0 * full))
        if rc == 0:
            assert out.strip() == f"enqueued {BATCH} jobs", (out, err)
            acked.add(b)
        else:
            assert rc == -9, (rc, out, err)
            assert "Traceback" not in err, err
            killed += 1
    per_batch = Counter(j["id"].split("-")[0] for j in cli.json("list", "--limit", "0"))
    present = {int(k[1:]) for k in per_batch}
    partial = {k: v for k, v in per_batch.items() if v != BATCH}
    assert not partial, f"batches partly enqueued: {partial}"
    assert acked <= present, f"acknowledged batches missing: {sorted(acked - present)}"
    enq = Counter(e["job_id"] for e in history(cli) if e["event"] == "enqueued")
    assert len(enq) == BATCH * len(present) and set(enq.values()) == {1}
    if backend == "sqlite":
        import sqlite3
        with sqlite3.connect(cli.db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    summary(f"enqueue under fire [{backend}]", batches=n, killed=killed,
            killed_but_committed=len(present - acked), present=len(present),
            absent=n - len(present), partial=0, batch_seconds=round(full, 2))
