"""Payload parsing and validation: JSON text to NewJob (enqueue, cron, import).

Everything here is pure: no database, no processes, no clock reads. The
limits and field names it checks against are the model's (queuectl.model).
"""

from __future__ import annotations

import json
import math

from queuectl.clock import parse_iso
from queuectl.errors import InvalidInput
from queuectl.model import (
    DEFAULT_QUEUE,
    ENV_NAME_RE,
    FIELD_SET,
    FIELDS,
    MAX_AFTER,
    MAX_BATCH,
    MAX_COMMAND_BYTES,
    MAX_CWD_BYTES,
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    MAX_INT,
    MAX_LINE_CHARS,
    STATES,
    TERMINAL,
    Job,
    NewJob,
    new_job_id,
    valid_id,
)

# Not `typing.TYPE_CHECKING`: importing typing would cost `enqueue` 2-3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeGuard

# ---------------------------------------------------------------- validation

def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> TypeGuard[int | float]:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


def validate_payload(obj: object, *, default_max_retries: "int | None" = None,
                     default_timeout: "float | None" = None) -> NewJob:
    """Turn one decoded JSON value into a NewJob, or raise InvalidInput naming the field.

    Fields left out get the defaults given here; with None they stay None
    until `fill_defaults` (so input can be validated before any database is
    opened).
    """
    if not isinstance(obj, dict):
        raise InvalidInput(f"a job must be a JSON object, not {_json_type(obj)}")
    if not obj.keys() <= FIELD_SET:
        key = next(k for k in obj if k not in FIELD_SET)
        from queuectl.config import did_you_mean
        raise InvalidInput(f"unknown field {key!r}{did_you_mean(str(key), list(FIELDS))} "
                           f"(allowed: {', '.join(FIELDS)})")

    command = _command(obj)
    if (len(obj) == 1 or len(obj) == 2 and "id" in obj) and \
            default_max_retries is None and default_timeout is None:
        # A command and perhaps an id (the usual line of a bulk enqueue):
        # nothing else to check.
        if "id" not in obj:
            job_id = new_job_id()
        elif not valid_id(job_id := obj["id"]):
            raise InvalidInput(
                "field 'id' must be a string of 1-128 letters, digits or '._:-'")
        return NewJob(job_id, command, None, 0, None, 0.0, None)

    if "id" in obj:
        job_id = obj["id"]
        if not valid_id(job_id):
            raise InvalidInput(
                "field 'id' must be a string of 1-128 letters, digits or '._:-'")
    else:
        job_id = new_job_id()

    max_retries = obj.get("max_retries", default_max_retries)
    if "max_retries" not in obj and max_retries is None:
        pass
    elif not _is_int(max_retries) or not 0 <= max_retries <= MAX_INT:
        raise InvalidInput(f"field 'max_retries' must be an integer from 0 to {MAX_INT}")

    priority = obj.get("priority", 0)
    if not _is_int(priority) or not -MAX_INT <= priority <= MAX_INT:
        raise InvalidInput(f"field 'priority' must be an integer from -{MAX_INT} to {MAX_INT}")

    run_at, delay = _when(obj)

    timeout = obj.get("timeout", default_timeout)
    if isinstance(timeout, str):
        timeout = _duration(timeout, "timeout")
    if "timeout" not in obj and timeout is None:
        pass
    elif not _is_number(timeout) or timeout < 0 or timeout > 10**9:
        raise InvalidInput("field 'timeout' must be a number of seconds from 0 to 1e9 "
                           "or a duration like '90s', '1h30m' (0 = no limit)")
    else:
        timeout = float(timeout)

    queue = obj.get("queue", DEFAULT_QUEUE)
    if queue is not DEFAULT_QUEUE and not valid_id(queue):
        raise InvalidInput("field 'queue' must be a string of 1-128 letters, digits or '._:-'")

    return NewJob(id=job_id, command=command, max_retries=max_retries,
                  priority=priority, run_at=run_at, delay=float(delay), timeout=timeout,
                  options=_options(obj), queue=queue, after=_after(obj, job_id))


