"""How long a /metrics scrape takes on a database of --jobs jobs (default 100,000).

    python bench/metrics_scrape.py [--jobs N] [--pg URL] [--scrapes N]

Builds the database with `queuectl import` (90% completed, 4% dead, 1% failed
and due, 5% pending; 20 queues), gives every completed job the `processing`
and `completed` events a run leaves (with a duration), starts `queuectl
dashboard`, scrapes once (the counters' start), runs a workload of 1,000 new
jobs with a burst worker, then times: the scrape that counts those events, the
steady scrapes after it (median and max of --scrapes), and the scrape after a
50,000-job bulk enqueue (the most events one scrape reads). Also the time of
each store read a scrape makes. Client-side wall times over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
QUEUECTL = str(BIN / "queuectl") if (BIN / "queuectl").exists() else shutil.which("queuectl")
TOKEN = "bench-token-0123456789abcdef"


def build(env: dict, n: int, url: str) -> None:
    lines = []
    t = "2026-01-01T00:00:00.000Z"
    for i in range(n):
        r = i % 100
        state = "completed" if r < 90 else "dead" if r < 94 else "failed" if r < 95 else "pending"
        job = {"id": f"job-{i:07d}", "command": f"echo {i}", "queue": f"queue-{i % 20:02d}",
               "state": state, "attempts": 0 if state == "pending" else 1,
               "created_at": t, "updated_at": t, "run_at": t}
        if state in ("dead", "failed"):
            job.update(exit_code=1, last_error="exit status 1")
        lines.append(json.dumps(job) + "\n")
    subprocess.run([QUEUECTL, "import"], input="".join(lines), text=True, env=env,
                   check=True, capture_output=True)
    events = ("INSERT INTO {t} (job_id, event, attempt, at, worker_id, detail) "
              "SELECT id, 'processing', 1, created_at, 'bench-w', NULL FROM {j} "
              "WHERE state = 'completed';"
              "INSERT INTO {t} (job_id, event, attempt, at, worker_id, detail) "
              "SELECT id, 'completed', 1, created_at + 50, 'bench-w', "
              "'{{\"exit_code\": 0, \"duration\": 0.05}}' FROM {j} WHERE state = 'completed';")
    if url.startswith("postgresql://"):
        import psycopg
        with psycopg.connect(url, autocommit=True) as c:
            for stmt in events.format(t="queuectl_events", j="queuectl_jobs").split(";"):
                if stmt.strip():
                    c.execute(stmt)
            c.execute("ANALYZE")
    else:
        import sqlite3
        c = sqlite3.connect(url)
        c.executescript(events.format(t="events", j="jobs") + "ANALYZE;")
        c.commit()
        c.close()


def scrape(base: str) -> "tuple[float, str]":
    req = urllib.request.Request(base + "/metrics",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read().decode()
    return (time.perf_counter() - t0) * 1000, body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL (a fresh schema is made)")
    ap.add_argument("--scrapes", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qmetrics-"))
    schema = None
    if args.pg:
        import psycopg
        schema = "qbench_" + os.urandom(4).hex()
        with psycopg.connect(args.pg, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in args.pg else "?"
        url = f"{args.pg}{sep}options=-csearch_path%3D{schema}"
    else:
        url = str(tmp / "queuectl.db")
    env = {**os.environ, "QUEUECTL_DB": url, "QUEUECTL_DASHBOARD_TOKEN": TOKEN,
           "XDG_CONFIG_HOME": str(tmp / "xdg")}
    dash = None
    try:
        t0 = time.monotonic()
        build(env, args.jobs, url)
        print(f"built {args.jobs} jobs in {time.monotonic() - t0:.1f}s "
              f"({'postgresql' if args.pg else 'sqlite'})")
        from queuectl.store import open_store
        store = open_store(url)
        for name, fn in (("queues (per queue and state)", store.queues),
                         ("metrics_ready", store.metrics_ready),
                         ("metrics_workers", store.metrics_workers),
                         ("max_event_seq", store.max_event_seq),
                         ("metrics_events (100 after)",
                          lambda: store.metrics_events(store.max_event_seq() - 100, 50_000))):
            times = []
            for _ in range(5):
                s = time.perf_counter()
                fn()
                times.append((time.perf_counter() - s) * 1000)
            print(f"  {name}: {statistics.median(times):.1f} ms (median of 5)")
        store.close()
        dash = subprocess.Popen([QUEUECTL, "dashboard", "--port", "0"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        base = re.search(r"http://\S+/", dash.stdout.readline()).group(0).rstrip("/")
        ms, _ = scrape(base)
        print(f"first scrape (sets the cursor): {ms:.1f} ms")
        subprocess.run([QUEUECTL, "enqueue", "-"], env=env, check=True, capture_output=True,
                       text=True, input="".join(json.dumps(
                           {"command": "true", "queue": f"queue-{i % 20:02d}"}) + "\n"
                           for i in range(1000)))
        subprocess.run([QUEUECTL, "worker", "start", "--burst", "--quiet", "--count", "2"],
                       env=env, check=True, timeout=600)
        if args.pg:
            time.sleep(5.5)     # events are counted once 5 s old on PostgreSQL
        ms, body = scrape(base)
        print(f"scrape counting the workload's ~3,000 events: {ms:.1f} ms "
              f"({len(body)} bytes)")
        times = [scrape(base)[0] for _ in range(args.scrapes)]
        print(f"steady scrape: median {statistics.median(times):.1f} ms, "
              f"max {max(times):.1f} ms ({args.scrapes} scrapes)")
        subprocess.run([QUEUECTL, "enqueue", "-"], env=env, check=True, capture_output=True,
                       text=True, input="".join(json.dumps(
                           {"command": "true", "queue": f"queue-{i % 20:02d}",
                            "delay": "1d"}) + "\n" for i in range(50_000)))
        if args.pg:
            time.sleep(5.5)
        ms, _ = scrape(base)
        print(f"scrape after a 50,000-job bulk enqueue (reads 50,000 events): {ms:.1f} ms")
        ms, _ = scrape(base)
        print(f"the next scrape ({args.jobs + 51_000} jobs): {ms:.1f} ms")
    finally:
        if dash is not None:
            dash.terminate()
            dash.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
        if schema:
            import psycopg
            with psycopg.connect(args.pg, autocommit=True) as c:
                c.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
