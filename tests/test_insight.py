"""Unit tests of insight.py: attempts, outcomes, stats and throughput from event rows."""

import json

from queuectl import insight
from queuectl.clock import parse_iso

T = parse_iso("2026-01-01T00:00:00Z")


def row(seq, event, at, worker="w1", queue="default", **detail):
    return (seq, f"j{seq}", queue, event, at, worker, json.dumps(detail) if detail else None)


def test_outcomes():
    assert insight.outcome("completed", "w", None) == "completed"
    assert insight.outcome("retry_scheduled", "w", {"error": "exit code 3"}) == "failed"
    assert insight.outcome("dead", "w", '{"error": "timed out after 2s"}') == "timeout"
    assert insight.outcome("lease_expired", "w", None) == "lease_expired"
    assert insight.outcome("dead", None, None) is None, "the rescue's follow-up"
    assert insight.outcome("cancelled", None, None) is None, "cancel of a waiting job"
    assert insight.outcome("processing", "w", None) is None


def test_attempts_from_history():
    history = [
        {"event": "enqueued", "attempt": 0, "at": "a"},
        {"event": "processing", "attempt": 1, "at": "t1", "worker_id": "w1"},
        {"event": "retry_scheduled", "attempt": 1, "at": "t2", "worker_id": "w1",
         "exit_code": 3, "error": "exit code 3", "duration": 0.5},
        {"event": "processing", "attempt": 2, "at": "t3", "worker_id": "w2"},
        {"event": "lease_expired", "attempt": 2, "at": "t4", "worker_id": "w2",
         "error": "lease expired"},
        {"event": "dead", "attempt": 2, "at": "t4", "error": "lease expired"},
        {"event": "dlq_retry", "attempt": 0, "at": "t5"},
        {"event": "processing", "attempt": 1, "at": "t6", "worker_id": "w1"},
    ]
    got = insight.attempts(history)
    assert [(a["attempt"], a["outcome"]) for a in got] == \
        [(1, "failed"), (2, "lease_expired"), (1, "running")], "a DLQ retry counts from 1 again"
    assert got[0]["exit_code"] == 3 and got[0]["duration"] == 0.5
    assert got[1]["ended_at"] == "t4" and got[1]["worker_id"] == "w2"
    assert got[2]["started_at"] == "t6" and got[2]["ended_at"] is None


def test_stats_and_percentiles():
    rows = [row(1, "completed", T, duration=1.0), row(2, "completed", T, duration=3.0),
            row(3, "retry_scheduled", T, duration=2.0, error="exit code 1"),
            row(4, "dead", T, queue="q2", duration=4.0, error="exit code 1"),
            row(5, "cancelled", T, worker=None)]
    s = insight.stats(rows, T - 60_000, T)
    assert (s["finished"], s["completed"], s["dead"], s["cancelled"], s["retries"]) == \
        (4, 2, 1, 1, 1)
    assert s["success_rate"] == round(2 / 3, 4)
    assert s["duration_s"] == {"p50": 2.0, "p95": 4.0, "max": 4.0}
    assert s["throughput_per_s"] == round(4 / 60, 3)
    assert s["queues"]["q2"]["dead"] == 1 and s["queues"]["default"]["dead"] == 0
    assert insight.stats([], T - 1000, T)["success_rate"] is None


def test_throughput_buckets():
    counts = [(0, "completed", True, 5), (0, "retry_scheduled", True, 2),
              (2, "lease_expired", True, 1), (2, "dead", False, 1),   # rescue follow-up
              (2, "cancelled", False, 4), (9, "completed", True, 1)]   # out of range
    b = insight.throughput(counts, T, T + 2 * 60_000 + 5)     # 3 buckets, the last one current
    assert [(x["completed"], x["failed"], x["attempts"]) for x in b] == \
        [(5, 2, 7), (0, 0, 0), (0, 1, 1)]
    assert b[0]["failure_rate"] == round(2 / 7, 4) and b[0]["at"] == "2026-01-01T00:00:00.000Z"
