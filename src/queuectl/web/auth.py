"""Access to the dashboard: the guard run before every request, and the
sign-in form (README, "Dashboard").

* With a token, every request needs it: `Authorization: Bearer <token>`, or
  the cookie set once by the /login form. Without a token the server only
  listens on loopback (`serve` refuses otherwise) and only answers requests
  whose Host is a loopback name (no DNS rebinding).
* Every action is a POST; a request authenticated by the cookie (or by
  nothing, on loopback) must carry the page's CSRF token (Flask-WTF) in the
  `X-CSRFToken` header. `read_only` turns the actions off.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from queuectl.web import is_loopback
from queuectl.web.context import settings
from queuectl.web.errors import error

COOKIE = "queuectl_token"

bp = Blueprint("auth", __name__)


def _bearer() -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def is_token(given: str | None) -> bool:
    """Is `given` the dashboard's token (compared in constant time)?"""
    token = settings().token
    return given is not None and token is not None and hmac.compare_digest(
        given.encode(), token.encode())


def _host() -> str:
    """The Host header's name, without the port."""
    host = request.host or ""
    return host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]


@bp.before_app_request
def guard() -> ResponseReturnValue | None:
    s = settings()
    if s.token is None and s.loopback and not is_loopback(_host()):
        # (A page on another site whose name resolves to 127.0.0.1 must
        # not be able to read or drive the dashboard: DNS rebinding.)
        return error("this dashboard answers only to 127.0.0.1 and localhost", 403)
    g.by_bearer = is_token(_bearer())
    if s.token is not None and not g.by_bearer and not is_token(request.cookies.get(COOKIE)):
        if request.endpoint in ("auth.login", "auth.login_post", "static"):
            return None
        if request.path.startswith(("/api/", "/metrics")):
            return jsonify(error="a token is required (Authorization: Bearer …)"), 401
        return redirect(url_for("auth.login", next=request.full_path))
    if request.method == "POST" and request.endpoint != "auth.login_post":
        if s.read_only:
            return jsonify(error="the dashboard is read-only (--read-only)"), 403
        if not g.by_bearer:
            current_app.extensions["csrf"].protect()
    return None


@bp.get("/login")
def login() -> ResponseReturnValue:
    return render_template("login.html", error=None, next=request.args.get("next", "/"))


@bp.post("/login")
def login_post() -> ResponseReturnValue:
    given = request.form.get("token", "")
    target = local_path(request.form.get("next", "/"))
    if not is_token(given):
        return render_template("login.html", error="wrong token", next=target), 401
    resp = redirect(target)
    # Secure when the page came over HTTPS, also through a TLS proxy.
    secure = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
    resp.set_cookie(COOKIE, given, httponly=True, samesite="Strict", secure=secure)
    return resp


def local_path(target: str) -> str:
    """`target` if it is a path on this site, else "/" (no open redirect).
    Browsers read a backslash as a slash and drop tabs and newlines, so
    `/\\evil.example` or `/<tab>/evil.example` would leave the site as `//` does."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or \
            any(ord(ch) <= 32 or ord(ch) == 127 for ch in target):
        return "/"
    return target
