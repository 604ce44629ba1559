"""The JSON API over jobs: status, overview, job lists and one job, and the
job actions (retry a dead job, cancel)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from queuectl import ops
from queuectl.web import views
from queuectl.web.context import current_store, settings

bp = Blueprint("jobs_api", __name__, url_prefix="/api")


@bp.get("/status")
def status() -> ResponseReturnValue:
    return jsonify(views.status(current_store()))


@bp.get("/overview")
def overview() -> ResponseReturnValue:
    return jsonify(views.overview(current_store()))


@bp.get("/jobs")
def jobs() -> ResponseReturnValue:
    return jsonify(views.jobs(current_store(), request.args))


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> ResponseReturnValue:
    show_env = request.args.get("show_env") == "1" and not settings().read_only
    return jsonify(views.job(current_store(), job_id, show_env))


@bp.post("/jobs/<job_id>/retry")
def retry(job_id: str) -> ResponseReturnValue:
    current_store().dlq_retry(ops.job_id(job_id))
    return jsonify(ok=True, id=job_id, state="pending")


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> ResponseReturnValue:
    result = current_store().cancel(ops.job_id(job_id))
    return jsonify(ok=True, id=job_id, result=result)
