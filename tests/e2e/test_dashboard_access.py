"""Who can reach the dashboard, and at what cost to the server (issue 16):
another Unix user without the token, the token file, the sign-in session's
cookie, wrong-token throttling, body limits, bounded pages with 2,000 dead jobs
of 64 KB, read-only, /healthz and `queuectl health`."""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from e2e_util import QUEUECTL, TOKEN, Dashboard, assert_one_error_line, wait_until

pytestmark = pytest.mark.e2e

pytest.importorskip("flask", reason="the dashboard extra is not installed")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
OTHER = "qtother"          # made by .ci/run


def _other_user() -> pwd.struct_passwd:
    problem = None
    if os.geteuid() != 0:
        problem = "running a client as another user needs root"
    else:
        try:
            return pwd.getpwnam(OTHER)
        except KeyError:
            problem = f"no user {OTHER} (.ci/run adds it: useradd -M -r {OTHER})"
    if IN_CI:
        pytest.fail(f"CI=true and the second-user test cannot run: {problem}", pytrace=False)
    pytest.skip(problem)


# A client run as the other user: every request given, as (method, path,
# headers, body), answered with (status, location, body's first 300 bytes).
CLIENT = r"""
import json, sys, urllib.request, urllib.error
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
opener = urllib.request.build_opener(NoRedirect)
base, reqs = sys.argv[1], json.loads(sys.stdin.read())
out = []
for method, path, headers, body in reqs:
    data = None if body is None else body.encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with opener.open(req, timeout=20) as r:
            out.append([r.status, r.headers.get("Location"), r.read().decode()[:300],
                        r.headers.get_all("Set-Cookie") or []])
    except urllib.error.HTTPError as e:
        out.append([e.code, e.headers.get("Location"), e.read().decode()[:300],
                    e.headers.get_all("Set-Cookie") or []])
token = sys.argv[2]
try:
    open(token).read(); out.append("token file READ")
except OSError as e:
    out.append(f"token file: {e.strerror}")
print(json.dumps(out))
"""


def _as_other(user, url: str, token_file: Path, requests: list) -> list:
    p = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                        "--clear-groups", "/usr/bin/python3", "-I", "-c", CLIENT, url,
                        str(token_file)],
                       input=json.dumps(requests), capture_output=True, text=True,
                       timeout=120, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                       cwd="/")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _state(cli):
    jobs = [{k: v for k, v in j.items() if k != "lease_expires_at"} for j in cli.json("list")]
    return cli.json("status")["jobs"], cli.json("queue", "list"), jobs


@pytest.mark.backends("sqlite")
def test_another_unix_user_gets_nothing_without_the_token(cli):
    user = _other_user()
    cli.enqueue(id="secret", command="exit 3", max_retries=0, queue="web",
                env={"API_KEY": "hunter2"})
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    d = Dashboard(cli, sign_in=False)            # the default: the token file it makes
    token_file = d.config_home / "queuectl" / "dashboard-token"
    before = _state(cli)
    from queuectl.web.app import create_app
    routes = [(m, r.rule) for r in create_app(":memory:").url_map.iter_rules()
              for m in sorted(r.methods - {"HEAD", "OPTIONS"}) if r.endpoint != "static"]
    requests = []
    for method, rule in routes:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"job_id": "secret"}.get(
            m.group(1), "web"), rule)
        body = json.dumps({"all": True}) if method == "POST" else None
        for headers in ({}, {"Authorization": "Bearer " + "x" * 43},
                        {"X-Forwarded-For": "127.0.0.1", "Host": "localhost"}):
            requests.append([method, path + "?show_env=1", {
                "Content-Type": "application/json", **headers}, body])
    # As a browser would: a page (the sign-in form has a CSRF token), then an action
    # with that token and that session cookie.
    requests.append(["GET", "/login", {}, None])
    got = _as_other(user, d.url, token_file, requests)
    assert got[-1] in ("token file: Permission denied",), got[-1]
    answers, (form_status, _, form, cookies) = got[:-2], got[-2]
    assert form_status == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', form).group(1)
    cookie = cookies[0].split(";")[0]
    more = [["POST", p, {"Content-Type": "application/json", "X-CSRFToken": csrf,
                         "Cookie": cookie}, json.dumps({"all": True})]
            for p in ("/api/dlq/retry", "/api/jobs/secret/retry", "/api/queues/web/pause",
                      "/api/jobs/secret/cancel", "/logout")]
    answers += _as_other(user, d.url, token_file, more)[:-1]
    for (method, path, _, _), (status, location, text, _) in zip(requests[:-1] + more, answers):
        assert "hunter2" not in text and "exit 3" not in text, (method, path, text)
        if path.startswith("/healthz"):
            assert (status, text) == (200, "ok\n")
        elif path.startswith(("/login", "/logout")):
            assert status in (200, 302, 400, 401, 405), (method, path, status)
        elif path.startswith(("/api/", "/metrics")):
            assert status in (401, 429), (method, path, status, text)
        else:
            assert status == 302 and location.startswith("/login"), (method, path, status)
    assert _state(cli) == before, "nothing changed"
    assert cli.job("secret")["state"] == "dead"
    # The token is in no process's command line, and the file is the owner's only.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert d.token.encode() not in cmdline, pid
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700


