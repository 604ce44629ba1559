"""Access to the dashboard: the guard run before every request, sign-in and
sign-out (README, "Dashboard: access").

* Every request but /healthz and the sign-in page needs the token, also on
  loopback: `Authorization: Bearer <token>` (scripts, Prometheus), or a
  browser session. The browser never holds the token: signing in (with the
  one-time link `queuectl dashboard` prints, or the token typed into the
  form) gives it a session cookie signed with a secret made at this server's
  start (so no other server, and no later run, accepts it), valid for
  `SESSION_HOURS` at most and until sign-out (the server keeps the live
  session ids, so a signed-out cookie is dead even if someone copied it).
  The cookie is HttpOnly, SameSite=Strict, Secure when the request came over
  HTTPS (behind `--trusted-proxy`, as the proxy says), and named after the
  port, since browsers send a host's cookies to all of its ports.
* Wrong tokens (bearer, form, sign-in link) are counted per client address
  and in total: past `MAX_FAILURES` in `WINDOW` seconds further token checks
  are answered 429 without checking, until the window has passed.
* A loopback dashboard (no `--trusted-proxy`) also answers only requests whose
  Host is a loopback name (no DNS rebinding).
* Every action is a POST; a request authenticated by the session must carry
  the page's CSRF token (Flask-WTF) in the `X-CSRFToken` header (or the
  form's `csrf_token`). `read_only` turns the actions off.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from queuectl.web import is_loopback
from queuectl.web.context import settings
from queuectl.web.errors import error

SESSION_HOURS = 12
MAX_FAILURES = 10            # wrong tokens per client address in WINDOW …
MAX_FAILURES_ALL = 100       # … and from all clients together
WINDOW = 60.0                # seconds
MAX_SESSIONS = 10_000        # live sessions kept (the oldest go first)

#: Reached without the token.
OPEN = ("auth.login", "auth.login_post", "auth.logout", "health.healthz", "static")

bp = Blueprint("auth", __name__)


class Throttle:
    """Wrong-token counts per client address and in total, over `WINDOW`."""

    def __init__(self, per_client: int = MAX_FAILURES, total: int = MAX_FAILURES_ALL,
                 window: float = WINDOW):
        self.per_client, self.total, self.window = per_client, total, window
        self.lock = threading.Lock()
        self.clients: OrderedDict[str, deque[float]] = OrderedDict()
        self.all: deque[float] = deque()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def wait(self, client: str) -> float:
        """Seconds until `client` may try a token again (0: now)."""
        now = time.monotonic()
        with self.lock:
            self._trim(self.all, now)
            mine = self.clients.get(client, deque())
            self._trim(mine, now)
            waits = [t + self.window - now for times, limit in
                     ((mine, self.per_client), (self.all, self.total))
                     if len(times) >= limit for t in (times[-limit],)]
            return max(waits, default=0.0)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self.lock:
            mine = self.clients.pop(client, None) or deque(maxlen=self.per_client)
            mine.append(now)
            self.clients[client] = mine              # most recent last
            self.all.append(now)
            if len(self.all) > self.total:
                self.all.popleft()
            while len(self.clients) > 10_000:
                self.clients.popitem(last=False)


class Sessions:
    """The ids of live sessions (signed in, not signed out, not expired)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.live: OrderedDict[str, float] = OrderedDict()    # id -> expiry (monotonic)

    def new(self) -> str:
        sid = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self.lock:
            self.live[sid] = now + self.seconds
            while len(self.live) > MAX_SESSIONS:
                self.live.popitem(last=False)
        return sid

    def valid(self, sid: object) -> bool:
        if not isinstance(sid, str):
            return False
        with self.lock:
            expiry = self.live.get(sid)
            if expiry is not None and expiry <= time.monotonic():
                del self.live[sid]
                expiry = None
        return expiry is not None

    def end(self, sid: object) -> None:
        if isinstance(sid, str):
            with self.lock:
                self.live.pop(sid, None)


def _bearer() -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _same(given: str | None, secret: str | None) -> bool:
    return given is not None and secret is not None and hmac.compare_digest(
        given.encode(), secret.encode())


