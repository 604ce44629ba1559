"""queuectl benchmarks: every row is measured beside this machine's own ceiling,
in the same run, and printed as a ratio as well as an absolute figure.

    python bench/run.py [--jobs N] [--rounds R] [--pickups N] [--bulk N]
                        [--scale N] [--pg URL|none] [--only ROWS] [--json] [--quick]

Rows (each on SQLite; 1, 2 and 4 also on PostgreSQL when one answers):
  1 drain        N `true` jobs drained by `queuectl worker start --count 2 --burst`
                 (whole command), against the same N `subprocess.run("true",
                 shell=True)` calls split over 2 fresh Python processes. "steady":
                 first start to last finish from the database, against the loops.
  2 bulk enqueue --bulk jobs through one `queuectl enqueue -` (whole command),
                 against a bare sqlite3 executemany of as many rows into a table
                 of the same shape (SQLite) / the same client's COPY (PostgreSQL).
  3 enqueue      one `queuectl enqueue '<json>'` from the console script, median
                 of 20 whole-process wall times, against `python -c pass`.
  4 pickup       one idle worker: enqueue -> started_at, p50 and p99 over
                 --pickups jobs enqueued one by one with random 10-50 ms gaps;
                 and the CPU the idle worker process used over 10 s before.
  5 scale        --scale jobs already in the database (90% completed, 10%
                 pending but due tomorrow): `status --json` and `list --state
                 pending --limit 50` (median of 5, minus `python -c pass`), and the
                 drain rate of N new jobs against row 1's.
  6 memory       peak RSS of one worker process during row 1's drain.
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

# The commands measured here cache their bytecode as they would for a user
# (some environments, this CI's among them, turn that off).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

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


def drain(n: int, db: str) -> "tuple[float, float, int]":
    """(whole seconds, steady seconds, peak worker RSS in bytes) for draining n
    `true` jobs with 2 workers. `steady` is first start to last finish, as
    recorded in the database; the RSS is polled from /proc while it runs."""
    payload = "".join(f'{{"id": "drain-{i}", "command": "true"}}\n' for i in range(n))
    subprocess.run([QUEUECTL, "--db", str(db), "enqueue", "-"], input=payload, text=True,
                   check=True, capture_output=True)
    t = time.perf_counter()
    proc = subprocess.Popen([QUEUECTL, "--db", str(db), "worker", "start", "--count", "2",
                             "--burst", "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max([peak] + [_peak_rss(pid) for pid in _children(proc.pid)])
        time.sleep(0.02)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"drain: worker start failed: {proc.stderr.read().decode()}")
    start, end, done = _span(db, n)
    if done < n:
        raise SystemExit(f"drain: only {done} of {n} jobs completed")
    return elapsed, end - start, peak


def _span(db: str, n: int) -> "tuple[float, float, int]":
    """(first started_at, last finished_at, number completed) of the drain-*
    jobs (not the scale row's filler), in seconds."""
    from queuectl.store import open_store
    with open_store(db, create=False) as store:
        jobs = store.list_jobs("completed", n, search="drain-", newest_first=True)
    return (min(j.started_at for j in jobs) / 1000, max(j.finished_at for j in jobs) / 1000,
            len(jobs))


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) of a process in bytes, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _median_wall(argv: list, runs: int = 20, **kw) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       **kw)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def bulk(n: int, db: str) -> float:
    """Seconds for one `queuectl enqueue -` of n jobs (the whole command)."""
    payload = "".join(f'{{"id": "b{i}", "command": "true"}}\n' for i in range(n))
    t = time.perf_counter()
    subprocess.run([QUEUECTL, "--db", db, "enqueue", "-"], input=payload, text=True,
                   check=True, capture_output=True)
    return time.perf_counter() - t


