"""queuectl benchmarks: every row is measured beside this machine's own ceiling,
in the same run, and printed as a ratio as well as an absolute figure.

    python bench/run.py [--jobs N] [--rounds R] [--json]

Rows:
  drain   N `true` jobs drained by `queuectl worker start --count 2 --burst`
          (wall time of the whole command, start-up included), against the
          ceiling: the same N `subprocess.run("true", shell=True)` calls split
          over 2 fresh Python processes (start-up included too).
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
    "import subprocess, sys\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    subprocess.run('true', shell=True)\n")


def ceiling(n: int) -> float:
    """Seconds for n shell runs of `true` over 2 processes."""
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CEILING_CHILD, str(n // 2 + (i < n % 2))])
             for i in range(2)]
    for p in procs:
        p.wait()
    return time.perf_counter() - t


def drain(n: int, workdir: Path) -> float:
    db = workdir / f"drain-{time.monotonic_ns()}.db"
    payload = "".join('{"command": "true"}\n' for _ in range(n))
    subprocess.run([QUEUECTL, "--db", str(db), "enqueue", "-"], input=payload, text=True,
                   check=True, capture_output=True)
    t = time.perf_counter()
    subprocess.run([QUEUECTL, "--db", str(db), "worker", "start", "--count", "2", "--burst",
                    "--quiet"], check=True, capture_output=True)
    elapsed = time.perf_counter() - t
    out = subprocess.run([QUEUECTL, "--db", str(db), "status", "--json"], check=True,
                         capture_output=True, text=True).stdout
    done = json.loads(out)["jobs"]["completed"]
    if done != n:
        raise SystemExit(f"drain: only {done} of {n} jobs completed")
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return elapsed


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
    ceil_rate = args.jobs / min(ceil_s)
    drain_rate = args.jobs / min(drain_s)
    rows = [{"row": "drain", "jobs": args.jobs, "queue_jobs_per_s": round(drain_rate),
             "ceiling_jobs_per_s": round(ceil_rate), "ratio": round(drain_rate / ceil_rate, 3)}]
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "platform": platform.platform()}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return 0
    print(f"machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"{'row':8} {'jobs':>6} {'queue/s':>9} {'ceiling/s':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['row']:8} {r['jobs']:>6} {r['queue_jobs_per_s']:>9} "
              f"{r['ceiling_jobs_per_s']:>10} {r['ratio']:>6.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