def is_token(given: str | None) -> bool:
    """Is `given` the dashboard's token (compared in constant time)?"""
    return _same(given, settings().token)


def _client() -> str:
    return request.remote_addr or "?"


def _too_many(wait: float) -> ResponseReturnValue:
    seconds = max(1, int(wait + 0.999))
    resp = current_app.make_response(error(
        f"too many wrong tokens from here; try again in {seconds} s", 429))
    resp.headers["Retry-After"] = str(seconds)
    return resp


def signed_in() -> bool:
    return settings().sessions.valid(session.get("sid"))


def _sign_in(target: str) -> ResponseReturnValue:
    session.clear()                    # a new session: no fixation, a new CSRF token
    session.permanent = True           # the cookie expires with the session
    session["sid"] = settings().sessions.new()
    return redirect(target)


def _host() -> str:
    """The Host header's name, without the port."""
    host = request.host or ""
    return host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]


@bp.before_app_request
def guard() -> ResponseReturnValue | None:
    s = settings()
    if request.endpoint == "health.healthz":
        return None
    if s.loopback and not s.trusted_proxies and not is_loopback(_host()):
        # (A page on another site whose name resolves to 127.0.0.1 must
        # not be able to read or drive the dashboard: DNS rebinding.)
        return error("this dashboard answers only to 127.0.0.1 and localhost", 403)
    g.by_bearer = False
    bearer = _bearer()
    if bearer is not None:
        wait = s.throttle.wait(_client())
        if wait:
            return _too_many(wait)
        g.by_bearer = is_token(bearer)
        if not g.by_bearer:               # wrong credentials are wrong, session or not
            s.throttle.failed(_client())
            if request.endpoint not in OPEN:
                return _unauthorized()
    if not g.by_bearer and not signed_in():
        if request.endpoint in OPEN:
            return None
        return _unauthorized()
    if request.method == "POST" and request.endpoint != "auth.login_post":
        if s.read_only and request.endpoint != "auth.logout":
            return jsonify(error="the dashboard is read-only (--read-only)"), 403
        if not g.by_bearer:
            current_app.extensions["csrf"].protect()
    return None


def _unauthorized() -> ResponseReturnValue:
    if request.path.startswith(("/api/", "/metrics")):
        return jsonify(error="sign in first, or send the token: "
                             "Authorization: Bearer <token>"), 401
    return redirect(url_for("auth.login", next=request.full_path))


def _form(error_text: str | None, target: str, code: int = 200) -> ResponseReturnValue:
    return render_template("login.html", error=error_text, next=target), code


@bp.get("/login")
def login() -> ResponseReturnValue:
    """The sign-in form; with `code`, the one-time sign-in link."""
    target = local_path(request.args.get("next", "/"))
    code = request.args.get("code")
    if code is None:
        return redirect(target) if signed_in() else _form(None, target)
    s = settings()
    wait = s.throttle.wait(_client())
    if wait:
        return _too_many(wait)
    with s.lock:
        ok = s.signin_code is not None and _same(code, s.signin_code)
        if ok:
            s.signin_code = None                   # once
    if not ok:
        s.throttle.failed(_client())
        return _form("this sign-in link has been used already (or is wrong): "
                     "enter the token", target, 401)
    return _sign_in(target)


@bp.post("/login")
def login_post() -> ResponseReturnValue:
    target = local_path(request.form.get("next", "/"))
    s = settings()
    wait = s.throttle.wait(_client())
    if wait:
        return _too_many(wait)
    if not is_token(request.form.get("token", "")):
        s.throttle.failed(_client())
        return _form("wrong token", target, 401)
    return _sign_in(target)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    settings().sessions.end(session.get("sid"))
    session.clear()                    # (Flask then deletes the cookie)
    return redirect(url_for("auth.login"))


def local_path(target: str) -> str:
    """`target` if it is a path on this site, else "/" (no open redirect).
    Browsers read a backslash as a slash and drop tabs and newlines, so
    `/\\evil.example` or `/<tab>/evil.example` would leave the site as `//` does."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or \
            any(ord(ch) <= 32 or ord(ch) == 127 for ch in target):
        return "/"
    return target
