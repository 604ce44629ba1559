"""The dashboard's Flask app: HTML pages, the JSON API they use, /metrics.

A thin layer over the same `Store` the CLI uses (one store per server thread).
Pages are Jinja2 templates with autoescaping; the page script fills in live
data with `textContent` only, so job data is always shown as text.

Security (README, "Dashboard"):
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
import os
import threading

from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from queuectl import insight
from queuectl.clock import iso
from queuectl.errors import Conflict, InvalidInput, NotFound, QueueError
from queuectl.model import STATES, TERMINAL, valid_id
from queuectl.store import open_store
from queuectl.web import is_loopback

COOKIE = "queuectl_token"
PER_PAGE = 50
MAX_PAGE = 100_000
CHART_MINUTES = 30
FAILURES_WINDOW = 3_600_000     # "recent failures": the last hour's
DLQ_LISTED = 100                # the DLQ page lists the oldest 100 (all under /jobs?state=dead)


class Stores(threading.local):
    """One store (one connection) per server thread, opened on first use."""

    def __init__(self, url: str):
        self.url = url
        self.store = None

    def get(self):
        if self.store is None:
            # create=True: an SQLite file made later would not be seen by a
            # thread that had opened the (then missing) file as empty.
            self.store = open_store(self.url, create=True)
        return self.store


def create_app(url: str, *, token: "str | None" = None, read_only: bool = False,
               loopback: bool = True) -> Flask:
    app = Flask(__name__)
    app.secret_key = os.urandom(32)          # sessions (the CSRF token) last one run
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None,
                      WTF_CSRF_SSL_STRICT=False, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_HTTPONLY=True)
    app.json.sort_keys = False              # /api/status reads like `status --json`
    csrf = CSRFProtect(app)
    stores = Stores(url)
    app.extensions["queuectl"] = {"url": url, "read_only": read_only, "token": token}
    from queuectl.web.metrics import Metrics
    metrics = Metrics(stores)

    def store():
        return stores.get()

    # ------------------------------------------------------------ guards
    def _bearer() -> "str | None":
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _is(given: "str | None") -> bool:
        return given is not None and token is not None and hmac.compare_digest(
            given.encode(), token.encode())

    @app.before_request
    def guard():
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith(
            "[") else (request.host or "").split("]")[0] + "]"
        if token is None and loopback and not is_loopback(host):
            # (A page on another site whose name resolves to 127.0.0.1 must
            # not be able to read or drive the dashboard: DNS rebinding.)
            return _error("this dashboard answers only to 127.0.0.1 and localhost", 403)
        g.by_bearer = _is(_bearer())
        if token is not None and not g.by_bearer and not _is(request.cookies.get(COOKIE)):
            if request.endpoint in ("login", "login_post", "static"):
                return None
            if request.path.startswith(("/api/", "/metrics")):
                return jsonify(error="a token is required (Authorization: Bearer …)"), 401
            return redirect(url_for("login", next=request.full_path))
        if request.method == "POST" and request.endpoint != "login_post":
            if read_only:
                return jsonify(error="the dashboard is read-only (--read-only)"), 403
            if not g.by_bearer:
                csrf.protect()
        return None

    @app.errorhandler(CSRFError)
    def csrf_failed(e):
        return jsonify(error=f"CSRF check failed: {e.description}"), 400

    @app.errorhandler(HTTPException)
    def http_error(e):
        return _error(f"{e.name}: {e.description}", e.code)

    @app.errorhandler(NotFound)
    def not_found(e):
        return _error(str(e), 404)

    @app.errorhandler(Conflict)
    def conflict(e):
        return _error(str(e), 409)

    @app.errorhandler(InvalidInput)
    def invalid(e):
        return _error(str(e), 400)

    @app.errorhandler(QueueError)
    def failed(e):
        return _error(str(e), 503)

    def _error(message: str, code: int):
        if request.path.startswith("/api/"):
            return jsonify(error=message), code
        return render_template("error.html", message=message, code=code), code

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; "
                                "style-src 'self'; script-src 'self'; frame-ancestors 'none'")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.context_processor
    def globals_():
        return {"read_only": read_only, "states": STATES, "iso": iso,
                "needs_login": token is not None}

    # ------------------------------------------------------------ pages
    @app.get("/login")
    def login():
        return render_template("login.html", error=None, next=request.args.get("next", "/"))

    @app.post("/login")
    def login_post():
        given = request.form.get("token", "")
        target = _local_path(request.form.get("next", "/"))
        if not _is(given):
            return render_template("login.html", error="wrong token", next=target), 401
        resp = redirect(target)
        # Secure when the page came over HTTPS, also through a TLS proxy.
        secure = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
        resp.set_cookie(COOKIE, given, httponly=True, samesite="Strict", secure=secure)
        return resp

    @app.get("/")
    def overview():
        return render_template("overview.html", data=_overview(store()))

    @app.get("/jobs")
    def jobs_page():
        return render_template("jobs.html", data=_jobs(store(), request.args))

    @app.get("/jobs/<job_id>")
    def job_page(job_id):
        show_env = request.args.get("show_env") == "1"
        return render_template("job.html", data=_job(store(), job_id, show_env),
                               show_env=show_env)

    @app.get("/dlq")
    def dlq_page():
        return render_template("dlq.html", data=_dlq(store()))

    # ------------------------------------------------------------ API: reads
    @app.get("/api/status")
    def api_status():
        s = store()
        return jsonify({"jobs": s.counts(), "workers": {"active": len(s.active_workers())}})

    @app.get("/api/overview")
    def api_overview():
        return jsonify(_overview(store()))

    @app.get("/api/jobs")
    def api_jobs():
        return jsonify(_jobs(store(), request.args))

    @app.get("/api/jobs/<job_id>")
    def api_job(job_id):
        return jsonify(_job(store(), job_id, request.args.get("show_env") == "1"))

    @app.get("/api/dlq")
    def api_dlq():
        return jsonify(_dlq(store()))

    @app.get("/metrics")
    def prometheus():
        body, content_type = metrics.render()
        return app.response_class(body, content_type=content_type)

    # ------------------------------------------------------------ API: actions
    @app.post("/api/jobs/<job_id>/retry")
    def api_retry(job_id):
        store().dlq_retry(_id(job_id))
        return jsonify(ok=True, id=job_id, state="pending")

    @app.post("/api/jobs/<job_id>/cancel")
    def api_cancel(job_id):
        result = store().cancel(_id(job_id))
        return jsonify(ok=True, id=job_id, result=result)

    @app.post("/api/dlq/retry")
    def api_retry_all():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise InvalidInput('give a JSON object: {"all": true}, {"queue": Q, '
                               '"exit_code": N}, {"group": {...}} or {"ids": [...]}')
        s = store()
        if body.get("ids") is not None:
            ids = body["ids"]
            if not isinstance(ids, list) or not all(valid_id(i) for i in ids):
                raise InvalidInput("ids must be a list of job ids")
            done = 0
            for i in ids:
                try:
                    s.dlq_retry(i)
                    done += 1
                except (NotFound, Conflict):
                    pass
            return jsonify(ok=True, retried=done)
        if body.get("group") is not None:
            from queuectl.cli.dlq import group_key
            want = body["group"]
            if not isinstance(want, dict):
                raise InvalidInput("group must be an object with exit_code and error")
            key = (want.get("exit_code"), want.get("error"))
            done = 0
            for job in s.dead_jobs():
                if group_key(job) == key:
                    try:
                        s.dlq_retry(job.id)
                        done += 1
                    except (NotFound, Conflict):
                        pass
            return jsonify(ok=True, retried=done)
        if body.get("all") is not True and body.get("queue") is None and \
                body.get("exit_code") is None:
            raise InvalidInput('to retry every dead job, say so: {"all": true}')
        queue, code = body.get("queue"), body.get("exit_code")
        if queue is not None and not valid_id(queue):
            raise InvalidInput("invalid queue name")
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            raise InvalidInput("exit_code must be an integer")
        return jsonify(ok=True, retried=s.dlq_retry_all(queue, code))

    @app.post("/api/queues/<name>/pause")
    def api_pause(name):
        store().set_queue(_queue(name), paused=True)
        return jsonify(ok=True, queue=name, paused=True)

    @app.post("/api/queues/<name>/resume")
    def api_resume(name):
        s = store()
        if _queue(name) not in {q["name"] for q in s.queues()}:   # as `queue resume`
            raise NotFound(f"queue {name} not found: it has no jobs and no settings")
        s.set_queue(name, paused=False)
        return jsonify(ok=True, queue=name, paused=False)

    return app


def _local_path(target: str) -> str:
    """`target` if it is a path on this site, else "/" (no open redirect).
    Browsers read a backslash as a slash and drop tabs and newlines, so
    `/\\evil.example` or `/<tab>/evil.example` would leave the site as `//` does."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or \
            any(ord(ch) <= 32 or ord(ch) == 127 for ch in target):
        return "/"
    return target


