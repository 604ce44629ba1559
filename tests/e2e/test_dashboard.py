"""End-to-end: `queuectl dashboard` as a real server on 127.0.0.1, with real
jobs run by real workers: the JSON API, /metrics, the security model, and
(in tests/e2e/test_browser.py) the pages in a real browser."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from e2e_util import TOKEN, Dashboard, assert_one_error_line, wait_until

pytestmark = pytest.mark.e2e

def _jobs(cli):
    cli.ok("config", "set", "backoff_base", "1")
    cli.ok("enqueue", "-", input="".join(json.dumps(x) + "\n" for x in [
        {"id": "ok-1", "command": "echo one", "queue": "web"},
        {"id": "ok-2", "command": "echo two; sleep 0.2"},
        {"id": "xss", "command": "echo '<script>alert(1)</script>'"},
        {"id": "boom", "command": "echo boom >&2; exit 3", "max_retries": 1},
        {"id": "slow", "command": "sleep 5", "timeout": 0.3, "max_retries": 0},
        {"id": "secret", "command": "true", "env": {"API_KEY": "hunter2"}}]))
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)


def test_api_and_metrics_against_a_real_server(cli):
    _jobs(cli)
    d = Dashboard(cli)
    # /api/status is `status --json`.
    status, api = d.json("/api/status")
    # (without "database": the dashboard does not tell where its database is)
    assert status == 200 and api == {k: v for k, v in cli.json("status").items()
                                     if k != "database"}
    assert api["jobs"]["completed"] == 4 and api["jobs"]["dead"] == 2
    # Lists: paging, state filter, search by id or command substring.
    status, page = d.json("/api/jobs?state=dead")
    assert [j["id"] for j in page["jobs"]] == ["slow", "boom"], "newest first"
    assert page["total"] == 2 and page["pages"] == 1
    assert [j["id"] for j in d.json("/api/jobs?q=ECHO%20TWO")[1]["jobs"]] == ["ok-2"]
    assert [j["id"] for j in d.json("/api/jobs?q=ok-")[1]["jobs"]] == ["ok-2", "ok-1"]
    assert d.json("/api/jobs?q=%25")[1]["total"] == 0, "LIKE wildcards are literal"
    assert d.json("/api/jobs?state=bogus")[0] == 400
    # A job: payload, every attempt, output, history.
    status, job = d.json("/api/jobs/boom")
    assert [a["outcome"] for a in job["attempts"]] == ["failed", "failed"]
    assert job["attempts"][0]["exit_code"] == 3 and job["attempts"][0]["duration"] >= 0
    assert job["job"]["output"] == "boom\n"
    assert [e["event"] for e in job["events"]][-1] == "dead"
    assert d.json("/api/jobs/slow")[1]["attempts"][0]["outcome"] == "timeout"
    assert d.json("/api/jobs/ghost")[0] == 404
    assert d.json("/api/nothing-here") == (404, {"error": d.json("/api/nothing-here")[1]["error"]})
    assert d.json("/api/jobs/boom/retry")[0] == 405, "actions are POSTs"
    assert d.json("/api/jobs?page=99999999999999999999")[0] == 400
    assert d.json("/api/jobs?q=a%00b")[0] == 400
    # Secrets in env are not shown unless asked for.
    status, secret = d.json("/api/jobs/secret")
    assert secret["job"]["env"] == {"API_KEY": "••••"} and "hunter2" not in str(secret)
    assert d.json("/api/jobs/secret?show_env=1")[1]["job"]["env"] == {"API_KEY": "hunter2"}
    assert "hunter2" not in d.request("/api/jobs")[1], "not in lists either"
    assert "hunter2" not in d.request("/api/jobs?q=true")[1]
    status, html, _ = d.request("/jobs/secret")
    assert "hunter2" not in html and "show values" in html
    # Job data is escaped in pages.
    status, html, headers = d.request("/jobs/xss")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # DLQ groups.
    status, dlq = d.json("/api/dlq")
    assert {g["exit_code"] for g in dlq["groups"]} == {3, None} and dlq["total"] == 2

    # /metrics: the Prometheus text format, parsed by the official parser.
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict:
        status, text, headers = d.request("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    first = scrape()
    assert first[("queuectl_jobs", (("state", "completed"),))] == 4
    assert first[("queuectl_queue_jobs", (("queue", "web"), ("state", "completed")))] == 1
    assert first[("queuectl_workers_active", ())] == 0
    assert first[("queuectl_attempts_total", (("outcome", "completed"), ("queue", "default")))] \
        == 0, "counters start when the dashboard does"
    cli.ok("enqueue", "-", input="".join(
        json.dumps({"command": "true"}) + "\n" for _ in range(5)) +
        json.dumps({"command": "exit 1", "max_retries": 0}) + "\n")
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    # (On PostgreSQL an event is counted once it is 5 s old: commits can land
    # out of seq order.)
    default = (("queue", "default"),)
    second = wait_until(lambda: (lambda m: m if m[("queuectl_job_duration_seconds_count",
                                                   default)] == 6 else None)(scrape()),
                        timeout=30, message="the new attempts counted")
    assert second[("queuectl_attempts_total", (("outcome", "completed"), *default))] == 5
    assert second[("queuectl_attempts_total", (("outcome", "failed"), *default))] == 1
    assert second[("queuectl_job_duration_seconds_count", default)] == 6
    assert second[("queuectl_job_duration_seconds_bucket", (("le", "+Inf"), *default))] == 6
    assert second[("queuectl_jobs", (("state", "completed"),))] == 9


def test_actions_need_csrf_and_follow_read_only(cli):
    _jobs(cli)
    d = Dashboard(cli)
    status, body = d.json("/api/jobs/boom/retry", method="POST")
    assert status == 400 and "CSRF" in body["error"], "no token, no action"
    assert cli.job("boom")["state"] == "dead"
    token = d.csrf()
    status, body = d.json("/api/jobs/boom/retry", method="POST",
                          headers={"X-CSRFToken": token})
    assert status == 200 and cli.job("boom")["state"] == "pending"
    assert d.json("/api/jobs/boom/retry", method="POST",
                  headers={"X-CSRFToken": token})[0] == 409, "not dead any more"
    status, body = d.json("/api/queues/web/pause", method="POST", headers={"X-CSRFToken": token})
    assert status == 200 and cli.json("queue", "list")[-1]["paused"] is True
    queues = cli.json("queue", "list")
    status, body = d.json("/api/queues/wbe/resume", method="POST",
                          headers={"X-CSRFToken": token})
    assert status == 404 and "not found" in body["error"], "a misspelt queue"
    assert cli.json("queue", "list") == queues, "no new queue row"
    assert d.json("/api/jobs/ok-1/cancel", method="POST",
                  headers={"X-CSRFToken": token})[0] == 409, "a completed job"
    # Retrying the whole DLQ must be asked for in so many words.
    for body in (None, [1], "x", {}, {"all": False}, {"bogus": 1}):
        status, got = d.json("/api/dlq/retry", method="POST", body=body,
                             headers={"X-CSRFToken": token})
        assert status == 400 and "error" in got, body
    assert cli.job("slow")["state"] == "dead"
    # Retry the DLQ group by cause.
    status, body = d.json("/api/dlq/retry", method="POST", headers={"X-CSRFToken": token},
                          body={"group": {"exit_code": None,
                                          "error": "timed out after #.#s"}})
    assert (status, body["retried"]) == (200, 1) and cli.job("slow")["state"] == "pending"

    ro = Dashboard(cli, "--read-only")
    token = ro.csrf()
    status, body = ro.json("/api/queues/web/resume", method="POST",
                           headers={"X-CSRFToken": token})
    assert status == 403 and "read-only" in body["error"]
    assert cli.json("queue", "list")[-1]["paused"] is True
    # A page reached through another host name (DNS rebinding) gets nothing.
    assert d.request("/api/status", headers={"Host": "evil.example:80"})[0] == 403


def test_token_mode(cli):
    _jobs(cli)
    d = Dashboard(cli, env={"QUEUECTL_DASHBOARD_TOKEN": TOKEN}, sign_in=False)
    assert d.request("/api/status")[0] == 401
    assert d.request("/metrics")[0] == 401
    assert d.request("/api/status", headers={"Authorization": "Bearer wrong-token-xxxxx"})[0] == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert d.request("/api/status", headers=bearer)[0] == 200
    assert d.request("/metrics", headers=bearer)[0] == 200
    # A bearer request is not a browser's: no CSRF token needed.
    assert d.json("/api/jobs/boom/retry", method="POST", headers=bearer)[0] == 200
    # A browser signs in once through the form; the cookie then works, and
    # actions made with it still need the CSRF token.
    status, html, _ = d.request("/")
    assert status == 200 and "needs its access token" in html
    body = f"token={TOKEN}&next=/dlq".encode()
    req = urllib.request.Request(d.url + "/login", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(req, timeout=10)
        raise AssertionError("expected a redirect")
    except urllib.error.HTTPError as e:
        assert e.code == 302 and e.headers["Location"].endswith("/dlq")
        cookie = e.headers["Set-Cookie"].split(";")[0]
    name, value = cookie.split("=", 1)
    assert name == "queuectl_" + d.url.rsplit(":", 1)[1], "one cookie name per port"
    assert TOKEN not in value, "the browser never holds the token"
    d.cookies[name] = value
    assert d.request("/api/status")[0] == 200
    assert d.json("/api/jobs/slow/retry", method="POST")[0] == 400, "cookie needs CSRF"
    assert d.json("/api/jobs/slow/retry", method="POST",
                  headers={"X-CSRFToken": d.csrf()})[0] == 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


@pytest.mark.backends("sqlite")   # refused before any database is opened
@pytest.mark.parametrize("args, code, word", [
    (["--token", TOKEN], 2, "`ps`"),
    (["--host", "0.0.0.0", "--token", "short"], 2, "--token-file"),
    (["--token-file", "/nonexistent/token"], 2, "does not exist"),
    (["--trusted-proxy", "proxy.example"], 2, "IP address"),
    (["--host", ""], 2, "--host must be an address"),
    (["--port", "70000"], 2, "port"),
    (["--port", "x"], 2, "port"),
])
def test_bad_dashboard_arguments(cli, args, code, word):
    line = assert_one_error_line(cli.run("dashboard", *args, timeout=20), code)
    assert word in line


@pytest.mark.backends("sqlite")
def test_a_non_loopback_bind_with_a_token_serves(cli):
    d = Dashboard(cli, "--host", "0.0.0.0", env={"QUEUECTL_DASHBOARD_TOKEN": TOKEN},
                  sign_in=False)
    port = d.url.rsplit(":", 1)[1]
    d.url = f"http://127.0.0.1:{port}"
    assert d.request("/api/status")[0] == 401
    assert d.request("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


@pytest.mark.backends("sqlite")
def test_stats_and_top(cli):
    _jobs(cli)
    data = cli.json("stats", "--since", "1h")
    assert (data["finished"], data["completed"], data["dead"]) == (6, 4, 2)
    assert data["retries"] == 1 and data["success_rate"] == pytest.approx(4 / 6, abs=1e-3)
    assert data["queues"]["web"]["completed"] == 1
    assert data["duration_s"]["max"] >= 0.2
    text = cli.ok("stats")
    assert text.splitlines()[1].split()[:2] == ["QUEUE", "FINISHED"]
    assert_one_error_line(cli.run("stats", "--since", "soon"), 2)
    top = cli.ok("top")              # not a terminal: one plain snapshot
    assert "completed 4" in top and "RECENT FAILURES" in top and "\x1b" not in top
    assert "timed out after 0.3s" in top
