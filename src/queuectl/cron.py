"""Recurring jobs: cron expressions and their fire times.

Parsing and evaluation are cronsim's (the `cron` extra); this module only
checks what a schedule may hold and turns fire times into epoch milliseconds.
Times are evaluated in UTC unless the schedule names a time zone (IANA name,
via zoneinfo), so "0 3 * * *" with Europe/Berlin fires at 03:00 Berlin time
on both sides of a DST change.
"""

from __future__ import annotations

from queuectl.errors import InvalidInput, QueueError
from queuectl.model import NewJob, valid_id
from queuectl.payload import decode_json, validate_payload

TYPE_CHECKING = False     # (not typing's: the store, and so `enqueue`, imports this module)
if TYPE_CHECKING:
    from datetime import tzinfo
    from types import ModuleType

MAX_NAME = 64           # a firing's job id is '<name>:<fire time>', at most 85 characters
ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
# Fields a schedule's job may not set: each firing gets its own id, runs when
# it fires, and has nothing to run after.
NOT_IN_SCHEDULE = ("id", "run_at", "after")


def _cronsim() -> ModuleType:
    try:
        import cronsim
    except ImportError:
        raise QueueError("cron schedules need cronsim (the cron extra): "
                         "pip install 'cronsim>=2.6'") from None
    return cronsim


def _zone(tz: str | None) -> tzinfo:
    from datetime import timezone
    if tz is None:
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown time zone {tz!r} (use an IANA name such as "
                           "Europe/Berlin)") from None


def expand(expr: str) -> str:
    """The expression as cronsim takes it (@daily and friends spelled out)."""
    return ALIASES.get(expr.strip().lower(), expr.strip())


def check_name(name: str) -> str:
    if not valid_id(name) or len(name) > MAX_NAME:
        raise InvalidInput(f"invalid schedule name {name!r}: 1-{MAX_NAME} letters, digits "
                           "or '._:-'")
    return name


def check(expr: str, tz: "str | None") -> None:
    """InvalidInput unless `expr` is a cron expression (5 fields, or 6 with a
    leading seconds field, or an @alias) that fires at least once."""
    text = expand(expr)
    if len(text.split()) not in (5, 6):
        raise InvalidInput(f"invalid cron expression {expr!r}: expected 5 fields "
                           "(minute hour day-of-month month day-of-week), or 6 with a "
                           "leading seconds field")
    next_after(expr, tz, 0)


def next_after(expr: str, tz: "str | None", after_ms: int) -> int:
    """Epoch ms of the first firing strictly after `after_ms`."""
    from datetime import datetime
    cronsim = _cronsim()
    zone = _zone(tz)
    start = datetime.fromtimestamp(after_ms / 1000, zone)
    try:
        fires = cronsim.CronSim(expand(expr), start)
        # Around a DST change a local wall time can come round twice; cronsim
        # may then offer one already past (in absolute time): skip those.
        for _ in range(10):
            at = round(next(fires).timestamp() * 1000)
            if at > after_ms:
                return at
    except cronsim.CronSimError as e:
        raise InvalidInput(f"invalid cron expression {expr!r}: {e}") from None
    except StopIteration:
        pass
    raise InvalidInput(f"cron expression {expr!r} never fires")


def check_job(text: str) -> str:
    """Validate a schedule's job payload; returns it as compact JSON."""
    import json
    obj = decode_json(text)
    if not isinstance(obj, dict):
        raise InvalidInput("a schedule's job must be a JSON object")
    for key in NOT_IN_SCHEDULE:
        if key in obj:
            why = {"id": "each firing gets the id '<name>:<fire time>'",
                   "run_at": "a firing runs when it fires; 'delay' is allowed",
                   "after": "a firing has no earlier job to wait for"}[key]
            raise InvalidInput(f"field {key!r} is not allowed in a schedule's job ({why})")
    from queuectl.model import FIELDS
    for key in obj:
        if key not in FIELDS:      # (the enqueue message would offer id, run_at, after)
            allowed = ", ".join(f for f in FIELDS if f not in NOT_IN_SCHEDULE)
            raise InvalidInput(f"unknown field {key!r} in a schedule's job (allowed: {allowed})")
    validate_payload(obj)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def firing_id(name: str, fire_ms: int) -> str:
    """The id of the job a firing enqueues: unique per schedule and fire time."""
    import time
    t = time.gmtime(fire_ms // 1000)
    return f"{name}:{time.strftime('%Y-%m-%dT%H:%M:%SZ', t)}"


def firing_job(job_json: str, job_id: str, cfg: dict) -> NewJob:
    """The NewJob a firing enqueues, with the config's defaults filled in."""
    import json
    obj = json.loads(job_json)
    obj["id"] = job_id
    return validate_payload(obj, default_max_retries=cfg["max_retries"],
                            default_timeout=float(cfg["job_timeout"]))

