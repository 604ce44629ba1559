"""End-to-end: `/metrics` of a real `queuectl dashboard`, scraped with the bearer
token after a known workload run by real workers, on both backends: exact
values through prometheus_client's parser, the text through `promtool check
metrics`, the shipped alert rules through `promtool check rules`, and the
bound on queue labels."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from e2e_util import TOKEN, Dashboard, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "contrib" / "prometheus" / "alerts.yml"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
OUTCOMES = ("completed", "failed", "timeout", "lease_expired", "cancelled")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if IN_CI:
            pytest.fail("CI=true and promtool is missing (.ci/run installs Debian's "
                        "'prometheus' package)", pytrace=False)
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def dashboard(cli) -> Dashboard:
    return Dashboard(cli, env={"QUEUECTL_DASHBOARD_TOKEN": TOKEN}, sign_in=False)


def scrape(d: Dashboard) -> "tuple[dict, str]":
    from prometheus_client.parser import text_string_to_metric_families
    status, text, headers = d.request("/metrics", headers=d.bearer)
    assert status == 200 and headers["Content-Type"].startswith("text/plain"), (status, text)
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, text


def series(m: dict, name: str) -> dict:
    """{labels: value} of one sample name."""
    return {labels: v for (n, labels), v in m.items() if n == name}


def q(**labels) -> tuple:
    return tuple(sorted(labels.items()))


def enqueue_all(cli, jobs: list) -> None:
    cli.ok("enqueue", "-", input="".join(json.dumps(j) + "\n" for j in jobs))


def test_metrics_after_a_known_workload(cli, tmp_path):
    cli.ok("config", "set", "backoff_base", "1")
    d = dashboard(cli)
    first, _ = scrape(d)          # the counters start here
    assert series(first, "queuectl_enqueued_total") == {}
    enqueue_all(cli, [
        {"id": "w1", "command": "true", "queue": "web"},
        {"id": "w2", "command": "echo two", "queue": "web"},
        {"id": "w3", "command": "sleep 0.3", "queue": "web"},
        {"id": "b-boom", "command": "exit 3", "queue": "batch", "max_retries": 1},
        {"id": "b-slow", "command": "sleep 5", "queue": "batch", "timeout": 0.3,
         "max_retries": 0},
        {"id": "d1", "command": "true"}])
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    # Jobs left waiting: two ready in "backlog" (the older due 10 minutes ago),
    # one due tomorrow, one in a paused queue (neither is ready to run now).
    past = datetime.fromtimestamp(time.time() - 600, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")
    enqueue_all(cli, [
        {"id": "k1", "command": "true", "queue": "backlog", "run_at": past},
        {"id": "k2", "command": "true", "queue": "backlog"},
        {"id": "k3", "command": "true", "queue": "backlog", "delay": "1d"},
        {"id": "p1", "command": "true", "queue": "held"}])
    cli.ok("queue", "pause", "held")

    # (On PostgreSQL an event is counted once it is 5 s old: commits can land
    # out of seq order.)
    def settled():
        m, text = scrape(d)
        done = m.get(("queuectl_enqueued_total", q(queue="backlog")), 0) == 3
        return (m, text) if done else None
    m, text = wait_until(settled, timeout=30, message="the workload counted")

    assert series(m, "queuectl_enqueued_total") == {
        q(queue="web"): 3, q(queue="batch"): 2, q(queue="default"): 1,
        q(queue="backlog"): 3, q(queue="held"): 1}
    attempts = {k: v for k, v in series(m, "queuectl_attempts_total").items() if v}
    assert attempts == {
        q(queue="web", outcome="completed"): 3, q(queue="default", outcome="completed"): 1,
        q(queue="batch", outcome="failed"): 2, q(queue="batch", outcome="timeout"): 1}
    # Every outcome of every queue is there from the start (at 0), so that
    # increase() sees the first attempt.
    assert len(series(m, "queuectl_attempts_total")) == 5 * len(OUTCOMES)
    counts = series(m, "queuectl_job_duration_seconds_count")
    assert counts == {q(queue="web"): 3, q(queue="batch"): 3, q(queue="default"): 1,
                      q(queue="backlog"): 0, q(queue="held"): 0}
    web_sum = m[("queuectl_job_duration_seconds_sum", q(queue="web"))]
    assert 0.3 <= web_sum < 5, "w3 slept 0.3 s"
    assert m[("queuectl_job_duration_seconds_bucket", q(queue="web", le="0.25"))] == 2
    assert m[("queuectl_job_duration_seconds_bucket", q(queue="web", le="+Inf"))] == 3
    assert m[("queuectl_job_duration_seconds_bucket", q(queue="batch", le="+Inf"))] == 3

    assert series(m, "queuectl_queue_ready_jobs") == {
        q(queue="web"): 0, q(queue="batch"): 0, q(queue="default"): 0,
        q(queue="backlog"): 2, q(queue="held"): 0}
    ages = series(m, "queuectl_queue_oldest_ready_age_seconds")
    assert set(ages) == set(series(m, "queuectl_queue_ready_jobs"))
    assert 600 <= ages[q(queue="backlog")] < 700
    assert ages[q(queue="web")] == 0 and ages[q(queue="held")] == 0
    # Today's gauges, unchanged.
    assert m[("queuectl_jobs", q(state="completed"))] == 4
    assert m[("queuectl_jobs", q(state="dead"))] == 2
    assert m[("queuectl_jobs", q(state="pending"))] == 4
    assert m[("queuectl_queue_jobs", q(queue="batch", state="dead"))] == 2
    assert m[("queuectl_queue_jobs", q(queue="backlog", state="pending"))] == 3
    assert series(m, "queuectl_workers") == {q(state="busy"): 0, q(state="idle"): 0}
    assert m[("queuectl_workers_active", ())] == 0

    # Two workers: one runs a long job, the other waits on a queue with none.
    cli.ok("enqueue", json.dumps({"id": "long", "command": "sleep 30", "queue": "slow"}))
    busy = cli.start("--queue", "slow")
    idle = cli.start("--queue", "nothing-here")
    cli.wait_state("long", "processing")
    m = wait_until(lambda: (lambda m: m if m[("queuectl_workers_active", ())] == 2 else None)(
        scrape(d)[0]), message="both workers counted")
    assert series(m, "queuectl_workers") == {q(state="busy"): 1, q(state="idle"): 1}
    for p in (busy, idle):
        p.terminate()
    cli.ok("cancel", "long")

    tool = promtool()
    p = subprocess.run([tool, "check", "metrics"], input=text, text=True,
                       capture_output=True, timeout=60)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        (p.stdout, p.stderr)


def test_queue_labels_are_bounded(cli):
    from queuectl.web.metrics import MAX_QUEUE_LABELS, OTHER_QUEUE
    assert MAX_QUEUE_LABELS == 50 and OTHER_QUEUE == "_other"
    names = [f"q{i:02d}" for i in range(MAX_QUEUE_LABELS + 3)]        # q00 ... q52
    d = dashboard(cli)
    scrape(d)
    enqueue_all(cli, [{"command": "true", "queue": n} for n in names] +
                [{"command": "exit 1", "queue": "q52", "max_retries": 0}])
    cli.ok("worker", "start", "--burst", "--quiet", timeout=120)

    def settled():
        m, text = scrape(d)
        n = sum(series(m, "queuectl_job_duration_seconds_count").values())
        return (m, text) if n == len(names) + 1 else None
    m, text = wait_until(settled, timeout=30, message="every attempt counted")
    first_50 = {q(queue=n) for n in names[:MAX_QUEUE_LABELS]}
    for name in ("queuectl_enqueued_total", "queuectl_job_duration_seconds_count",
                 "queuectl_queue_ready_jobs", "queuectl_queue_oldest_ready_age_seconds"):
        assert set(series(m, name)) == first_50 | {q(queue="_other")}, name
    queue_jobs = series(m, "queuectl_queue_jobs")
    assert {dict(k)["queue"] for k in queue_jobs} == {n for n in names[:50]} | {"_other"}
    assert m[("queuectl_enqueued_total", q(queue="q00"))] == 1
    assert m[("queuectl_enqueued_total", q(queue="_other"))] == 4       # q50, q51, q52 x2
    assert m[("queuectl_attempts_total", q(queue="_other", outcome="completed"))] == 3
    assert m[("queuectl_attempts_total", q(queue="_other", outcome="failed"))] == 1
    assert queue_jobs[q(queue="_other", state="completed")] == 3
    assert queue_jobs[q(queue="_other", state="dead")] == 1
    assert queue_jobs[q(queue="q49", state="completed")] == 1
    tool = promtool()
    p = subprocess.run([tool, "check", "metrics"], input=text, text=True,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)


@pytest.mark.backends("sqlite")
def test_shipped_alert_rules_are_valid_and_in_the_readme(backend):
    tool = promtool()
    p = subprocess.run([tool, "check", "rules", str(ALERTS)], text=True,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    rules = ALERTS.read_text()
    readme = (ROOT / "README.md").read_text()
    assert rules.strip() in readme, "the README shows contrib/prometheus/alerts.yml as is"
    for alert in ("QueuectlDeadJobsGrowing", "QueuectlQueueLatency", "QueuectlNoWorkers"):
        assert f"alert: {alert}" in rules
    # Every series /metrics serves is documented in the README's table, and the
    # rules use only those.
    documented = set(re.findall(r"^\| `(queuectl_[a-z_]+)", readme, re.M))
    from queuectl.web import metrics
    assert documented == set(metrics.FAMILIES), documented ^ set(metrics.FAMILIES)
    for used in set(re.findall(r"queuectl_[a-z_]+", rules)):
        base = re.sub(r"_(bucket|sum|count)$", "", used)
        assert base in documented or base.removesuffix("_total") in documented, used