def _command(obj: dict) -> str:
    """The payload's required `command`: a non-blank string without NULs, at most 64 KiB."""
    if "command" not in obj:
        raise InvalidInput("field 'command' is required")
    command = obj["command"]
    if not isinstance(command, str):
        raise InvalidInput(f"field 'command' must be a string, not {_json_type(command)}")
    if not command.strip():
        raise InvalidInput("field 'command' must not be blank")
    if "\x00" in command:
        raise InvalidInput("field 'command' must not contain NUL characters")
    if not command.isascii():        # (ASCII: one byte a character, no surrogates)
        size = _utf8_len(command, "command")
    else:
        size = len(command)
    if size > MAX_COMMAND_BYTES:
        raise InvalidInput(f"field 'command' is {size} bytes long; the limit is "
                           f"{MAX_COMMAND_BYTES} bytes (64 KiB)")
    return command


def _when(obj: dict) -> tuple[int | None, float]:
    """(run_at, delay) of a payload: at most one of them given."""
    if "run_at" in obj and "delay" in obj:
        raise InvalidInput("give either 'run_at' or 'delay', not both")
    run_at = None
    delay: float = 0.0
    if "run_at" in obj:
        raw = obj["run_at"]
        if not isinstance(raw, str):
            raise InvalidInput("field 'run_at' must be an ISO-8601 timestamp string")
        try:
            run_at = parse_iso(raw)
        except (ValueError, OverflowError, OSError):
            raise InvalidInput(
                f"field 'run_at' is not an ISO-8601 timestamp: {raw!r}") from None
    if "delay" in obj:
        delay = obj["delay"]
        if isinstance(delay, str):
            delay = _duration(delay, "delay")
        if not _is_number(delay) or delay < 0 or delay > 10**9:
            raise InvalidInput("field 'delay' must be a number of seconds from 0 to 1e9 "
                           "or a duration like '90s', '1h30m'")
    return run_at, delay


def _duration(text: str, field: str) -> float:
    """A payload's `delay`/`timeout` given as text: `90`, `15m`, `1h30m`..."""
    from queuectl.config import parse_duration
    return parse_duration(text, f"field {field!r}")


def _after(obj: dict, job_id: str) -> "list[str] | None":
    after = obj.get("after")
    if after is None:
        return None
    if not isinstance(after, list) or not all(valid_id(a) for a in after):
        raise InvalidInput("field 'after' must be a list of job ids")
    if len(after) > MAX_AFTER:
        raise InvalidInput(f"field 'after' lists {len(after)} jobs; the limit is {MAX_AFTER}")
    if job_id in after:
        raise InvalidInput("field 'after': a job cannot run after itself")
    return list(dict.fromkeys(after)) or None


def _utf8_len(text: str, field: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"field {field!r} is not valid Unicode (lone surrogate)") from None


def _options(obj: dict) -> dict:
    opts: dict[str, Any] = {}
    if obj.get("fatal_exit_codes") is not None:
        codes = obj["fatal_exit_codes"]
        if not isinstance(codes, list) or len(codes) > 256 or not all(
                _is_int(c) and 1 <= c <= 255 for c in codes):
            raise InvalidInput("field 'fatal_exit_codes' must be a list of exit codes "
                               "from 1 to 255")
        if codes:
            opts["fatal_exit_codes"] = sorted(set(codes))
    if obj.get("cwd") is not None:
        cwd = obj["cwd"]
        if not isinstance(cwd, str) or not cwd or "\x00" in cwd:
            raise InvalidInput("field 'cwd' must be a non-empty directory path")
        if _utf8_len(cwd, "cwd") > MAX_CWD_BYTES:
            raise InvalidInput(f"field 'cwd' is longer than {MAX_CWD_BYTES} bytes")
        opts["cwd"] = cwd
    if obj.get("env") is not None:
        env = obj["env"]
        if not isinstance(env, dict):
            raise InvalidInput("field 'env' must be an object of names to string values")
        if len(env) > MAX_ENV_VARS:
            raise InvalidInput(f"field 'env' has {len(env)} variables; the limit is "
                               f"{MAX_ENV_VARS}")
        size = 0
        for name, value in env.items():
            if not ENV_NAME_RE.fullmatch(name):
                raise InvalidInput(f"field 'env': {name!r} is not a valid variable name "
                                   "(letters, digits, '_'; not starting with a digit)")
            if not isinstance(value, str) or "\x00" in value:
                raise InvalidInput(f"field 'env': the value of {name} must be a string "
                                   "without NUL characters")
            size += len(name) + _utf8_len(value, "env") + 2
        if size > MAX_ENV_BYTES:
            raise InvalidInput(f"field 'env' is {size} bytes in all; the limit is "
                               f"{MAX_ENV_BYTES} bytes (64 KiB)")
        if env:
            opts["env"] = dict(env)
    return opts


