"""Stress: 8 enqueuer processes (bulk batches and single enqueues through the
CLI) and 4 workers at once, on one database: zero errors, zero "database is
locked" on any stderr, and every job completed exactly once (one attempt, one
run, one `completed` event)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from chaos_util import (QUEUECTL, Fleet, assert_clean_logs, check_exactly_once, size,
                        summary, wait_until)
from e2e_util import counts

pytestmark = pytest.mark.chaos

ENQUEUERS = 8
SINGLES = 5          # single `enqueue '<json>'` calls per enqueuer, besides its batches

# One enqueuer: its share of the jobs in bulk batches, plus a few single
# enqueues, through the real CLI; every failure is reported on stderr and in
# the exit code.
ENQUEUER = r"""
import json, subprocess, sys
queuectl, me, n, batch, runs = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cmd = f'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT" >> {runs}'
ids = [f"e{me}-{i:05d}" for i in range(n)]
singles, ids = ids[:%d], ids[%d:]
failed = 0
def run(args, stdin=None):
    global failed
    p = subprocess.run(queuectl + args, input=stdin, text=True, capture_output=True)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        failed += 1
        sys.stderr.write(f"enqueuer {me}: exit {p.returncode}: {p.stdout}\n")
for k in range(0, len(ids), batch):
    chunk = ids[k:k + batch]
    run(["enqueue", "-"], "".join(json.dumps({"id": i, "command": cmd}) + "\n" for i in chunk))
    if singles:
        run(["enqueue", json.dumps({"id": singles.pop(), "command": cmd})])
for i in singles:
    run(["enqueue", json.dumps({"id": i, "command": cmd})])
sys.exit(1 if failed else 0)
""" % (SINGLES, SINGLES)


def test_eight_enqueuers_and_four_workers_zero_errors_every_job_once(cli, tmp_path, backend):
    n = size(2400, 20000)
    per = n // ENQUEUERS
    batch = size(100, 250)
    runs = tmp_path / "runs.txt"
    cli.ok("migrate")
    fleet = Fleet(cli, tmp_path, per_supervisor=2)
    enqueuers = []
    t0 = time.monotonic()
    try:
        fleet.start()
        fleet.start()
        for me in range(ENQUEUERS):
            log = open(tmp_path / f"enq-{me}.log", "w")
            enqueuers.append((subprocess.Popen(
                [sys.executable, "-c", ENQUEUER, json.dumps(QUEUECTL), str(me), str(per),
                 str(batch), str(runs)], env=cli.env, cwd=cli.cwd, stdout=subprocess.DEVNULL,
                stderr=log, start_new_session=True), log))
        for p, log in enqueuers:
            p.wait(600)
            log.close()
        enqueued_in = time.monotonic() - t0
        errs = "".join((tmp_path / f"enq-{me}.log").read_text() for me in range(ENQUEUERS))
        assert [p.returncode for p, _ in enqueuers] == [0] * ENQUEUERS, errs[-3000:]
        assert_clean_logs(errs)
        assert errs.strip() == "", errs[-3000:]
        try:
            wait_until(lambda: counts(cli)["completed"] == n, timeout=30 + n / 50,
                       interval=0.5, message=f"all {n} jobs to complete")
        except AssertionError as e:
            raise AssertionError(f"{e}: {counts(cli)}; {fleet.log_text()[-3000:]}") from None
        took = time.monotonic() - t0
        fleet.stop()
        logs = fleet.log_text()
        assert_clean_logs(logs)
        ids = [f"e{me}-{i:05d}" for me in range(ENQUEUERS) for i in range(per)]
        dups = check_exactly_once(cli, ids, runs, killed=set())
        assert dups["dup_runs"] == 0
    finally:
        for p, log in enqueuers:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        fleet.cleanup()
    summary(f"stress [{backend}]", jobs=n, enqueuers=ENQUEUERS, workers=4,
            cli_calls=ENQUEUERS * (-(-(per - SINGLES) // batch) + SINGLES), errors=0,
            database_is_locked=0, completed_once=n,
            enqueue_seconds=round(enqueued_in, 1), seconds=round(took, 1))