@pytest.mark.backends("sqlite")
def test_the_token_file_is_made_once_and_must_be_private(cli, tmp_path):
    first = Dashboard(cli, sign_in=False)
    token = first.token
    assert token and len(token) >= 40
    assert str(first.config_home / "queuectl" / "dashboard-token") in first.stderr_lines[1]
    assert token not in "".join(first.stderr_lines) and token not in first.signin_url
    first.proc.terminate()
    again = Dashboard(cli)
    assert again.token == token, "reused"
    assert again.request("/api/status", headers=again.bearer)[0] == 200
    # --token-file: private files only; --token: refused (it shows in ps).
    f = tmp_path / "tok"
    f.write_text(TOKEN + "\n")
    f.chmod(0o640)
    line = assert_one_error_line(cli.run("dashboard", "--port", "0", "--token-file", f), 2)
    assert "chmod 600" in line
    f.chmod(0o600)
    d = Dashboard(cli, "--token-file", str(f), sign_in=False)
    assert d.request("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    line = assert_one_error_line(cli.run("dashboard", "--token", TOKEN), 2)
    assert "ps" in line and "--token-file" in line and "QUEUECTL_DASHBOARD_TOKEN" in line


@pytest.mark.backends("sqlite")
def test_the_session_cookie(cli):
    d = Dashboard(cli, sign_in=False)
    status, _, headers = d.request(d.signin_url[len(d.url):], follow=False)
    assert status == 302 and headers["Location"] == "/"
    (cookie,) = headers.get_all("Set-Cookie")
    port = d.url.rsplit(":", 1)[1]
    name, value = cookie.split(";")[0].split("=", 1)
    attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert name == f"queuectl_{port}" and d.token not in cookie
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs, "plain HTTP, no trusted proxy"
    expires = next(a for a in attrs if a.startswith("expires="))
    from email.utils import parsedate_to_datetime
    left = parsedate_to_datetime(expires.split("=", 1)[1]).timestamp() - time.time()
    assert 11.9 * 3600 < left <= 12 * 3600 + 5
    auth = {"Cookie": f"{name}={value}"}
    assert d.request("/api/status", headers=auth)[0] == 200
    # A forwarded "https" from anyone but a trusted proxy changes nothing.
    assert d.request(d.signin_url[len(d.url):], follow=False)[0] == 401, "used once"
    # The same session is worth nothing to another dashboard, even with the same token.
    env = {"QUEUECTL_DASHBOARD_TOKEN": TOKEN}
    a, b = Dashboard(cli, env=env, sign_in=False), Dashboard(cli, env=env, sign_in=False)
    status, _, headers = a.request(a.signin_url[len(a.url):], follow=False)
    value_a = headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    port_b = b.url.rsplit(":", 1)[1]
    assert a.request("/api/status", headers={
        "Cookie": f"queuectl_{a.url.rsplit(':', 1)[1]}={value_a}"})[0] == 200
    assert b.request("/api/status", headers={"Cookie": f"queuectl_{port_b}={value_a}"})[0] \
        == 401
    # Behind a trusted proxy that says https: Secure; headers from others are ignored.
    p = Dashboard(cli, "--trusted-proxy", "127.0.0.1", env=env, sign_in=False)
    status, _, headers = p.request(p.signin_url[len(p.url):], follow=False, headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "queue.example.org"})
    assert status == 302 and "secure" in headers["Set-Cookie"].lower()
    q = Dashboard(cli, "--trusted-proxy", "192.0.2.7", env=env, sign_in=False)
    status, _, headers = q.request(q.signin_url[len(q.url):], follow=False, headers={
        "X-Forwarded-Proto": "https"})
    assert status == 302 and "secure" not in headers["Set-Cookie"].lower()


