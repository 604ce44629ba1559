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
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from queuectl.clock import iso
from queuectl.model import STATES
from queuectl.web import auth, dlq_api, errors, health, jobs_api, pages, queues_api
from queuectl.web.context import Settings
from queuectl.web.metrics import Metrics
from queuectl.web.metrics import bp as metrics_bp

if TYPE_CHECKING:
    from collections.abc import Callable

    WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

CSP = ("default-src 'self'; img-src 'self' data:; "
       "style-src 'self'; script-src 'self'; frame-ancestors 'none'")


MAX_BODY = 1024 * 1024        # request bodies: larger ones get 413 before being read


def create_app(url: str, *, token: str | None = None, token_source: str = "",
               read_only: bool = False, loopback: bool = True,
               trusted_proxies: Iterable[str] = ()) -> Flask:
    """The dashboard for database `url`. Without `token` a random one is
    made (only the one-time sign-in link, `settings.signin_code`, then opens it)."""
    app = Flask(__name__)
    # The session (sign-in and CSRF token) is signed with a secret of this
    # server's run only: no other server, and no later run, accepts it.
    app.secret_key = os.urandom(32)
    app.session_interface = _SessionCookies()
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None,
                      WTF_CSRF_SSL_STRICT=False, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_NAME="queuectl_session",
                      SESSION_REFRESH_EACH_REQUEST=False,
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=auth.SESSION_HOURS),
                      MAX_CONTENT_LENGTH=MAX_BODY)
    provider = app.json
    assert isinstance(provider, DefaultJSONProvider)
    provider.sort_keys = False               # /api/status reads like `status --json`
    CSRFProtect(app)                         # checked by auth.guard, not by default
    proxies = tuple(trusted_proxies)
    settings = Settings(url, token=token or secrets.token_urlsafe(32),
                        token_source=token_source, read_only=read_only, loopback=loopback,
                        trusted_proxies=proxies, session_hours=auth.SESSION_HOURS)
    app.extensions["queuectl"] = settings
    app.extensions["queuectl_metrics"] = Metrics(settings.stores)
    errors.install(app)
    app.after_request(_headers)
    app.context_processor(lambda: {"read_only": read_only, "states": STATES, "iso": iso,
                                   "signed_in": auth.signed_in()})
    for bp in (auth.bp, health.bp, pages.bp, jobs_api.bp, dlq_api.bp, queues_api.bp,
               metrics_bp):
        app.register_blueprint(bp)
    if proxies:
        app.wsgi_app = _TrustedProxy(app.wsgi_app, proxies)  # type: ignore[method-assign]
    return app


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie session, `Secure` whenever the request came over
    HTTPS (directly, or through a trusted proxy that says so)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


class _TrustedProxy:
    """werkzeug's ProxyFix (client address, scheme, host, port, prefix from
    the X-Forwarded-* headers) for requests from the `--trusted-proxy`
    addresses only; anyone else's X-Forwarded-* headers are ignored."""

    def __init__(self, app: WSGIApp, addresses: tuple[str, ...]):
        self.app = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
        self.addresses = frozenset(addresses)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REMOTE_ADDR") in self.addresses:
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.endpoint != "static":         # pages and API answers are not kept
        resp.headers["Cache-Control"] = "no-store"
    return resp