def _id(job_id: str) -> str:
    if not valid_id(job_id):
        raise InvalidInput(f"invalid job id {job_id!r}")
    return job_id


def _queue(name: str) -> str:
    if not valid_id(name):
        raise InvalidInput(f"invalid queue name {name!r}")
    return name


# ---------------------------------------------------------------- view data

def _overview(s) -> dict:
    counts = s.counts()
    workers = s.active_workers()
    now = _now_ms(s)
    # Whole minutes, the current one last.
    since = now - now % 60_000 - (CHART_MINUTES - 1) * 60_000
    running = {j.id: j for j in s.list_jobs("processing")}
    for w in workers:
        job = running.get(w["job_id"]) if w["job_id"] else None
        w["job_command"] = job.command if job else None
        w["job_elapsed"] = round((now - job.started_at) / 1000, 1) if job else None
    recent = s.recent_failures(10, now - FAILURES_WINDOW)
    return {
        "status": {"jobs": counts, "workers": {"active": len(workers)}},
        "queues": s.queues(),
        "workers": workers,
        "throughput": insight.throughput(s.event_counts(since, 60_000), since, now),
        "recent_failures": [{"job_id": r[1], "queue": r[2], "event": r[3], "at": iso(r[4]),
                             "error": insight._detail(r[6]).get("error")} for r in recent],
        "now": iso(now),
    }


