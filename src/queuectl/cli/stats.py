"""Numbers and a live view: `queuectl stats`, `queuectl top`."""

from __future__ import annotations

import sys
import time
from argparse import Namespace

from queuectl import insight
from queuectl.cli import render
from queuectl.cli.jobs import open_db
from queuectl.clock import iso
from queuectl.config import parse_duration
from queuectl.errors import InvalidInput
from queuectl.model import STATES
from queuectl.text import visible

TYPE_CHECKING = False
if TYPE_CHECKING:
    from queuectl.store.base import Store


def _now_ms(store: Store) -> int:
    return store.now_ms()


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:.3f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def stats(args: Namespace) -> int:
    window = parse_duration(args.since, "--since")
    if window <= 0:
        raise InvalidInput("--since must be longer than 0s")
    with open_db(args) as store:
        now = _now_ms(store)
        since = now - round(window * 1000)
        data = insight.stats(store.attempt_ends(since_ms=since), since, now)
    if args.json:
        render.emit_json(data)
        return 0
    rows = [["all", data]] + [[q, s] for q, s in data["queues"].items()]
    print(f"since {render.short_time(data['since'])} UTC ({args.since})")
    render.table(["QUEUE", "FINISHED", "COMPLETED", "DEAD", "CANCELLED", "SUCCESS",
                  "JOBS/S", "RETRIES", "P50", "P95", "MAX"],
                 [[name, str(s["finished"]), str(s["completed"]), str(s["dead"]),
                   str(s["cancelled"]),
                   "-" if s["success_rate"] is None else f"{100 * s['success_rate']:.1f}%",
                   _num(s["throughput_per_s"]), str(s["retries"]),
                   _num(s["duration_s"]["p50"], "s"), _num(s["duration_s"]["p95"], "s"),
                   _num(s["duration_s"]["max"], "s")] for name, s in rows])
    return 0


def _snapshot(store: Store) -> str:
    now = _now_ms(store)
    counts = store.counts()
    workers = store.active_workers()
    running = store.list_jobs("processing")
    failures = store.recent_failures(5, now - 3_600_000)
    out = [f"queuectl top  {render.short_time(iso(now))} UTC   "
           + "  ".join(f"{s} {counts[s]}" for s in STATES)
           + f"   workers {len(workers)}", ""]
    out.append(f"RUNNING ({len(running)})")
    if running:
        out += _table(["JOB", "QUEUE", "WORKER", "ELAPSED", "COMMAND"],
                      [[j.id, j.queue, j.worker_id or "-",
                        f"{(now - j.started_at) / 1000:.1f}s", render.one_line(j.command, 60)]
                       for j in sorted(running, key=lambda j: j.started_at)[:20]])
    out.append("")
    out.append(f"WORKERS ({len(workers)})")
    if workers:
        out += _table(["WORKER", "HOST", "HEARTBEAT", "JOB"],
                      [[w["id"], w["host"], f"{w['heartbeat_age']:.1f}s ago",
                        w["job_id"] or ("stopping" if w["stopping"] else "idle")]
                       for w in workers])
    out.append("")
    out.append("RECENT FAILURES (last hour)")
    if failures:
        out += _table(["AT (UTC)", "JOB", "QUEUE", "ERROR"],
                      [[(iso(r[4]) or "")[11:19], r[1], r[2],
                        render.one_line(insight.event_detail(r[6]).get("error") or r[3], 70)]
                       for r in failures])
    # (Commands and errors went through one_line; this covers the other cells.)
    return visible("\n".join(out), keep="\n") + "\n"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    return ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
            for row in [headers] + rows]


def top(args: Namespace) -> int:
    if args.interval <= 0:
        raise InvalidInput("--interval must be more than 0")
    with open_db(args) as store:
        if not sys.stdout.isatty():
            sys.stdout.write(_snapshot(store))      # one plain snapshot for pipes
            return 0
        try:
            while True:
                frame = _snapshot(store)
                sys.stdout.write("\x1b[H\x1b[2J" + frame + "\n(Ctrl+C to quit)")
                sys.stdout.flush()
                time.sleep(args.interval)
        except KeyboardInterrupt:
            sys.stdout.write("\n")
    return 0
