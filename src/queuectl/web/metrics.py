"""`/metrics` in the Prometheus text format, through the official client.

Gauges (jobs per state, per queue and state, jobs ready to run and the oldest
one's wait per queue, workers busy and idle) are read from the store at each
scrape: one pass over the jobs (per queue and state, as `queue list`), the
ready jobs through their partial index, and the live workers. The
counters and the histogram follow the event log: at its first scrape the
dashboard remembers the newest event, and each scrape adds the enqueues and
the attempts that ended since (one range read of the events' primary key,
whatever the database's size). So they count from the dashboard's start, as a
Prometheus counter should (a restart is a counter reset, which `rate()`
handles), and never go down when old jobs are purged.

The `queue` label is bounded: the first MAX_QUEUE_LABELS queues the
dashboard sees (at its first scrape in name order, later in the order they
appear) keep their name for the life of the process; every other queue, and
any name that is not a valid queue name, is summed under OTHER_QUEUE. A queue
literally named `_other` never gets a label of its own: it is summed there too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from queuectl import insight
from queuectl.model import STATES, valid_id
from queuectl.store.base import IMPORTED

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from queuectl.store.base import Store
    from queuectl.web.context import Stores

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
BATCH = 50_000        # events read per scrape at most (the rest next time)
MAX_QUEUE_LABELS = 50  # queues with a label of their own; the rest are summed
OTHER_QUEUE = "_other"

#: Every series /metrics serves (as exposed; documented in the README).
FAMILIES = ("queuectl_jobs", "queuectl_queue_jobs", "queuectl_queue_ready_jobs",
            "queuectl_queue_oldest_ready_age_seconds", "queuectl_workers_active",
            "queuectl_workers", "queuectl_enqueued_total", "queuectl_attempts_total",
            "queuectl_job_duration_seconds")


class QueueLabels:
    """Which `queue` label a queue's series get (see the module's docstring)."""

    def __init__(self, limit: int = MAX_QUEUE_LABELS):
        self.limit = limit
        self._own: dict[str, None] = {}        # insertion-ordered set
        self.overflowed = False                # has anything gone to OTHER_QUEUE?

    def label(self, name: str) -> str:
        if name in self._own:
            return name
        if name != OTHER_QUEUE and valid_id(name) and len(self._own) < self.limit:
            self._own[name] = None
            return name
        self.overflowed = True
        return OTHER_QUEUE

    def see(self, names: Iterable[str]) -> dict[str, str]:
        """{name: label} for `names`, new ones given labels in name order."""
        return {n: self.label(n) for n in sorted(names)}

    def assigned(self) -> list[str]:
        return list(self._own)

    def all(self) -> list[str]:
        """Every label in use, in output order."""
        return sorted(self._own) + ([OTHER_QUEUE] if self.overflowed else [])


class _Counts:
    """The counters of one queue label."""

    __slots__ = ("enqueued", "attempts", "buckets", "duration_sum", "duration_count")

    def __init__(self) -> None:
        self.enqueued = 0
        self.attempts = dict.fromkeys(insight.OUTCOMES, 0)
        self.buckets = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0

    def add_duration(self, duration: float) -> None:
        self.duration_sum += duration
        self.duration_count += 1
        for i, bound in enumerate(BUCKETS):
            if duration <= bound:
                self.buckets[i] += 1
                break


class Metrics:
    def __init__(self, stores: Stores):
        self.stores = stores
        self.lock = threading.Lock()
        self.cursor: int | None = None     # seq of the last event counted
        self.labels = QueueLabels()
        self.counts: dict[str, _Counts] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self) -> "tuple[bytes, str]":
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _of(self, queue: str) -> _Counts:
        label = self.labels.label(queue)
        counts = self.counts.get(label)
        if counts is None:
            counts = self.counts[label] = _Counts()
        return counts

    def _follow(self, store: Store) -> None:
        if self.cursor is None:
            self.cursor = store.max_event_seq()
            return
        rows = store.metrics_events(self.cursor, BATCH)
        # On a backend whose commits can land out of seq order, stop at
        # the first event that may still have an older neighbour uncommitted.
        cutoff = store.now_ms() - store.commit_lag_ms if store.commit_lag_ms else None
        for seq, queue, event, at, worker_id, detail in rows:
            if cutoff is not None and at >= cutoff:
                break
            self.cursor = seq
            if event == "enqueued":
                if detail != IMPORTED:
                    self._of(queue).enqueued += 1
                continue
            kind = insight.outcome(event, worker_id, detail)
            if kind is None:
                continue
            counts = self._of(queue)
            counts.attempts[kind] += 1
            duration = insight.event_detail(detail).get("duration")
            if duration is not None:
                counts.add_duration(float(duration))

    def collect(self) -> Iterator[Metric]:
        store = self.stores.get()
        queues = store.queues()               # one pass over the jobs, and the settings
        ready = store.metrics_ready()         # the ready jobs only
        busy, idle = store.metrics_workers()
        with self.lock:
            label_of = self.labels.see(q["name"] for q in queues)
            self._follow(store)
            for label in self.labels.all():
                self._of(label)
            yield from self._gauges(queues, ready, label_of, busy, idle)
            yield from self._counters()

    def _gauges(self, queues: list, ready_rows: list, label_of: dict,
                busy: int, idle: int) -> Iterator[Metric]:
        labels = sorted(set(label_of.values()), key=lambda x: (x == OTHER_QUEUE, x))
        totals = dict.fromkeys(STATES, 0)
        per_queue = {(label, state): 0 for label in labels for state in STATES}
        ready = dict.fromkeys(labels, 0)
        oldest = dict.fromkeys(labels, 0.0)
        paused = set()
        for q in queues:
            label = label_of[q["name"]]
            if q["paused"]:
                paused.add(q["name"])
            for state in STATES:
                totals[state] += q[state]
                per_queue[label, state] += q[state]
        for queue, n, wait_ms in ready_rows:
            # (A queue whose jobs all appeared since queues() was read is left
            # to the next scrape.)
            label = label_of.get(queue)
            if label is None or queue in paused:
                continue
            ready[label] += n
            oldest[label] = max(oldest[label], max(0, wait_ms) / 1000)
        jobs = GaugeMetricFamily("queuectl_jobs", "Jobs in each state (all queues)",
                                 labels=["state"])
        for state in STATES:
            jobs.add_metric([state], totals[state])
        yield jobs
        family = GaugeMetricFamily("queuectl_queue_jobs", "Jobs in each state, per queue",
                                   labels=["queue", "state"])
        for (label, state), n in per_queue.items():
            family.add_metric([label, state], n)
        yield family
        family = GaugeMetricFamily(
            "queuectl_queue_ready_jobs",
            "Jobs ready to run now (pending or failed, due, no unfinished dependency, "
            "queue not paused), per queue", labels=["queue"])
        for label in labels:
            family.add_metric([label], ready[label])
        yield family
        family = GaugeMetricFamily(
            "queuectl_queue_oldest_ready_age_seconds",
            "How long the oldest job ready to run has waited since it was due "
            "(0 when none is ready), per queue", labels=["queue"])
        for label in labels:
            family.add_metric([label], oldest[label])
        yield family
        yield GaugeMetricFamily("queuectl_workers_active", "Workers with a fresh heartbeat",
                                value=busy + idle)
        family = GaugeMetricFamily("queuectl_workers",
                                   "Workers with a fresh heartbeat, busy (holding a "
                                   "running job) or idle", labels=["state"])
        family.add_metric(["busy"], busy)
        family.add_metric(["idle"], idle)
        yield family

    def _counters(self) -> Iterator[Metric]:
        labels = self.labels.all()
        enqueued = CounterMetricFamily(
            "queuectl_enqueued", "Jobs enqueued since the dashboard started (imports "
            "not counted), per queue", labels=["queue"])
        attempts = CounterMetricFamily(
            "queuectl_attempts", "Attempts ended since the dashboard started, per queue "
            "and outcome", labels=["queue", "outcome"])
        durations = HistogramMetricFamily(
            "queuectl_job_duration_seconds",
            "Run time of attempts ended since the dashboard started, per queue",
            labels=["queue"])
        for label in labels:
            counts = self.counts[label]
            enqueued.add_metric([label], counts.enqueued)
            for kind in insight.OUTCOMES:
                attempts.add_metric([label, kind], counts.attempts[kind])
            cumulative, buckets = 0, []
            for bound, n in zip(BUCKETS, counts.buckets, strict=True):
                cumulative += n
                buckets.append((repr(float(bound)), cumulative))
            buckets.append(("+Inf", counts.duration_count))
            durations.add_metric([label], buckets, counts.duration_sum)
        yield enqueued
        yield attempts
        yield durations


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def prometheus() -> ResponseReturnValue:
    metrics: Metrics = current_app.extensions["queuectl_metrics"]
    body, content_type = metrics.render()
    return current_app.response_class(body, content_type=content_type)
