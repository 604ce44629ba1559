"""The dashboard's security model, route by route, against a real server.

Routes come from the app's own URL map, so a route added later is covered
without a test change: every action needs the CSRF token (or the bearer
header), every route needs the token when one is set, every page escapes job
data wherever it shows it, and no page or API answer shows a job's `env`
values unless asked for (`show_env=1`). test_dashboard.py and test_browser.py
cover the happy paths; this file goes through every door.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from e2e_util import TOKEN, Dashboard, assert_one_error_line, wait_until

pytestmark = pytest.mark.e2e

flask = pytest.importorskip("flask", reason="the dashboard extra is not installed")

IMG = "<img src=x onerror=alert(1)>"
ATTR = '" onmouseover="alert(2)'
SVG = "<svg onload=alert(3)>"
SECRET = "hunter2-<b>bold</b>"
RUNNING_SECRET = "hunter2-running"


def _routes() -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every route but static files."""
    from queuectl.web.app import create_app
    app = create_app(":memory:")
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for m in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((m, rule.rule, rule.endpoint))
    return out


def _path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"job_id": "xss", "name": "web"}.get(
        m.group(1), "x"), rule)


def _setup(cli, tmp_path: Path):
    """A dead job whose command, output, error and cwd are markup, with a
    secret env value; and a running job with a secret, held by a live worker."""
    cwd = tmp_path / SVG
    cwd.mkdir()
    cli.ok("enqueue", "-", input="".join(json.dumps(j) + "\n" for j in [
        {"id": "xss", "queue": "web", "max_retries": 0, "cwd": str(cwd),
         "env": {"SECRET_TOKEN": SECRET},
         "command": f"printf '%s\\n' '{IMG}' '{ATTR}'; exit 3"},
        {"id": "ok", "command": "true"}]))
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    assert cli.job("xss")["state"] == "dead"
    gate = tmp_path / "gate"
    cli.enqueue(id="running", command=f"while [ ! -e {gate} ]; do sleep 0.05; done",
                env={"API_KEY": RUNNING_SECRET})
    worker = cli.start("--quiet")
    wait_until(lambda: cli.job("running")["state"] == "processing", message="a running job")
    return worker, gate


def _state(cli):
    """What an action could change (not the running job's lease: heartbeats renew it)."""
    jobs = [{k: v for k, v in j.items() if k != "lease_expires_at"} for j in cli.json("list")]
    return (cli.json("status")["jobs"], cli.json("queue", "list"), jobs,
            cli.ok("history").count("\n"))


@pytest.mark.backends("sqlite")      # HTML rendering and headers: the same on both backends
def test_every_page_escapes_job_data_and_hides_env_values(cli, tmp_path):
    worker, gate = _setup(cli, tmp_path)
    try:
        d = Dashboard(cli)
        q = urllib.parse.quote
        pages = ["/", "/jobs", "/jobs?state=dead", f"/jobs?q={q(IMG)}", "/jobs?q=printf",
                 "/jobs/xss", "/jobs/running", "/dlq", f"/jobs/{q('<script>x</script>')}",
                 f"/nowhere/{q(IMG)}", f"/jobs?state={q(IMG)}"]
        for path in pages:
            status, html, headers = d.request(path)
            assert status in (200, 400, 404), (path, status)
            for raw in (IMG, ATTR, SVG, "<script>x</script>", "<b>bold</b>"):
                assert raw not in html, (path, raw)
            assert "hunter2" not in html, f"{path} shows an env value"
            assert "script-src 'self'" in headers["Content-Security-Policy"], path
        status, html, _ = d.request("/jobs/xss")
        for escaped in ("&lt;img src=x onerror=alert(1)&gt;", "&lt;svg onload=alert(3)&gt;",
                        "&#34; onmouseover=&#34;alert(2)"):
            assert escaped in html, escaped
        # Asked for, the values are shown: escaped too.
        status, html, _ = d.request("/jobs/xss?show_env=1")
        assert "hunter2-&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
        # The API: JSON (never sniffed as HTML), env masked everywhere but show_env=1.
        api = ["/api/status", "/api/overview", "/api/jobs", "/api/jobs?state=dead",
               "/api/jobs?q=hunter2", "/api/jobs/xss", "/api/jobs/running", "/api/dlq",
               "/metrics"]
        for path in api:
            status, text, headers = d.request(path)
            assert status == 200, (path, status)
            if "q=hunter2" in path:                  # (the answer repeats the query)
                text = text.replace('"q":"hunter2"', "")
            assert "hunter2" not in text, f"{path} shows an env value"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert not headers["Content-Type"].startswith("text/html"), path
        assert d.json("/api/jobs?q=hunter2")[1]["total"] == 0, "search does not look into env"
        assert d.json("/api/jobs/xss")[1]["job"]["env"] == {"SECRET_TOKEN": "••••"}
        assert d.json("/api/jobs/xss?show_env=1")[1]["job"]["env"] == {"SECRET_TOKEN": SECRET}
        assert d.json("/api/jobs/running?show_env=1")[1]["job"]["env"] == \
            {"API_KEY": RUNNING_SECRET}
    finally:
        gate.touch()
        worker.terminate()


