"""`/metrics` in the Prometheus text format, through the official client.

Gauges (jobs per state, per queue and state, active workers) are read from the
store at each scrape. The counter and the histogram follow the event log: at
its first scrape the dashboard remembers the newest event, and each scrape
adds the attempts that ended since. So they count from the dashboard's start,
as a Prometheus counter should (a restart is a counter reset, which `rate()`
handles), and never go down when old jobs are purged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from queuectl import insight
from queuectl.model import STATES

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from queuectl.store.base import Store
    from queuectl.web.context import Stores

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
BATCH = 50_000        # events read per scrape at most (the rest next time)


class Metrics:
    def __init__(self, stores: Stores):
        self.stores = stores
        self.lock = threading.Lock()
        self.cursor: int | None = None     # seq of the last event counted
        self.attempts = dict.fromkeys(insight.OUTCOMES, 0)
        self.bucket_counts = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self) -> "tuple[bytes, str]":
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _follow(self, store: Store) -> None:
        with self.lock:
            if self.cursor is None:
                self.cursor = store.max_event_seq()
                return
            rows = store.attempt_ends(after_seq=self.cursor, limit=BATCH)
            # On a backend whose commits can land out of seq order, stop at
            # the first event that may still have an older neighbour uncommitted.
            cutoff = store.now_ms() - store.commit_lag_ms if store.commit_lag_ms else None
            for seq, _, _, event, at, worker_id, detail in rows:
                if cutoff is not None and at >= cutoff:
                    break
                self.cursor = seq
                kind = insight.outcome(event, worker_id, detail)
                if kind is None:
                    continue
                self.attempts[kind] += 1
                duration = insight.event_detail(detail).get("duration")
                if duration is None:
                    continue
                duration = float(duration)
                self.duration_sum += duration
                self.duration_count += 1
                for i, bound in enumerate(BUCKETS):
                    if duration <= bound:
                        self.bucket_counts[i] += 1
                        break

    def collect(self) -> Iterator[Metric]:
        store = self.stores.get()
        counts = store.counts()
        jobs = GaugeMetricFamily("queuectl_jobs", "Jobs in each state (all queues)",
                                 labels=["state"])
        for state in STATES:
            jobs.add_metric([state], counts[state])
        yield jobs
        per_queue = GaugeMetricFamily("queuectl_queue_jobs", "Jobs in each state, per queue",
                                      labels=["queue", "state"])
        for q in store.queues():
            for state in STATES:
                per_queue.add_metric([q["name"], state], q[state])
        yield per_queue
        yield GaugeMetricFamily("queuectl_workers_active", "Workers with a fresh heartbeat",
                                value=len(store.active_workers()))
        self._follow(store)
        with self.lock:
            attempts = CounterMetricFamily(
                "queuectl_attempts", "Attempts ended since the dashboard started, by outcome",
                labels=["outcome"])
            for kind in insight.OUTCOMES:
                attempts.add_metric([kind], self.attempts[kind])
            yield attempts
            cumulative, buckets = 0, []
            for bound, n in zip(BUCKETS, self.bucket_counts, strict=True):
                cumulative += n
                buckets.append((repr(float(bound)), cumulative))
            buckets.append(("+Inf", self.duration_count))
            yield HistogramMetricFamily(
                "queuectl_job_duration_seconds",
                "Run time of attempts ended since the dashboard started",
                buckets=buckets, sum_value=self.duration_sum)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def prometheus() -> ResponseReturnValue:
    metrics: Metrics = current_app.extensions["queuectl_metrics"]
    body, content_type = metrics.render()
    return current_app.response_class(body, content_type=content_type)
