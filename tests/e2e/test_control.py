"""End-to-end: per-job run settings (fatal_exit_codes, cwd, env), idempotent
enqueue (--skip-existing) and `queuectl wait`."""

from __future__ import annotations

import json

import pytest

from e2e_util import assert_one_error_line, events, snapshot, start_logged, worker_log

pytestmark = pytest.mark.e2e


@pytest.mark.backends("sqlite")   # worker and runner behaviour; the store side is in the contract suite
def test_fatal_exit_code_goes_straight_to_the_dlq(cli, tmp_path):
    cli.enqueue(id="badargs", command="exit 2", max_retries=3, fatal_exit_codes=[2, 64])
    cli.enqueue(id="transient", command="exit 3", max_retries=3, fatal_exit_codes=[2])
    cli.ok("config", "set", "backoff_base", "100")      # a retry would be far away
    log = tmp_path / "w.log"
    p = start_logged(cli, log)
    bad = cli.wait_state("badargs", "dead")
    assert bad["attempts"] == 1 and bad["exit_code"] == 2
    assert bad["fatal_exit_codes"] == [2, 64]
    assert events(cli, "badargs") == ["enqueued", "processing", "dead"]
    other = cli.wait_state("transient", "failed")
    assert other["attempts"] == 1, "an exit code not listed is retried as usual"
    p.terminate()
    p.wait(10)
    assert "exit code 2 is in its fatal_exit_codes" in worker_log(log)


@pytest.mark.backends("sqlite")   # worker and runner behaviour; the store side is in the contract suite
def test_cwd_and_env(cli, tmp_path):
    work = tmp_path / "work dir"
    work.mkdir()
    cli.enqueue(id="where", command='pwd; echo "$GREETING|$EMPTY|$QUEUECTL_JOB_ID"',
                cwd=str(work), env={"GREETING": "hi there", "EMPTY": "",
                                    "QUEUECTL_JOB_ID": "spoofed"})
    cli.enqueue(id="nowhere", command="true", cwd=str(tmp_path / "missing"), max_retries=0)
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    assert cli.ok("logs", "where") == f"{work}\nhi there||where\n"
    shown = cli.job("where")
    assert shown["cwd"] == str(work) and shown["env"]["GREETING"] == "hi there"
    missing = cli.job("nowhere")
    assert missing["state"] == "dead"
    assert "cannot run in directory" in missing["last_error"]
    assert "No such file or directory" in missing["last_error"]


@pytest.mark.backends("sqlite")   # rejected before any database is opened
@pytest.mark.parametrize("payload, word", [
    ({"fatal_exit_codes": 2}, "fatal_exit_codes"),
    ({"fatal_exit_codes": [0]}, "fatal_exit_codes"),
    ({"fatal_exit_codes": [256]}, "fatal_exit_codes"),
    ({"fatal_exit_codes": ["2"]}, "fatal_exit_codes"),
    ({"cwd": ""}, "cwd"),
    ({"cwd": 5}, "cwd"),
    ({"cwd": "x" * 5000}, "cwd"),
    ({"env": ["A=1"]}, "env"),
    ({"env": {"A": 1}}, "env"),
    ({"env": {"1A": "x"}}, "env"),
    ({"env": {"A=B": "x"}}, "env"),
    ({"env": {"A": "x\u0000y"}}, "env"),
    ({"env": {f"V{i}": "x" for i in range(1001)}}, "env"),
    ({"env": {"BIG": "x" * 70000}}, "env"),
])
def test_bad_run_settings_are_rejected(cli, payload, word):
    before = snapshot(cli)
    line = assert_one_error_line(cli.run("enqueue", json.dumps({"command": "true",
                                                                **payload})), 2)
    assert word in line
    assert snapshot(cli) == before


@pytest.mark.backends("sqlite")   # CLI behaviour; the store side is in the contract suite
def test_skip_existing(cli):
    assert cli.ok("enqueue", json.dumps({"id": "once", "command": "echo 1"})) == \
        "enqueued once\n"
    # Without the flag: a duplicate is exit 1.
    assert_one_error_line(cli.run("enqueue", json.dumps({"id": "once",
                                                         "command": "echo 1"})), 1)
    # With it: the same command is fine ...
    assert cli.ok("enqueue", "--skip-existing",
                  json.dumps({"id": "once", "command": "echo 1"})) == "exists once\n"
    # ... a different one is not, and nothing changes.
    before = snapshot(cli)
    line = assert_one_error_line(cli.run("enqueue", "--skip-existing",
                                         json.dumps({"id": "once", "command": "echo 2"})), 1)
    assert "different command" in line
    assert snapshot(cli) == before
    # Bulk: the existing ones are named, the new ones enqueued.
    out = cli.ok("enqueue", "--skip-existing", "-", input="\n".join(
        json.dumps({"id": i, "command": "echo 1"}) for i in ("once", "two", "three")))
    assert out == "exists once\nenqueued 2 jobs\n"
    assert sorted(j["id"] for j in cli.json("list")) == ["once", "three", "two"]
    assert events(cli, "once") == ["enqueued"]


def test_wait_for_jobs(cli):
    cli.enqueue(id="ok1", command="sleep 0.3")
    cli.enqueue(id="bad1", command="exit 1", max_retries=0)
    cli.enqueue(id="slow", command="sleep 30")
    p = cli.start("--count", "2", "--quiet")
    assert cli.run("wait", "ok1", timeout=30, check=0).stdout == "ok1 completed\n"
    r = cli.run("wait", "ok1", "bad1", timeout=30)
    assert r.returncode == 1 and r.stdout == "ok1 completed\nbad1 dead\n"
    r = cli.run("wait", "slow", "--timeout", "0.5", timeout=30)
    assert r.returncode == 124 and "timed out" in r.stderr
    assert_one_error_line(cli.run("wait", "nope"), 2)
    assert_one_error_line(cli.run("wait"), 2)
    p.kill()
    p.wait(10)


@pytest.mark.backends("sqlite")   # CLI behaviour; the store side is in the contract suite
def test_wait_all_prints_plain_progress_without_a_terminal(cli):
    for i in range(5):
        cli.enqueue(id=f"w{i}", command="sleep 0.2")
    p = cli.start("--count", "2", "--quiet")
    r = cli.run("wait", "--all", timeout=60)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[-1] == "drained: 5 completed, 0 dead, 0 cancelled"
    assert all("\r" not in line for line in lines)
    assert "0 left, 5 done, 0 running" in lines
    p.kill()
    p.wait(10)
