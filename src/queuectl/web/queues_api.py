"""The JSON API's queue actions: pause and resume (by the rules of `ops`)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from queuectl import ops
from queuectl.web.context import current_store

bp = Blueprint("queues_api", __name__, url_prefix="/api/queues")


@bp.post("/<name>/pause")
def pause(name: str) -> ResponseReturnValue:
    ops.set_queue(current_store(), name, paused=True)
    return jsonify(ok=True, queue=name, paused=True)


@bp.post("/<name>/resume")
def resume(name: str) -> ResponseReturnValue:
    ops.set_queue(current_store(), name, paused=False)     # as `queue resume`
    return jsonify(ok=True, queue=name, paused=False)