def fill_defaults(jobs: "list[NewJob]", *, max_retries: int, timeout: float) -> None:
    """Give jobs validated without defaults the config's values."""
    for job in jobs:
        if job.max_retries is None:
            job.max_retries = max_retries
        if job.timeout is None:
            job.timeout = float(timeout)


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _no_duplicate_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidInput(f"duplicate field {key!r}")
            seen.add(key)
    return obj


_decoder: "json.JSONDecoder | None" = None


def decode_json(text: str) -> object:
    """json.loads that rejects duplicate keys and NaN/Infinity, raising InvalidInput."""
    global _decoder
    if _decoder is None:
        # One decoder for every line of a bulk enqueue (json.loads with hooks
        # would build a new one per call).
        _decoder = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys,
                                    parse_constant=_reject_constant)
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}" if "\n" in text else f"column {e.colno}"
        raise InvalidInput(f"invalid JSON: {e.msg} ({where})") from None
    except RecursionError:
        raise InvalidInput("invalid JSON: nested too deeply") from None
    except ValueError:
        # Python refuses to convert integers of over 4300 digits.
        raise InvalidInput("invalid JSON: a number with too many digits") from None


def _reject_constant(name: str):
    raise InvalidInput(f"invalid JSON: {name} is not allowed")


def parse_one(text: str, **defaults) -> NewJob:
    """The argument of `queuectl enqueue '<json>'`: exactly one object."""
    value = decode_json(text)
    if isinstance(value, list):
        raise InvalidInput("expected one JSON object; to enqueue a list use 'queuectl enqueue -'")
    return validate_payload(value, **defaults)


