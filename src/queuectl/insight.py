"""What happened, computed from the event log: a job's attempts, throughput per
minute, stats over a window, and the outcome classes of the Prometheus metrics.

Pure: event rows in, plain values out. The rows come from
`Store.attempt_ends()` as (seq, job_id, queue, event, at, worker_id, detail).
"""

from __future__ import annotations

import json
from typing import Any

from queuectl.clock import iso
from queuectl.store.base import ENDING_EVENTS  # events that end an attempt (or a job)

OUTCOMES = ("completed", "failed", "timeout", "lease_expired", "cancelled")
TIMEOUT_PREFIX = "timed out after"      # runner.py's error text for a timeout


def event_detail(raw: str | dict | None) -> dict:
    if not raw:
        return {}
    return raw if isinstance(raw, dict) else json.loads(raw)


def outcome(event: str, worker_id: str | None, detail: str | dict | None) -> str | None:
    """How an attempt ended, or None if the event does not end one (a cancel of
    a waiting job; the rescue's retry_scheduled/dead that follows its
    lease_expired)."""
    if event == "lease_expired":
        return "lease_expired"
    if worker_id is None or event not in ENDING_EVENTS:
        return None
    if event in ("completed", "cancelled"):
        return event
    error = event_detail(detail).get("error") or ""
    return "timeout" if error.startswith(TIMEOUT_PREFIX) else "failed"


def attempts(history: list[dict]) -> list[dict]:
    """A job's attempts from its `history` events (oldest first), one per
    `processing` event (so attempts before a DLQ retry stay listed): attempt
    number, worker, start, end, duration, outcome, exit code, error."""
    out: list[dict] = []
    for e in history:
        n = e.get("attempt", 0)
        if e["event"] == "processing":
            out.append({"attempt": n, "worker_id": e.get("worker_id"), "started_at": e["at"],
                        "ended_at": None, "duration": None, "outcome": "running",
                        "exit_code": None, "error": None})
            continue
        kind = outcome(e["event"], e.get("worker_id"), e)
        if kind is None or not out or out[-1]["attempt"] != n or out[-1]["ended_at"]:
            continue
        out[-1].update(ended_at=e["at"], duration=e.get("duration"), outcome=kind,
                       exit_code=e.get("exit_code"), error=e.get("error"))
    return out


def percentile(sorted_values: list, p: float) -> Any:
    """Nearest-rank percentile of an already sorted list (None if empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def _summary(rows: list, seconds: float) -> dict:
    completed = dead = cancelled = retries = 0
    durations = []
    for _, _, _, event, _, worker_id, detail in rows:
        d = event_detail(detail)
        if event == "completed":
            completed += 1
        elif event == "dead":
            dead += 1
        elif event == "cancelled":
            cancelled += 1
        elif event == "retry_scheduled":
            retries += 1
        if worker_id is not None and d.get("duration") is not None:
            durations.append(float(d["duration"]))
    durations.sort()
    finished = completed + dead + cancelled
    return {
        "finished": finished, "completed": completed, "dead": dead, "cancelled": cancelled,
        "retries": retries,
        "success_rate": round(completed / (completed + dead), 4) if completed + dead else None,
        "throughput_per_s": round(finished / seconds, 3) if seconds > 0 else None,
        "duration_s": {"p50": percentile(durations, 50), "p95": percentile(durations, 95),
                       "max": durations[-1] if durations else None},
    }


def stats(rows: list, since_ms: int, now_ms: int) -> dict:
    """`queuectl stats`: totals over the window and per queue."""
    seconds = max(0.001, (now_ms - since_ms) / 1000)
    queues: dict[str, list] = {}
    for row in rows:
        queues.setdefault(row[2], []).append(row)
    return {"since": iso(since_ms), "until": iso(now_ms), **_summary(rows, seconds),
            "queues": {q: _summary(r, seconds) for q, r in sorted(queues.items())}}


def throughput(counts: list, since_ms: int, now_ms: int,
               bucket_ms: int = 60_000) -> list[dict]:
    """Per bucket (a minute by default) from Store.event_counts rows: jobs
    completed, attempts failed (failed, timeout, lease_expired) and the
    failure rate of the attempts that ended."""
    n = max(1, (now_ms - since_ms) // bucket_ms + 1)      # the current bucket included
    buckets: list[dict[str, Any]] = [
        {"at": iso(since_ms + i * bucket_ms), "completed": 0, "failed": 0, "attempts": 0}
        for i in range(n)]
    for i, event, by_worker, count in counts:
        if not 0 <= i < n:
            continue
        # As outcome(): the rescue's follow-up event and the cancel of a
        # waiting job end no attempt.
        if event != "lease_expired" and not by_worker:
            continue
        b = buckets[int(i)]
        b["attempts"] += count
        if event == "completed":
            b["completed"] += count
        elif event in ("retry_scheduled", "dead", "lease_expired"):
            b["failed"] += count
    for b in buckets:
        b["failure_rate"] = round(b["failed"] / b["attempts"], 4) if b["attempts"] else 0.0
    return buckets
