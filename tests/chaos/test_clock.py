"""Clock jumps: a worker whose wall clock jumps hours forward or back neither
runs a job twice nor loses one.

The jumps are real for the process: each worker runs the real CLI in a Python
that reads its wall clock (`time.time_ns`, all that queuectl's SystemClock
uses) as the true time plus a shift read from a file, which the test rewrites
while the workers run. Monotonic clocks are untouched, as in a real clock step
(NTP, a VM resumed, an operator's `date -s`). (libfaketime would do the same
from outside, but Debian's 0.9.10 breaks Python 3.11's time.sleep once
CLOCK_MONOTONIC is left unfaked: EINVAL from clock_nanosleep.)

On PostgreSQL no host clock enters a lease (the server's clock does); on
SQLite leases are written with each worker's wall clock, and a rescuer judges
them by watching them go unrenewed for a lease term of its own monotonic time.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from chaos_util import (Fleet, bulk, check_exactly_once, children, kill, killpg, pgid_of,
                        read_runs, recording_command, summary, wait_until)
from e2e_util import history

pytestmark = pytest.mark.chaos

LEASE = 2
HOURS2 = 7200

# The real CLI, with the wall clock shifted by the number of seconds in a file
# (re-read at most every 20 ms; fork()ed workers inherit the patch).
CLOCKED = r"""
import sys, time
path = sys.argv[1]
real_ns, mono = time.time_ns, time.monotonic
state = [0, -1.0]
def now_ns():
    t = mono()
    if t - state[1] > 0.02:
        state[1] = t
        try:
            with open(path) as f:
                state[0] = int(float(f.read().strip() or 0) * 1e9)
        except (OSError, ValueError):
            pass
    return real_ns() + state[0]
time.time_ns = now_ns
time.time = lambda: now_ns() / 1e9
from queuectl.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _shift(path: Path, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(seconds))
    tmp.replace(path)


def _clocked(shift_file: Path):
    return lambda: [sys.executable, "-c", CLOCKED, str(shift_file), "worker", "start"]


def _power_kill(sup) -> None:
    """Supervisor, its worker and the worker's command, all at once."""
    sup.send_signal(signal.SIGSTOP)
    for w in children(sup.pid):
        groups = [pgid_of(c) for c in children(w)]
        kill(w)
        for g in groups:
            killpg(g)
    sup.send_signal(signal.SIGKILL)
    sup.wait(10)


def test_wall_clock_jumps_neither_double_run_nor_lose_jobs(cli, tmp_path, backend):
    cli.ok("config", "set", "lease_timeout", str(LEASE))
    cli.ok("config", "set", "backoff_base", "1")
    runs = tmp_path / "runs.txt"
    clock_a, clock_b = tmp_path / "clock-a", tmp_path / "clock-b"
    for f in (clock_a, clock_b):
        _shift(f, 0)
    fleet = Fleet(cli, tmp_path, per_supervisor=1)
    jumps = 0
    try:
        a = fleet.start("--queue", "qa", argv=_clocked(clock_a))
        b = fleet.start("--queue", "qb", argv=_clocked(clock_b))
        wait_until(lambda: len(cli.json("worker", "list")) == 2, message="both workers")

        # 1. Jobs that outlive several heartbeats run on both workers while
        #    their clocks jump: one at a time (A ahead: B's leases look hours
        #    expired to A; A behind: A's leases look hours expired to B) and
        #    both together (a host-wide step forward).
        ids = [f"{q}-{i}" for q in ("qa", "qb") for i in range(4)]
        bulk(cli, [{"id": i, "queue": i[:2], "command": recording_command(runs, 1.0),
                    "max_retries": 5} for i in ids])
        pattern = [(HOURS2, 0), (-HOURS2, 0), (0, HOURS2), (0, -HOURS2), (HOURS2, HOURS2),
                   (2 * HOURS2, 2 * HOURS2)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = sum(len(v) > 0 for v in read_runs(runs).values())
            if done == len(ids) and all(j["state"] == "completed"
                                        for j in cli.json("list", "--limit", "0")):
                break
            sa, sb = pattern[jumps % len(pattern)]
            _shift(clock_a, sa)
            _shift(clock_b, sb)
            jumps += 1
            time.sleep(0.7)
        for f in (clock_a, clock_b):
            _shift(f, 0)
        dups = check_exactly_once(cli, ids, runs, killed=set())
        assert dups["dup_runs"] == 0
        assert not [e for e in history(cli) if e["event"] == "lease_expired"]

        # 2. A dead worker's job is still rescued when its lease was written
        #    by a clock hours ahead (so it looks hours from expiring) and the
        #    rescuer's clock is hours behind.
        _shift(clock_a, HOURS2)
        _shift(clock_b, -HOURS2)
        cli.enqueue(id="held", queue="qa", max_retries=3, command=(
            f'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT" >> {runs}; '
            f'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 60; fi'))
        wait_until(lambda: cli.job("held")["state"] == "processing", message="held running")
        wait_until(lambda: len(read_runs(runs).get("held", [])) == 1, message="held started")
        time.sleep(LEASE / 2)          # a heartbeat or two with A's clock ahead
        fleet.killed_workers.update(dict.fromkeys(children(a.pid), "power"))
        _power_kill(a)
        killed_at = time.monotonic()
        wait_until(lambda: "lease_expired" in [e["event"] for e in history(cli, "held")],
                   timeout=LEASE + 10, message="the dead worker's job to be rescued")
        rescued_after = time.monotonic() - killed_at
        _shift(clock_a, 0)
        _shift(clock_b, 0)
        fleet.start("--queue", "qa")               # someone to run queue qa again
        cli.wait_state("held", "completed", timeout=20)
        dups2 = check_exactly_once(cli, ids + ["held"], runs, fleet.killed_workers)
        assert read_runs(runs)["held"] == [1, 2]
        fleet.stop()
    finally:
        fleet.cleanup()
    summary(f"clock jumps [{backend}]", jobs=len(ids) + 1, jumps=jumps, jump_hours="±2..4",
            double_runs=dups["dup_runs"], lost=0, rescues_of_live_jobs=0,
            dead_job_rescued_after_s=round(rescued_after, 1), rerun_after_kill=dups2["dup_runs"])
