"""queuectl benchmarks: every row is measured beside this machine's own ceiling,
in the same run, and printed as a ratio as well as an absolute figure.

    python bench/run.py [--jobs N] [--rounds R] [--json]

Rows:
  drain          N `true` jobs drained by `queuectl worker start --count 2 --burst`
                 (wall time of the whole command, start-up included), against the
                 ceiling: the same N `subprocess.run("true", shell=True)` calls split
                 over 2 fresh Python processes (start-up included too).
  drain steady   the same runs without start-up: first job start to last job end
                 as recorded in the database, against the ceiling's longer loop.
Rounds alternate ceiling and queue so that noise from a shared machine hits
both; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
QUEUECTL = str(BIN / "queuectl") if (BIN / "queuectl").exists() else shutil.which("queuectl")

CEILING_CHILD = (
    "import subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    subprocess.run('true', shell=True)\n"
    "print(time.perf_counter() - t)\n")


def ceiling(n: int) -> "tuple[float, float]":
    """(whole seconds, loop seconds) for n shell runs of `true` over 2 processes.
    `loop` leaves out interpreter start-up: the longer of the two loops."""
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CEILING_CHILD, str(n // 2 + (i < n % 2))],
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    loops = [float(p.communicate()[0]) for p in procs]
    return time.perf_counter() - t, max(loops)


def drain(n: int, workdir: Path) -> "tuple[float, float]":
    """(whole seconds, steady seconds) for draining n `true` jobs with 2 workers.
    `steady` is first start to last finish, as recorded in the database."""
    db = workdir / f"drain-{time.monotonic_ns()}.db"
    payload = "".join('{"command": "true"}\n' for _ in range(n))
    subprocess.run([QUEUECTL, "--db", str(db), "enqueue", "-"], input=payload, text=True,
                   check=True, capture_output=True)
    t = time.perf_counter()
    subprocess.run([QUEUECTL, "--db", str(db), "worker", "start", "--count", "2", "--burst",
                    "--quiet"], check=True, capture_output=True)
    elapsed = time.perf_counter() - t
    out = subprocess.run([QUEUECTL, "--db", str(db), "list", "--json"], check=True,
                         capture_output=True, text=True).stdout
    jobs = json.loads(out)
    done = sum(j["state"] == "completed" for j in jobs)
    if done != n:
        raise SystemExit(f"drain: only {done} of {n} jobs completed")
    steady = _seconds(max(j["finished_at"] for j in jobs)) - _seconds(
        min(j["started_at"] for j in jobs))
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return elapsed, steady


def _seconds(iso_text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not QUEUECTL:
        raise SystemExit("queuectl is not installed in this environment")
    with tempfile.TemporaryDirectory(prefix="queuectl-bench-") as tmp:
        ceil_s, drain_s = [], []
        for _ in range(args.rounds):
            ceil_s.append(ceiling(args.jobs))
            drain_s.append(drain(args.jobs, Path(tmp)))
    rows = []
    for name, k in (("drain", 0), ("drain steady", 1)):
        queue = args.jobs / min(d[k] for d in drain_s)
        ceil = args.jobs / min(c[k] for c in ceil_s)
        rows.append({"row": name, "jobs": args.jobs, "queue_jobs_per_s": round(queue),
                     "ceiling_jobs_per_s": round(ceil), "ratio": round(queue / ceil, 3)})
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "platform": platform.platform()}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return 0
    print(f"machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"{'row':13} {'jobs':>6} {'queue/s':>9} {'ceiling/s':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['row']:13} {r['jobs']:>6} {r['queue_jobs_per_s']:>9} "
              f"{r['ceiling_jobs_per_s']:>10} {r['ratio']:>6.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
