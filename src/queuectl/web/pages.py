"""The dashboard's HTML pages (Jinja2, autoescaped): overview, jobs, one job, DLQ."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from queuectl.web import views
from queuectl.web.context import current_store, settings

bp = Blueprint("pages", __name__)


@bp.get("/")
def overview() -> ResponseReturnValue:
    return render_template("overview.html", data=views.overview(current_store()))


@bp.get("/jobs")
def jobs() -> ResponseReturnValue:
    return render_template("jobs.html", data=views.jobs(current_store(), request.args))


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> ResponseReturnValue:
    show_env = request.args.get("show_env") == "1" and not settings().read_only
    return render_template("job.html", data=views.job(current_store(), job_id, show_env),
                           show_env=show_env)


@bp.get("/dlq")
def dlq() -> ResponseReturnValue:
    return render_template("dlq.html", data=views.dlq(current_store(), request.args))