def test_a_session_expires(tmp_path):
    """(In process, with the lifetime shortened: 12 h is checked on the cookie above.)"""
    from queuectl.web.app import create_app
    app = create_app(str(tmp_path / "q.db"))
    s = app.extensions["queuectl"]
    s.sessions.seconds = 0.5
    client = app.test_client()
    assert client.get(f"/login?code={s.signin_code}").status_code == 302
    assert client.get("/api/status").status_code == 200
    time.sleep(0.6)
    assert client.get("/api/status").status_code == 401


@pytest.mark.backends("sqlite")
def test_wrong_tokens_are_throttled(cli):
    d = Dashboard(cli)                          # signed in (a browser)
    wrong = {"Authorization": "Bearer " + "w" * 32}
    assert [d.request("/api/status", headers=wrong)[0] for _ in range(10)] == [401] * 10
    status, text, headers = d.request("/api/status", headers=wrong)
    assert status == 429 and int(headers["Retry-After"]) >= 50, text
    assert d.request("/api/status", headers=d.bearer)[0] == 429, "not even checked"
    status, _, _ = d.request("/login", method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded"}, body=None)
    assert status == 429
    assert d.request("/api/status")[0] == 200, "a signed-in browser is not locked out"


def _raw(url: str, head: str, body: bytes = b"", timeout: float = 10) -> tuple[str, float]:
    host, port = url.split("//")[1].split(":")
    t = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass                       # refused before it was all sent
        data = s.recv(4096).decode(errors="replace")
    return data.split("\r\n", 1)[0], time.monotonic() - t


@pytest.mark.backends("sqlite")
def test_request_bodies_are_limited_before_they_are_read(cli):
    d = Dashboard(cli)
    # 50 MB announced, nothing sent: refused at once, not after reading it.
    for auth in ("", f"Authorization: Bearer {d.token}\r\n"):
        head = (f"POST /api/dlq/retry HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
                "Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")
        line, took = _raw(d.url, head)
        assert " 413 " in line, line
        assert took < 5
    # A body just over the limit, sent (the server may close before it is all in): 413.
    big = json.dumps({"ids": ["x" * 100] * 11_000}).encode()
    assert len(big) > 1024 * 1024
    head = (f"POST /api/dlq/retry HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            f"{d.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(big)}\r\n\r\n")
    assert " 413 " in _raw(d.url, head, big)[0]
    # One under it is read.
    assert d.request("/api/dlq/retry", method="POST", body={"ids": ["nope"]},
                     headers=d.bearer)[0] == 200


def _dead_jobs(cli, tmp_path: Path, n: int, size: int) -> None:
    """`n` dead jobs with commands of `size` bytes, in `n // 10` error groups."""
    cli.enqueue(id="model", command="exit 3", max_retries=0)
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    model = json.loads(cli.ok("export", "--state", "dead").splitlines()[0])
    for start in range(0, n, 500):
        f = tmp_path / "dead.jsonl"
        with open(f, "w") as out:
            for i in range(start, min(n, start + 500)):
                job = {**model, "id": f"dead-{i:05d}",
                       "command": f"exit 3 # {i} " + "x" * (size - 20),
                       "last_error": "exited with code 3: " + "abcdefghij"[i % 10] * (
                           1 + i // 10 % 20) + " " + "y" * 150}
                out.write(json.dumps(job) + "\n")
        cli.ok("import", str(f), timeout=120)


def _rss_kb(pid: int, field: str = "VmHWM") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


@pytest.mark.backends("sqlite")
def test_2000_dead_jobs_of_64_kb_are_paged_and_the_server_stays_small(cli, tmp_path):
    _dead_jobs(cli, tmp_path, 2000, 64 * 1024)
    d = Dashboard(cli)
    status, first = d.json("/api/dlq")
    assert status == 200 and first["total"] == 2001 and first["pages"] == 41
    base = _rss_kb(d.proc.pid, "VmRSS")
    sizes, errors = [], []

    def load(path: str) -> None:
        try:
            status, text, _ = d.request(path)
            assert status == 200, (path, status)
            sizes.append((path, len(text)))
        except Exception as e:           # noqa: BLE001
            errors.append(e)

    paths = ["/api/dlq", "/dlq", "/api/dlq?page=41", "/dlq?page=20&gpage=2",
             "/api/jobs?state=dead", "/jobs?state=dead", "/api/overview", "/"] * 2
    threads = [threading.Thread(target=load, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert max(size for _, size in sizes) < 200_000, sizes
    grown = (_rss_kb(d.proc.pid) - base) / 1024
    print(f"RSS {base / 1024:.0f} MB at rest, peak +{grown:.0f} MB; answers up to "
          f"{max(s for _, s in sizes) / 1024:.0f} KB")
    assert grown < 150, f"the server grew {grown:.0f} MB"
    # Every dead job is reachable by paging, each row bounded.
    status, last = d.json("/api/dlq?page=41")
    assert [j["id"] for j in last["jobs"]] == ["dead-01999"]
    assert all(len(j["command"]) <= 300 and j["clipped"] for j in first["jobs"][1:])
    assert first["groups_total"] == 201 and len(first["groups"]) == 50
    status, text, _ = d.request("/dlq?gpage=5")
    assert status == 200 and "page 5 of 5" in text


@pytest.mark.backends("sqlite")
def test_read_only_never_shows_env_values(cli):
    cli.enqueue(id="secret", command="true", env={"API_KEY": "hunter2"})
    d = Dashboard(cli, "--read-only")
    for path in ("/api/jobs/secret?show_env=1", "/jobs/secret?show_env=1", "/api/jobs",
                 "/jobs/secret"):
        status, text, headers = d.request(path)
        assert status == 200 and "hunter2" not in text, path
        assert headers["Cache-Control"] == "no-store", path
    assert d.json("/api/jobs/secret?show_env=1")[1]["job"]["env"] == {"API_KEY": "••••"}
    assert "show values" not in d.request("/jobs/secret")[1]
    rw = Dashboard(cli)
    assert "hunter2" in rw.request("/api/jobs/secret?show_env=1")[1], "a writable one shows it"


def _health(cli, *args, env=None):
    return subprocess.run(QUEUECTL + ["health", *args], capture_output=True, text=True,
                          env={**cli.env, **(env or {})}, timeout=60, cwd=cli.cwd)


def test_healthz_and_queuectl_health_with_the_database_up_and_down(cli, backend, tmp_path):
    cli.enqueue(id="j", command="true")
    d = Dashboard(cli, sign_in=False)
    status, text, headers = d.request("/healthz")
    assert (status, text) == (200, "ok\n") and headers["Cache-Control"] == "no-store"
    p = _health(cli)
    assert p.returncode == 0 and p.stdout.startswith("ok: the database answers"), p.stderr
    p = _health(cli, "--json")
    got = json.loads(p.stdout)
    assert p.returncode == 0 and got["ok"] is True and got["error"] is None
    if backend == "sqlite":
        moved = Path(cli.db).with_suffix(".moved")
        os.rename(cli.db, moved)                 # the file the server has open is gone
        down = {}
    else:
        import psycopg

        from e2e_util import _root
        PG_URL = _root.PG_URL
        schema = re.search(r"search_path%3D(\w+)", cli.db).group(1)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"ALTER SCHEMA {schema} RENAME TO {schema}_away")
        down = {"QUEUECTL_DB": "postgresql://postgres@127.0.0.1:1/test"}
    try:
        status, text, _ = d.request("/healthz")
        assert (status, text) == (503, "unavailable\n")
        p = _health(cli, env=down)
        assert p.returncode == 1 and p.stderr.startswith("unhealthy: "), p
        p = _health(cli, "--json", env=down)
        got = json.loads(p.stdout)
        assert p.returncode == 1 and got["ok"] is False and got["error"]
    finally:
        if backend == "sqlite":
            os.rename(moved, cli.db)
        else:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"ALTER SCHEMA {schema}_away RENAME TO {schema}")
    if backend == "postgres":
        wait_until(lambda: d.request("/healthz")[0] == 200, timeout=20,
                   message="healthy again")
    assert _health(cli).returncode == 0


def test_health_is_a_command_in_the_help():
    out = subprocess.run(QUEUECTL + ["--help"], capture_output=True, text=True).stdout
    assert re.search(r"^\s+health\s", out, re.M)