def bulk_ceiling(n: int, workdir: Path, pg: "str | None") -> float:
    """Seconds to insert n rows of a job's shape with the bare driver in one
    transaction: sqlite3 executemany (WAL, synchronous=FULL) or psycopg COPY."""
    rows = [(f"b{i}", "true", 3, 0, 0, 0.0, 0, 0, "default") for i in range(n)]
    ddl = ("CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, command TEXT, "
           "max_retries INT, priority INT, run_at INT, timeout REAL, created_at INT, "
           "updated_at INT, queue TEXT)")
    if pg is None:
        import sqlite3
        path = workdir / f"ceiling-{time.monotonic_ns()}.db"
        t = time.perf_counter()
        c = sqlite3.connect(path, isolation_level=None)
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = FULL")
        c.execute(ddl)
        c.execute("BEGIN IMMEDIATE")
        c.executemany("INSERT INTO t (id, command, max_retries, priority, run_at, timeout, "
                      "created_at, updated_at, queue) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        c.execute("COMMIT")
        c.close()
        elapsed = time.perf_counter() - t
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return elapsed
    import psycopg
    t = time.perf_counter()
    with psycopg.connect(pg) as c:
        c.execute(ddl.replace("CREATE TABLE", "CREATE TEMP TABLE").replace(
            "INTEGER PRIMARY KEY", "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"))
        with c.cursor().copy("COPY t (id, command, max_retries, priority, run_at, timeout, "
                             "created_at, updated_at, queue) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
    return time.perf_counter() - t


def fill(db: str, n: int) -> None:
    """n old jobs in an SQLite database: 90% completed (with enqueued and
    completed events), 10% pending, due tomorrow in the paused queue `backlog`
    (so that a --burst drain of new jobs ends)."""
    import sqlite3
    subprocess.run([QUEUECTL, "--db", db, "migrate"], check=True, capture_output=True)
    now = time.time_ns() // 1_000_000
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    c.execute(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?) "
        "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, "
        "timeout, created_at, updated_at, started_at, finished_at, exit_code, queue) "
        "SELECT 'old-' || i, 'true', CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'completed' END, "
        "CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, 3, 0, "
        "CASE WHEN i % 10 = 0 THEN ? + 86400000 ELSE ? - ? + i END, 0, ? - ? + i, ? - ? + i, "
        "CASE WHEN i % 10 = 0 THEN NULL ELSE ? - ? + i END, "
        "CASE WHEN i % 10 = 0 THEN NULL ELSE ? - ? + i END, "
        "CASE WHEN i % 10 = 0 THEN NULL ELSE 0 END, "
        "CASE WHEN i % 10 = 0 THEN 'backlog' ELSE 'default' END FROM k",
        (n, now, now, 2 * n, now, 2 * n, now, 2 * n, now, 2 * n, now, 2 * n))
    c.execute("INSERT INTO events (job_id, event, attempt, at) "
              "SELECT id, 'enqueued', 0, created_at FROM jobs")
    c.execute("INSERT INTO events (job_id, event, attempt, at, worker_id, detail) "
              "SELECT id, 'completed', 1, finished_at, 'old-worker', "
              "'{\"exit_code\": 0, \"duration\": 0.001}' FROM jobs WHERE state = 'completed'")
    c.execute("COMMIT")
    c.execute("ANALYZE")
    c.close()
    subprocess.run([QUEUECTL, "--db", db, "queue", "pause", "backlog"], check=True,
                   capture_output=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pickup(n: int, db: str) -> "tuple[float, float, float]":
    """(p50, p99) seconds from enqueue to start for an idle worker, and the
    share of a core the idle worker process used over 10 s before that."""
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
        time.sleep(2.0)      # let start-up (imports, first housekeeping) pass
        kids = _children(worker.pid)
        before, t0 = sum(_cpu_seconds(k) for k in kids), time.monotonic()
        time.sleep(10.0)     # CPU time is counted in 10 ms ticks: a long window
        idle = (sum(_cpu_seconds(k) for k in kids) - before) / (time.monotonic() - t0)
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
    return (waits[len(waits) // 2], waits[min(len(waits) - 1, round(len(waits) * 0.99))],
            idle)


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


def _row(rows, name, n, value, unit, ceiling=None, ratio=None, note=None):
    rows.append({"row": name, "jobs": n, "value": value, "unit": unit, "ceiling": ceiling,
                 "ratio": None if ratio is None else round(ratio, 3), "note": note})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000, help="drain size (default 2000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pickups", type=int, default=200)
    ap.add_argument("--bulk", type=int, default=100_000, help="bulk enqueue size")
    ap.add_argument("--scale", type=int, default=1_000_000,
                    help="jobs already in the database for the scale row (0: skip)")
    ap.add_argument("--pg", metavar="URL",
                    help="PostgreSQL to measure too ('none' to skip)")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, one round (a smoke test of the suite)")
    ap.add_argument("--only", metavar="ROWS",
                    help="run only these rows, e.g. 1,3 (row 5's drain needs row 1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    only = {int(r) for r in args.only.split(",")} if args.only else None
    if only and 5 in only:
        only.add(1)

    def want(row: int) -> bool:
        return only is None or row in only or (row == 1 and 6 in only)
    if args.quick:
        args.jobs, args.rounds, args.pickups, args.bulk, args.scale = 200, 1, 20, 5000, 20000
    if not QUEUECTL:
        raise SystemExit("queuectl is not installed in this environment")
    pg = _pg_url(args.pg)
    backends = [("sqlite", None)] + ([("postgres", pg)] if pg else [])
    rows: list = []
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr,
                                                                flush=True))
    with tempfile.TemporaryDirectory(prefix="queuectl-bench-") as tmp:
        work = Path(tmp)
        # 1 (and 6): drain, alternating with the ceiling.
        if want(1):
            say(f"drain: {args.rounds} rounds of {args.jobs} jobs ...")
            ceil_s, drain_s = [], {name: [] for name, _ in backends}
            for _ in range(args.rounds):
                ceil_s.append(ceiling(args.jobs))
                for name, url in backends:
                    with Database(work, url) as db:
                        drain_s[name].append(drain(args.jobs, db))
            ceil_whole = args.jobs / min(c[0] for c in ceil_s)
            ceil_loop = args.jobs / min(c[1] for c in ceil_s)
            empty_rate = {}
            for name, _ in backends:
                whole = args.jobs / min(d[0] for d in drain_s[name])
                steady = args.jobs / min(d[1] for d in drain_s[name])
                empty_rate[name] = whole
                _row(rows, f"1 drain ({name})", args.jobs, round(whole), "jobs/s",
                     round(ceil_whole), whole / ceil_whole, "target >= 75% sqlite, 50% postgres")
                _row(rows, f"1 drain steady ({name})", args.jobs, round(steady), "jobs/s",
                     round(ceil_loop), steady / ceil_loop)
            peak = max(d[2] for d in drain_s["sqlite"])
            _row(rows, "6 worker peak RSS (sqlite)", args.jobs, round(peak / 2**20, 1), "MiB",
                 note="target <= 40 MiB")
        # 2: bulk enqueue.
        if want(2):
            say(f"bulk enqueue: {args.bulk} jobs ...")
            for name, url in backends:
                best_q = best_c = None
                for _ in range(max(1, min(args.rounds, 2))):
                    c = bulk_ceiling(args.bulk, work, url)
                    with Database(work, url) as db:
                        q = bulk(args.bulk, db)
                    best_q = q if best_q is None else min(best_q, q)
                    best_c = c if best_c is None else min(best_c, c)
                _row(rows, f"2 bulk enqueue ({name})", args.bulk, round(args.bulk / best_q),
                     "jobs/s", round(args.bulk / best_c), best_c / best_q,
                     "target >= 100000 jobs/s" if name == "sqlite" else None)
        # 3: one enqueue, the whole process, against the bare interpreter.
        if want(3):
            say("single enqueue ...")
            bare = _median_wall([sys.executable, "-c", "pass"])
            with Database(work, None) as db:
                subprocess.run([QUEUECTL, "--db", db, "migrate"], check=True, capture_output=True)
                one = _median_wall([QUEUECTL, "--db", db, "enqueue", '{"command": "true"}'])
            _row(rows, "3 single enqueue (sqlite)", 1, round(one * 1000, 1), "ms",
                 round(bare * 1000, 1), bare / one, "target <= 1.5x python -c pass")
        # 4: pickup latency.
        if want(4):
            say(f"pickup: {args.pickups} jobs ...")
            for name, url in backends:
                with Database(work, url) as db:
                    p50, p99, idle = pickup(args.pickups, db)
                _row(rows, f"4 pickup p50 ({name})", args.pickups, round(p50 * 1000, 1), "ms",
                     note="target <= 20 ms sqlite, 5 ms postgres")
                _row(rows, f"4 pickup p99 ({name})", args.pickups, round(p99 * 1000, 1), "ms",
                     note="target <= 100 ms sqlite")
                _row(rows, f"4 idle worker CPU ({name})", 0, round(idle * 100, 2), "% of a core",
                     note="target < 1%")
        # 5: scale.
        if args.scale and want(5):
            say(f"scale: filling a database with {args.scale} jobs ...")
            if not want(3):
                bare = _median_wall([sys.executable, "-c", "pass"])
            with Database(work, None) as db:
                fill(db, args.scale)
                for label, argv in (
                        ("status --json", ["status", "--json"]),
                        ("list --state pending --limit 50",
                         ["list", "--state", "pending", "--limit", "50"])):
                    wall = _median_wall([QUEUECTL, "--db", db, *argv], runs=5)
                    _row(rows, f"5 {label} ({args.scale // 1000}k jobs)", args.scale,
                         round((wall - bare) * 1000, 1), "ms", round(bare * 1000, 1), None,
                         "ms beyond python -c pass (the ceiling column); target <= 100 ms")
                whole, _, _ = drain(args.jobs, db)
                rate = args.jobs / whole
                _row(rows, f"5 drain ({args.scale // 1000}k jobs)", args.jobs, round(rate),
                     "jobs/s", round(empty_rate["sqlite"]), rate / empty_rate["sqlite"],
                     "ceiling = row 1 on an empty database; target >= 90%")
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "platform": platform.platform()}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return 0
    print(f"machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"{'row':38} {'jobs':>8} {'queue':>13} {'ceiling':>13} {'ratio':>6}  note")
    for r in rows:
        ceil = f"{r['ceiling']} {r['unit']}" if r["ceiling"] is not None else "-"
        ratio = f"{r['ratio']:.0%}" if r["ratio"] is not None else "-"
        print(f"{r['row']:38} {r['jobs']:>8} {str(r['value']) + ' ' + r['unit']:>13} "
              f"{ceil:>13} {ratio:>6}  {r['note'] or ''}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
