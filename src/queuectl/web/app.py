"""The dashboard's Flask app: HTML pages, the JSON API they use, /metrics.

A thin layer over the same `Store` the CLI uses (one store per server thread,
`context.py`) and the same rules (`queuectl.ops`). Routes live in one
blueprint per area: `auth` (the access guard and sign-in), `pages` (HTML),
`jobs_api`, `dlq_api`, `queues_api` (JSON under /api/) and `metrics`
(/metrics); `views` builds the data a page and its JSON twin share. Pages are
Jinja2 templates with autoescaping; the page script fills in live data with
`textContent` only, so job data is always shown as text. Access and CSRF:
`auth.py`.
"""

from __future__ import annotations

import os

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFProtect

from queuectl.clock import iso
from queuectl.model import STATES
from queuectl.web import auth, dlq_api, errors, jobs_api, pages, queues_api
from queuectl.web.context import Settings
from queuectl.web.metrics import Metrics
from queuectl.web.metrics import bp as metrics_bp

CSP = ("default-src 'self'; img-src 'self' data:; "
       "style-src 'self'; script-src 'self'; frame-ancestors 'none'")


def create_app(url: str, *, token: str | None = None, read_only: bool = False,
               loopback: bool = True) -> Flask:
    app = Flask(__name__)
    app.secret_key = os.urandom(32)          # sessions (the CSRF token) last one run
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None,
                      WTF_CSRF_SSL_STRICT=False, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_HTTPONLY=True)
    provider = app.json
    assert isinstance(provider, DefaultJSONProvider)
    provider.sort_keys = False               # /api/status reads like `status --json`
    CSRFProtect(app)                         # checked by auth.guard, not by default
    settings = Settings(url, token=token, read_only=read_only, loopback=loopback)
    app.extensions["queuectl"] = settings
    app.extensions["queuectl_metrics"] = Metrics(settings.stores)
    errors.install(app)
    app.after_request(_headers)
    app.context_processor(lambda: {"read_only": read_only, "states": STATES, "iso": iso,
                                   "needs_login": token is not None})
    for bp in (auth.bp, pages.bp, jobs_api.bp, dlq_api.bp, queues_api.bp, metrics_bp):
        app.register_blueprint(bp)
    return app


def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp
