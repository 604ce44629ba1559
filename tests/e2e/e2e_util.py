"""Helpers shared by the end-to-end tests (imported by the test modules).

`wait_until` and `QUEUECTL` come from tests/conftest.py, loaded by path under a
private name so that other directories' conftest.py files cannot shadow it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

_ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
_spec = importlib.util.spec_from_file_location("_queuectl_e2e_root_conftest", _ROOT_CONFTEST)
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

wait_until = _root.wait_until
QUEUECTL = _root.QUEUECTL

ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
STATES = ("pending", "processing", "completed", "failed", "dead", "cancelled")
EMPTY_COUNTS = dict.fromkeys(STATES, 0)


def parse_at(text: str) -> float:
    """ISO-8601 UTC with Z and milliseconds -> epoch seconds."""
    assert ISO_MS_Z.fullmatch(text), f"not ISO-8601 UTC with ms and Z: {text!r}"
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def history(cli, job_id: "str | None" = None) -> list[dict]:
    """`queuectl history [--job-id ID]` parsed: one JSON object per line."""
    args = ["history"] + (["--job-id", job_id] if job_id is not None else [])
    out = cli.ok(*args)
    return [json.loads(line) for line in out.splitlines()]


def events(cli, job_id: str) -> list[str]:
    return [e["event"] for e in history(cli, job_id)]


def counts(cli) -> dict:
    return cli.json("status")["jobs"]


def assert_one_error_line(p: subprocess.CompletedProcess, code: int) -> str:
    """Exit `code`, nothing on stdout, exactly one `queuectl: error:` line on stderr."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {p.stderr!r}"
    assert lines[0].startswith("queuectl: error: "), p.stderr
    assert p.stdout == "", p.stdout
    return lines[0]


def snapshot(cli) -> tuple:
    """Everything a failing command must leave alone, as seen through the CLI."""
    return (cli.json("status")["jobs"], cli.ok("history"),
            cli.json("list", "--limit", "0"), cli.json("config", "list"))


def pid_gone(pid: int) -> bool:
    """True once `pid` no longer exists (a zombie nobody reaps counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def pgroup_gone(pgid: int) -> bool:
    """True once no live (non-zombie) process is in process group `pgid`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # fields: state ppid pgrp ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return False
    return True


def read_pid(path: Path, timeout: float = 10.0) -> int:
    """Wait until a job has written its pid to `path`, then return it."""
    def get():
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None
    return wait_until(get, timeout=timeout, message=f"a pid in {path}")


def wait_exit(p: subprocess.Popen, timeout: float) -> int:
    """Wait for a background `worker start` to exit; fail (not hang) after `timeout`."""
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"worker pid {p.pid} still running after {timeout}s") from None


def worker_log(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    value = fn(*args, **kw)
    return value, time.monotonic() - t0


def start_logged(cli, log: Path, *args) -> subprocess.Popen:
    """`queuectl worker start ARGS` in the background, its stderr (the log) into `log`,
    so a chatty worker can never block on a full pipe."""
    with open(log, "a") as f:
        return cli.start(*args, stderr=f)


TOKEN = "s3cret-token-for-tests"


class Dashboard:
    """A running `queuectl dashboard --port 0`, and an HTTP client for it,
    signed in through the one-time link the dashboard prints (unless
    `sign_in=False`). Its token file lives under the test's directory
    ($XDG_CONFIG_HOME); `token` is the token it uses."""

    def __init__(self, cli, *args, env=None, sign_in=True):
        self.config_home = Path(cli.cwd) / "xdg"
        env = {"XDG_CONFIG_HOME": str(self.config_home), **(env or {})}
        self.proc = subprocess.Popen(QUEUECTL + ["dashboard", "--port", "0", *args],
                                     env={**cli.env, **env}, cwd=cli.cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        cli.procs.append(self.proc)
        line = self.proc.stdout.readline()
        m = re.search(r"http://\S+/", line)
        assert m, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url = m.group(0).rstrip("/")
        self.stderr_lines = [self.proc.stderr.readline(), self.proc.stderr.readline()]
        link = re.search(r"http://\S+/login\?code=\S+", self.stderr_lines[0])
        assert link, self.stderr_lines
        self.signin_url = link.group(0)
        self.token = env.get("QUEUECTL_DASHBOARD_TOKEN")
        token_file = self.config_home / "queuectl" / "dashboard-token"
        if self.token is None and token_file.exists():
            self.token = token_file.read_text().strip()
        self.cookies: dict = {}
        if sign_in:
            status, _, headers = self.request(self.signin_url[len(self.url):], follow=False)
            assert status == 302 and self.cookies, (status, headers)

    @property
    def bearer(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, path, *, method="GET", body=None, headers=None, follow=True):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json", **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        opener = urllib.request.build_opener() if follow else _NO_REDIRECT
        try:
            with opener.open(req, timeout=20) as r:
                status, raw, got = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, got = e.code, e.read(), e.headers
        for c in got.get_all("Set-Cookie") or []:
            name, _, rest = c.partition("=")
            value = rest.split(";")[0]
            if value and "expires=thu, 01 jan 1970" not in c.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return status, raw.decode(), got

    def json(self, path, **kw):
        status, text, _ = self.request(path, **kw)
        return status, json.loads(text)

    def csrf(self) -> str:
        """Load a page (which starts a session) and return its CSRF token."""
        status, html, _ = self.request("/")
        assert status == 200
        return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


class _NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


_NO_REDIRECT = urllib.request.build_opener(_NoRedirectHandler)