def _now_ms(s) -> int:
    return s.now_ms()


def _jobs(s, args) -> dict:
    state = args.get("state") or None
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown state {state!r}")
    q = (args.get("q") or "").strip() or None
    if q is not None and len(q) > 200:
        raise InvalidInput("search text is longer than 200 characters")
    if q is not None and any(ord(ch) < 32 for ch in q):
        raise InvalidInput("search text must not contain control characters")
    try:
        page = max(1, int(args.get("page", 1)))
    except ValueError:
        raise InvalidInput("page must be a number") from None
    if page > MAX_PAGE:
        raise InvalidInput(f"page must be at most {MAX_PAGE}")
    total = s.count_jobs(state, q)
    jobs = s.list_jobs(state, PER_PAGE, offset=(page - 1) * PER_PAGE, search=q,
                       newest_first=True)
    return {"state": state, "q": q, "page": page, "per_page": PER_PAGE, "total": total,
            "pages": max(1, -(-total // PER_PAGE)), "jobs": [_public(j) for j in jobs]}


def _job(s, job_id: str, show_env: bool) -> dict:
    job = s.get_job(_id(job_id), with_output=True)
    d = _public(job, with_output=True, show_env=show_env)
    history = s.history(job_id)
    return {"job": d, "attempts": insight.attempts(history), "events": history,
            "terminal": job.state in TERMINAL, "env_hidden": bool(job.options and
                                                                   job.options.get("env") and
                                                                   not show_env)}


def _public(job, with_output: bool = False, show_env: bool = False) -> dict:
    """A job as the dashboard shows it: env values masked unless asked for."""
    d = job.to_dict(with_output=with_output)
    if d.get("env") and not show_env:
        d["env"] = {k: "••••" for k in d["env"]}
    return d


def _dlq(s) -> dict:
    from queuectl.cli.dlq import groups
    dead = s.dead_jobs()
    return {"groups": groups(dead), "jobs": [_public(j) for j in dead[:DLQ_LISTED]],
            "total": len(dead)}
