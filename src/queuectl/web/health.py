"""`GET /healthz` for probes: no sign-in, no data. 200 when the database
answers, 503 otherwise (the body says only "ok" or "unavailable")."""

from __future__ import annotations

import os

from flask import Blueprint
from flask.typing import ResponseReturnValue

from queuectl import health
from queuectl.web.context import current_store, settings

bp = Blueprint("health", __name__)


def _moved() -> bool:
    """Does the SQLite path no longer name the file the server started on?"""
    file = settings().file
    if file is None:
        return False
    try:
        st = os.stat(file[0])
    except OSError:
        return True
    return (st.st_dev, st.st_ino) != file[1]


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        problem = "moved" if _moved() else health.check(current_store())
    except Exception:                   # noqa: BLE001 (a probe gets 503, never 500)
        problem = "unavailable"
    if problem:
        return "unavailable\n", 503, {"Content-Type": "text/plain; charset=utf-8"}
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
