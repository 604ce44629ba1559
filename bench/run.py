"""queuectl benchmarks: every row is measured beside this machine's own ceiling,
in the same run, and printed as a ratio as well as an absolute figure.

    python bench/run.py [--jobs N] [--rounds R] [--pg URL] [--json]

Rows:
  drain          N `true` jobs drained by `queuectl worker start --count 2 --burst`
                 (wall time of the whole command, start-up included), against the
                 ceiling: the same N `subprocess.run("true", shell=True)` calls split
                 over 2 fresh Python processes (start-up included too).
  drain steady   the same runs without start-up: first job start to last job end
                 as recorded in the database, against the ceiling's longer loop.
  pickup         one idle worker: enqueue -> started_at, p50 and p99 over
                 --pickups jobs enqueued one by one with random 10-50 ms gaps
                 (both times from the database's clock).
With --pg (default $QUEUECTL_BENCH_PG, else the local test database if it
answers) the drain and pickup rows are measured on PostgreSQL too, in a fresh
schema each time, against the same ceiling rounds.
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


class Database:
    """A fresh database per measurement: an SQLite file, or a PostgreSQL schema."""

    def __init__(self, workdir: Path, pg: "str | None"):
        self.workdir, self.pg = workdir, pg

    def __enter__(self) -> str:
        if self.pg is None:
            self.url = str(self.workdir / f"bench-{time.monotonic_ns()}.db")
            return self.url
        import psycopg
        self.schema = f"bench_{os.getpid()}_{time.monotonic_ns()}"
        with psycopg.connect(self.pg, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {self.schema}")
        sep = "&" if "?" in self.pg else "?"
        return f"{self.pg}{sep}options=-csearch_path%3D{self.schema}"

    def __exit__(self, *exc):
        if self.pg is None:
            for suffix in ("", "-wal", "-shm"):
                Path(self.url + suffix).unlink(missing_ok=True)
            return
        import psycopg
        with psycopg.connect(self.pg, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {self.schema} CASCADE")


def drain(n: int, db: str) -> "tuple[float, float]":
    """(whole seconds, steady seconds) for draining n `true` jobs with 2 workers.
    `steady` is first start to last finish, as recorded in the database."""
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
    return elapsed, steady


def pickup(n: int, db: str) -> "tuple[float, float]":
    """(p50, p99) seconds from enqueue to start for an idle worker."""
    import random
    from queuectl.model import NewJob
    from queuectl.store import open_store
    store = open_store(db)
    worker = subprocess.Popen([QUEUECTL, "--db", db, "worker", "start", "--quiet"])
    try:
        deadline = time.monotonic() + 30
        while not store.active_workers():
            if time.monotonic() > deadline:
                raise SystemExit("pickup: the worker did not start")
            time.sleep(0.01)
        for i in range(n):
            time.sleep(random.uniform(0.01, 0.05))
            store.enqueue([NewJob(f"p{i}", "true", max_retries=0)])
        while store.has_unfinished():
            time.sleep(0.01)
        jobs = store.list_jobs()
    finally:
        worker.terminate()
        worker.wait(30)
        store.close()
    waits = sorted((j.started_at - j.created_at) / 1000 for j in jobs)
    return waits[len(waits) // 2], waits[min(len(waits) - 1, round(len(waits) * 0.99))]


def _pg_url(arg: "str | None") -> "str | None":
    url = arg or os.environ.get("QUEUECTL_BENCH_PG")
    if url == "none":
        return None
    try:
        import psycopg
        psycopg.connect(url or "postgresql://postgres@127.0.0.1:5432/test",
                        connect_timeout=3).close()
    except Exception as e:
        if url:
            raise SystemExit(f"--pg {url}: {e}")
        return None
    return url or "postgresql://postgres@127.0.0.1:5432/test"


def _seconds(iso_text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pickups", type=int, default=200)
    ap.add_argument("--pg", metavar="URL",
                    help="PostgreSQL to measure too ('none' to skip)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not QUEUECTL:
        raise SystemExit("queuectl is not installed in this environment")
    pg = _pg_url(args.pg)
    backends = [("sqlite", None)] + ([("postgres", pg)] if pg else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="queuectl-bench-") as tmp:
        ceil_s, drain_s = [], {name: [] for name, _ in backends}
        for _ in range(args.rounds):
            ceil_s.append(ceiling(args.jobs))
            for name, url in backends:
                with Database(Path(tmp), url) as db:
                    drain_s[name].append(drain(args.jobs, db))
        for name, _ in backends:
            for label, k in (("drain", 0), ("drain steady", 1)):
                queue = args.jobs / min(d[k] for d in drain_s[name])
                ceil = args.jobs / min(c[k] for c in ceil_s)
                rows.append({"row": f"{label} ({name})", "jobs": args.jobs,
                             "value": round(queue), "unit": "jobs/s",
                             "ceiling": round(ceil), "ratio": round(queue / ceil, 3)})
        for name, url in backends:
            with Database(Path(tmp), url) as db:
                p50, p99 = pickup(args.pickups, db)
            for label, v in (("p50", p50), ("p99", p99)):
                rows.append({"row": f"pickup {label} ({name})", "jobs": args.pickups,
                             "value": round(v * 1000, 1), "unit": "ms", "ceiling": None,
                             "ratio": None})
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "platform": platform.platform()}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return 0
    print(f"machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"{'row':26} {'jobs':>6} {'queue':>12} {'ceiling':>12} {'ratio':>6}")
    for r in rows:
        ceil = f"{r['ceiling']} {r['unit']}" if r["ceiling"] is not None else "-"
        ratio = f"{r['ratio']:.0%}" if r["ratio"] is not None else "-"
        print(f"{r['row']:26} {r['jobs']:>6} {str(r['value']) + ' ' + r['unit']:>12} "
              f"{ceil:>12} {ratio:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