@pytest.mark.backends("sqlite")      # the check comes before any database access
def test_every_action_needs_the_csrf_token(cli, tmp_path):
    worker, gate = _setup(cli, tmp_path)
    try:
        d = Dashboard(cli)
        posts = [(rule, ep) for m, rule, ep in _routes() if m == "POST" and ep != "auth.login_post"]
        assert len(posts) >= 5, posts
        before = _state(cli)
        d.csrf()                                   # a session, as a browser would have
        bodies = {"dlq_api.retry": {"all": True}}
        for rule, ep in posts:
            for headers in ({}, {"X-CSRFToken": "forged"}, {"X-CSRFToken": ""}):
                status, body = d.json(_path(rule), method="POST", body=bodies.get(ep, {}),
                                      headers=headers)
                assert status == 400 and "CSRF" in body["error"], (rule, headers, status, body)
            # A form post from another site carries no header at all.
            status, _, _ = d.request(_path(rule), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert status == 400, rule
        assert _state(cli) == before, "a refused action changed something"
        # The check is not a wall against the page's own token.
        token = d.csrf()
        assert d.json("/api/queues/web/pause", method="POST",
                      headers={"X-CSRFToken": token})[0] == 200
    finally:
        gate.touch()
        worker.terminate()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _no_redirect(d, path, method="GET", headers=None, data=None):
    """(status, body, headers) of one request, redirects not followed."""
    if data is None and method == "POST":
        data = b"{}"
    req = urllib.request.Request(d.url + path, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with _opener.open(req, timeout=20) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


@pytest.mark.backends("sqlite")      # authentication happens before any database access
def test_with_a_token_every_route_needs_it(cli, tmp_path):
    cli.enqueue(id="xss", command="exit 3", max_retries=0)
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    d = Dashboard(cli, env={"QUEUECTL_DASHBOARD_TOKEN": TOKEN}, sign_in=False)
    # The right one opens every door.
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for method, rule, ep in _routes():
        if method == "GET" and ep not in ("auth.login",):
            assert d.request(_path(rule), headers=bearer)[0] in (200, 404), rule
    before = _state(cli)
    wrong = [{}, {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": f"Bearer {TOKEN}x"},
             {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
             {"Cookie": f"queuectl_token={TOKEN[:-1]}"}, {"X-Token": TOKEN}]
    for method, rule, ep in _routes():
        if ep in ("auth.login", "auth.login_post", "auth.logout", "health.healthz"):
            continue
        for headers in wrong:
            for path in (_path(rule), _path(rule) + f"?token={TOKEN}"):
                status, text, got = _no_redirect(d, path, method, headers)
                if status == 429 and "Bearer" in str(headers):
                    continue              # too many wrong tokens: not even checked
                if rule.startswith(("/api/", "/metrics")):
                    assert status == 401, (method, path, headers, status)
                else:
                    assert status == 302 and "/login" in got["Location"], (path, status)
                assert "xss" not in text or status == 302 and "xss" in got["Location"]
    assert _state(cli) == before


@pytest.mark.backends("sqlite")
def test_sign_in_never_redirects_off_site(cli):
    d = Dashboard(cli, env={"QUEUECTL_DASHBOARD_TOKEN": TOKEN}, sign_in=False)
    for target in ("//evil.example/", "/\\evil.example/", "\\\\evil.example", "/\\/evil.example",
                   "https://evil.example/", "/\t/evil.example", " //evil.example", "/%2F/evil.example",
                   "javascript:alert(1)", "/jobs\r\nSet-Cookie: x=1"):
        body = urllib.parse.urlencode({"token": TOKEN, "next": target}).encode()
        status, _, headers = _no_redirect(d, "/login", "POST", {
            "Content-Type": "application/x-www-form-urlencoded"}, data=body)
        assert status == 302, (target, status)
        location = headers["Location"]
        parsed = urllib.parse.urlsplit(urllib.parse.urljoin(d.url + "/login", location))
        assert f"{parsed.scheme}://{parsed.netloc}" == d.url, (target, location)
        # Browsers read a backslash as a slash, and drop tabs and newlines.
        cleaned = re.sub(r"[\t\r\n]", "", location).replace("\\", "/")
        assert not cleaned.startswith("//") and "evil.example" not in \
            urllib.parse.urlsplit(cleaned).netloc, (target, location)
        assert "x=1" not in str(headers.get_all("Set-Cookie")), target
    # A path on the site is kept.
    body = urllib.parse.urlencode({"token": TOKEN, "next": "/jobs?state=dead"}).encode()
    status, _, headers = _no_redirect(d, "/login", "POST", {
        "Content-Type": "application/x-www-form-urlencoded"}, data=body)
    assert status == 302 and headers["Location"].endswith("/jobs?state=dead")


@pytest.mark.backends("sqlite")
def test_beyond_loopback_too_nothing_without_the_token(cli):
    d = Dashboard(cli, "--host", "0.0.0.0", sign_in=False)
    assert "plain HTTP" in d.proc.stderr.readline()
    port = d.url.rsplit(":", 1)[1]
    d.url = f"http://127.0.0.1:{port}"
    assert d.request("/api/status")[0] == 401
    assert d.request("/api/status", headers=d.bearer)[0] == 200
