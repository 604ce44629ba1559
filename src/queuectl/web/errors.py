"""How the dashboard answers an error: JSON under /api/, an HTML page elsewhere;
queuectl's errors mapped to HTTP statuses."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from queuectl.errors import Conflict, InvalidInput, NotFound, QueueError

STATUSES: list[tuple[type[QueueError], int]] = [
    (NotFound, 404), (Conflict, 409), (InvalidInput, 400), (QueueError, 503)]


def error(message: str, code: int) -> ResponseReturnValue:
    if request.path.startswith("/api/"):
        return jsonify(error=message), code
    return render_template("error.html", message=message, code=code), code


def _csrf_failed(e: CSRFError) -> ResponseReturnValue:
    return jsonify(error=f"CSRF check failed: {e.description}"), 400


def _http_error(e: HTTPException) -> ResponseReturnValue:
    return error(f"{e.name}: {e.description}", e.code or 500)


def _by_status(code: int) -> Callable[[QueueError], ResponseReturnValue]:
    def handler(e: QueueError) -> ResponseReturnValue:
        return error(str(e), code)
    return handler


def install(app: Flask) -> None:
    """Register the error handlers (the most specific class wins in Flask)."""
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_error_handler(HTTPException, _http_error)
    for cls, code in STATUSES:
        app.register_error_handler(cls, _by_status(code))
