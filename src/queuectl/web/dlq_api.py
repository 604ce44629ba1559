"""The JSON API of the dead-letter queue: its groups and jobs, and retrying
them (by ids, by group, or all of a queue / exit code)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from queuectl import ops
from queuectl.errors import InvalidInput
from queuectl.model import valid_id
from queuectl.web import views
from queuectl.web.context import current_store

bp = Blueprint("dlq_api", __name__, url_prefix="/api/dlq")


@bp.get("")
def dlq() -> ResponseReturnValue:
    return jsonify(views.dlq(current_store(), request.args))


@bp.post("/retry")
def retry() -> ResponseReturnValue:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput('give a JSON object: {"all": true}, {"queue": Q, '
                           '"exit_code": N}, {"group": {...}} or {"ids": [...]}')
    return jsonify(ok=True, retried=_retry(body))


def _retry(body: dict[str, Any]) -> int:
    s = current_store()
    if body.get("ids") is not None:
        ids = body["ids"]
        if not isinstance(ids, list) or not all(valid_id(i) for i in ids):
            raise InvalidInput("ids must be a list of job ids")
        return ops.retry_ids(s, ids)
    if body.get("group") is not None:
        want = body["group"]
        if not isinstance(want, dict):
            raise InvalidInput("group must be an object with exit_code and error")
        # (As ops.retry_group, reading the dead jobs a chunk at a time.)
        key = (want.get("exit_code"), want.get("error"))
        with views.SCANNING:
            ids = [j.id for j in views.dead_jobs(s) if ops.group_key(j) == key]
        return ops.retry_ids(s, ids)
    if body.get("all") is not True and body.get("queue") is None and \
            body.get("exit_code") is None:
        raise InvalidInput('to retry every dead job, say so: {"all": true}')
    queue, code = body.get("queue"), body.get("exit_code")
    if queue is not None:
        ops.queue_name(queue)
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
        raise InvalidInput("exit_code must be an integer")
    return ops.retry_all(s, queue, code)