def parse_many(text: str, **defaults) -> list[NewJob]:
    """A JSON array or JSON Lines (blank lines ignored); errors name the item or line."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        value = decode_json(text)
        if not isinstance(value, list):
            raise InvalidInput("expected a JSON array or JSON Lines")
        items = [(f"item {n}", v) for n, v in enumerate(value, 1)]
    else:
        items = json_lines(text, max_line=MAX_LINE_CHARS)
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"{len(items)} jobs in one batch; the limit is {MAX_BATCH} "
                           "(one batch is one write transaction: split the input)")
    return validated(items, lambda value: validate_payload(value, **defaults))


def json_lines(text: str, max_line: "int | None" = None) -> list:
    """[("line N", decoded value)] of JSON Lines text; blank lines are skipped."""
    items = []
    decode_json("{}")                      # (makes the decoder)
    assert _decoder is not None
    raw_decode = _decoder.raw_decode
    # Only \n ends a line: JSON strings may hold U+2028 and friends raw.
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if max_line is not None and len(line) > max_line:
            raise InvalidInput(f"line {n} is {len(line)} characters long; the limit is "
                               f"{max_line} (no valid job is that long)")
        if not line.strip():
            continue
        # The fast path: a line that is exactly one JSON value (padded only
        # with JSON whitespace). Anything else goes through decode_json for
        # its precise error.
        body = line.strip(" \t\r")
        try:
            value, end = raw_decode(body)
            if end != len(body):
                raise ValueError
        except (ValueError, RecursionError, InvalidInput):
            try:
                value = decode_json(line.rstrip("\r"))
            except InvalidInput as e:
                raise InvalidInput(f"line {n}: {e}") from None
        items.append((f"line {n}", value))
    return items


def validated(items: list, validate) -> list:
    """validate(value) for each (where, value), naming `where` in errors and
    refusing an id given twice."""
    jobs = []
    seen: dict[str, str] = {}
    for where, value in items:
        try:
            job = validate(value)
        except InvalidInput as e:
            raise InvalidInput(f"{where}: {e}") from None
        if job.id in seen:
            raise InvalidInput(f"{where}: duplicate id {job.id!r} (also {seen[job.id]})")
        seen[job.id] = where
        jobs.append(job)
    position = {job.id: n for n, job in enumerate(jobs)}
    for n, job in enumerate(jobs):
        for dep in job.after or ():
            if position.get(dep, -1) > n:
                raise InvalidInput(
                    f"{items[n][0]}: field 'after': job {dep!r} comes later in this "
                    f"input ({seen[dep]}); a job can only run after an earlier one")
    return jobs


# ---------------------------------------------------------------- export / import

#: Fields of an exported job beyond what `enqueue` takes (`queuectl export`).
STATE_FIELDS = ("state", "attempts", "created_at", "updated_at", "started_at",
                "finished_at", "exit_code", "last_error", "worker_id",
                "lease_expires_at", "output", "output_truncated", "blocked")


def _opt_time(obj: dict, key: str) -> "int | None":
    raw = obj.get(key)
    if raw is None:
        return None
    try:
        return parse_iso(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"field {key!r} must be an ISO-8601 timestamp or null") from None


def _opt(obj: dict, key: str, check, what: str):
    value = obj.get(key)
    if value is not None and not check(value):
        raise InvalidInput(f"field {key!r} must be {what} or null")
    return value


def parse_exported(obj: object) -> Job:
    """One line of `queuectl export` back into a Job (for `queuectl import`).

    A job that was `processing` when exported comes back `pending`: no worker
    of the new database holds it.
    """
    if not isinstance(obj, dict):
        raise InvalidInput(f"a job must be a JSON object, not {_json_type(obj)}")
    base = {k: v for k, v in obj.items() if k not in STATE_FIELDS}
    if base.get("run_at") is None:
        base.pop("run_at", None)
    new = validate_payload(base, default_max_retries=0, default_timeout=0.0)
    if "id" not in obj:
        raise InvalidInput("field 'id' is required")
    state = obj.get("state", "pending")
    if state not in STATES:
        raise InvalidInput(f"field 'state' must be one of {', '.join(STATES)}")
    attempts = obj.get("attempts", 0)
    if not _is_int(attempts) or not 0 <= attempts <= MAX_INT:
        raise InvalidInput(f"field 'attempts' must be an integer from 0 to {MAX_INT}")
    created = _opt_time(obj, "created_at")
    updated = _opt_time(obj, "updated_at")
    started = _opt_time(obj, "started_at")
    finished = _opt_time(obj, "finished_at")
    exit_code = _opt(obj, "exit_code", lambda v: _is_int(v) and abs(v) <= MAX_INT,
                     f"an integer from -{MAX_INT} to {MAX_INT}")
    last_error = _opt(obj, "last_error", lambda v: isinstance(v, str), "a string")
    output = _opt(obj, "output", lambda v: isinstance(v, str), "a string")
    truncated = bool(_opt(obj, "output_truncated", lambda v: isinstance(v, bool),
                          "true or false"))
    if state == "processing":
        state = "pending"
    if state in TERMINAL:
        finished = finished or updated or created
    else:
        finished = None
    # Times left out (None) become the importing store's "now".
    return Job(new.id, new.command, state, attempts, new.max_retries, new.priority,
               new.run_at, new.timeout, created, updated, started, finished, exit_code,
               last_error, None, None, new.options, new.queue, False, output, truncated,
               new.after)
