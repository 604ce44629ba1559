"""End-to-end: dependencies (`after`), cancel racing the claim, cron schedules."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest

from e2e_util import (assert_one_error_line, events, history, parse_at, snapshot,
                      start_logged, wait_exit, wait_until, worker_log)

pytestmark = pytest.mark.e2e


def test_a_chain_of_50_jobs_runs_in_order_on_four_workers(cli, tmp_path):
    order = tmp_path / "order"
    ids = [f"step{i:02d}" for i in range(50)]
    lines = [{"id": ids[0], "command": f"echo 0 >> {order}"}] + [
        {"id": ids[i], "command": f"echo {i} >> {order}", "after": [ids[i - 1]]}
        for i in range(1, 50)]
    assert cli.ok("enqueue", "-", input="".join(json.dumps(x) + "\n" for x in lines)) == \
        "enqueued 50 jobs\n"
    assert cli.job("step01")["blocked"] is True and cli.job("step01")["after"] == ["step00"]
    assert "pending (blocked)" in cli.ok("list")
    p = cli.start("--count", "4", "--quiet")
    cli.wait_state(ids[-1], "completed", timeout=60)
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 10) == 0
    assert order.read_text().split() == [str(i) for i in range(50)]
    jobs = {j["id"]: j for j in cli.json("list", "--limit", "0")}
    for prev, nxt in zip(ids, ids[1:]):
        assert parse_at(jobs[nxt]["started_at"]) >= parse_at(jobs[prev]["finished_at"]), nxt


def test_a_dead_dependency_cancels_the_rest_of_the_chain(cli):
    cli.ok("enqueue", "-", input="\n".join(json.dumps(x) for x in [
        {"id": "build", "command": "exit 3", "max_retries": 0},
        {"id": "test", "command": "true", "after": ["build"]},
        {"id": "deploy", "command": "true", "after": ["test"]},
        {"id": "other", "command": "true"}]))
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    assert cli.job("build")["state"] == "dead"
    test, deploy = cli.job("test"), cli.job("deploy")
    assert (test["state"], test["last_error"]) == ("cancelled", "dependency build ended dead")
    assert deploy["last_error"] == "dependency test ended cancelled"
    assert events(cli, "deploy") == ["enqueued", "cancelled"]
    assert cli.job("other")["state"] == "completed"


@pytest.mark.backends("sqlite")   # rejected before anything is written; store side in the contract suite
def test_bad_dependencies_are_rejected_and_write_nothing(cli):
    cli.enqueue(id="a", command="true")
    before = snapshot(cli)
    line = assert_one_error_line(cli.run("enqueue", json.dumps(
        {"id": "b", "command": "true", "after": ["a", "ghost"]})), 2)
    assert "no job 'ghost'" in line
    line = assert_one_error_line(cli.run("enqueue", "-", input="\n".join([
        json.dumps({"id": "x", "command": "true", "after": ["y"]}),
        json.dumps({"id": "y", "command": "true"})])), 2)
    assert "line 1" in line and "comes later" in line
    for after in ("a", [1], ["bad id"], ["b"]):
        assert_one_error_line(cli.run("enqueue", json.dumps(
            {"id": "b", "command": "true", "after": after})), 2)
    assert snapshot(cli) == before


def test_cancel_racing_the_claim(cli):
    # Cancels land before, during and after the claims of three workers.
    # Whatever the timing, a job ends completed or cancelled, never runs again
    # after a cancel was accepted, and no job is left processing.
    n = 24
    ids = [f"r{i:02d}" for i in range(n)]
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"id": i, "command": "sleep 1", "max_retries": 3}) + "\n" for i in ids))
    p = cli.start("--count", "3", "--quiet")
    said: dict = {}

    def cancel(job_id):
        r = cli.run("cancel", job_id)
        said[job_id] = r.stdout.split()[0] if r.returncode == 0 else r.returncode
        return said[job_id]

    def cancel_a_running_job():
        # (On a slow machine a job seen running may end before the cancel lands:
        # then the next running one is tried.)
        for job in cli.json("list", "--state", "processing"):
            if job["id"] not in said and cancel(job["id"]) == "cancelling":
                return job["id"]
        return None

    # One cancel surely meets a running job ...
    running = wait_until(cancel_a_running_job, timeout=20, message="a cancel to meet a running job")
    # ... the rest, shuffled, meet jobs waiting, being claimed, running and done.
    rng = random.Random(7)
    for job_id in rng.sample([i for i in ids if i not in said], n - len(said)):
        cancel(job_id)
    wait_until(lambda: cli.json("status")["jobs"]["processing"] == 0 and
               cli.json("status")["jobs"]["pending"] == 0, timeout=30, message="all ended")
    p.send_signal(signal.SIGTERM)
    assert wait_exit(p, 10) == 0
    jobs = {j["id"]: j for j in cli.json("list", "--limit", "0")}
    outcomes = {"cancelled": 0, "cancelling": 0, 1: 0}
    for job_id, answer in said.items():
        job, evs = jobs[job_id], events(cli, job_id)
        outcomes[answer] += 1
        assert job["attempts"] <= 1 and evs.count("processing") <= 1, (job_id, evs)
        if answer == "cancelled":          # it was pending: it never runs
            assert job["state"] == "cancelled" and "processing" not in evs, (job_id, evs)
        elif answer == "cancelling":       # it was running: killed, or it had just completed
            assert job["state"] in ("cancelled", "completed"), (job_id, job)
        else:                              # it had already ended
            assert answer == 1 and job["state"] == "completed", (job_id, job)
    assert said[running] == "cancelling" and outcomes["cancelled"], outcomes


def _fire_times(cli, name):
    ids = [j["id"] for j in cli.json("list", "--limit", "0") if j["id"].startswith(name + ":")]
    return sorted(ids)


def test_cron_with_three_workers_enqueues_each_firing_once(cli, tmp_path):
    # A seconds field (6 fields) makes the schedule fire every second.
    out = cli.ok("schedule", "add", "tick", "* * * * * *", json.dumps({"command": "true"}))
    assert out.startswith("added schedule tick: first run ")
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    procs = [start_logged(cli, log) for log in logs]     # three "hosts"
    wait_until(lambda: len(_fire_times(cli, "tick")) >= 5, timeout=30, message="5 firings")
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        assert wait_exit(p, 10) == 0
    ids = _fire_times(cli, "tick")
    secs = [parse_at(i.split(":", 1)[1].replace("Z", ".000Z")) for i in ids]
    assert all(b - a >= 1 for a, b in zip(secs, secs[1:])), ids
    enq = [e for e in history(cli) if e["event"] == "enqueued" and e["job_id"].startswith("tick:")]
    assert len(enq) == len(ids), "one enqueue per firing"
    fired = sum(worker_log(log).count("schedule fired: enqueued tick:") for log in logs)
    assert fired == len(ids), "no worker enqueued a firing another had enqueued"
    row = cli.json("schedule", "list")[0]
    assert row["name"] == "tick" and row["last_run_at"] is not None


def test_a_missed_firing_is_enqueued_once_when_a_worker_starts(cli):
    cli.ok("schedule", "add", "every-sec", "* * * * * *", json.dumps({"command": "true"}))
    added = time.time()
    time.sleep(3.2)                          # three firings pass with no worker running
    started = time.time()
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    ids = _fire_times(cli, "every-sec")
    missed = [i for i in ids if parse_at(i.split(":", 1)[1].replace("Z", ".000Z")) < started - 1]
    assert len(missed) == 1, ids
    assert parse_at(missed[0].split(":", 1)[1].replace("Z", ".000Z")) < added + 2


def test_schedule_commands(cli):
    job = json.dumps({"command": "backup.sh", "queue": "ops"})
    cli.ok("schedule", "add", "nightly", "0 3 * * *", job, "--tz", "Europe/Berlin")
    rows = cli.json("schedule", "list")
    assert rows == [{"name": "nightly", "cron": "0 3 * * *", "tz": "Europe/Berlin",
                     "job": {"command": "backup.sh", "queue": "ops"},
                     "next_run_at": rows[0]["next_run_at"], "last_run_at": None}]
    assert parse_at(rows[0]["next_run_at"]) > time.time()
    assert "nightly" in cli.ok("schedule", "list")
    before = (snapshot(cli), cli.ok("schedule", "list", "--json"))
    for args, code in ((["nightly", "0 3 * * *", job], 1),
                       (["bad name", "* * * * *", job], 2),
                       (["x", "61 * * * *", job], 2),
                       (["x", "* * *", job], 2),
                       (["x", "* * * * *", job, "--tz", "Mars/Base"], 2),
                       (["x", "* * * * *", '{"id": "fixed", "command": "true"}'], 2),
                       (["x", "* * * * *", '{"command": ""}'], 2),
                       (["x", "* * * * *", "not json"], 2)):
        assert_one_error_line(cli.run("schedule", "add", *args), code)
    line = assert_one_error_line(cli.run("schedule", "add", "x", "* * * * *",
                                         '{"command": "true", "bogus": 1}'), 2)
    assert "'bogus'" in line and "run_at" not in line, "offers only what a schedule takes"
    assert_one_error_line(cli.run("schedule", "remove", "ghost"), 1)
    assert (snapshot(cli), cli.ok("schedule", "list", "--json")) == before
    cli.ok("schedule", "add", "nightly", "@hourly", job, "--replace")
    assert cli.json("schedule", "list")[0]["cron"] == "@hourly"
    assert cli.ok("schedule", "remove", "nightly") == "removed schedule nightly\n"
    assert cli.json("schedule", "list") == []
