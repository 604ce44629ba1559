"""Configuration keys: names, defaults, aliases and validation (pure).

Values live in the database (`config` table) as JSON text; anything not set
there has the default below.
"""

from __future__ import annotations

import math

from queuectl.errors import InvalidInput


class Key:
    """One config key: its default, kind ("int" or "number"), minimum, meaning."""

    __slots__ = ("name", "default", "kind", "minimum", "help")

    def __init__(self, name: str, default: float, kind: str, minimum: float, help: str):
        self.name, self.default, self.kind = name, default, kind
        self.minimum, self.help = minimum, help


KEYS = {k.name: k for k in (
    Key("max_retries", 3, "int", 0,
        "retries after the first attempt, copied into each job at enqueue"),
    Key("backoff_base", 2, "number", 1,
        "retry k waits backoff_base ** k seconds (plus up to 10% jitter)"),
    Key("backoff_max", 3600, "number", 0,
        "upper bound of one backoff delay, in seconds"),
    Key("job_timeout", 0, "number", 0,
        "default per-job timeout in seconds, copied at enqueue (0 = none)"),
    Key("lease_timeout", 30, "number", 1,
        "seconds without a heartbeat after which a running job is rescued"),
    Key("claim_ahead", 7, "int", 0,
        "while jobs take under 20 ms, a worker claims up to this many more at "
        "once and records them together (SQLite; 0 = one at a time)"),
    Key("completed_ttl", 0, "duration", 0,
        "workers delete completed jobs (and their events) older than this; "
        "seconds or 30s/15m/2h/7d (0 = keep them)"),
)}


def parse_duration(text: str, what: str = "duration") -> float:
    """`30s`, `15m`, `2h`, `7d` or a plain number of seconds -> seconds."""
    t = str(text).strip().lower()
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(t[-1:], None)
    number = t[:-1] if unit else t
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise InvalidInput(f"{what} must be like 30s, 15m, 2h or 7d, not {text!r}") from None
    if not math.isfinite(value) or value < 0 or value > 10**10:
        raise InvalidInput(f"{what} must be from 0 to 10000000000 seconds, not {text!r}")
    return value

ALIASES = {"backoff": "backoff_base"}


def canonical(name: str) -> str:
    """Map `max-retries`, `MAX_RETRIES`, `backoff` ... to the key's name."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in KEYS:
        raise InvalidInput(f"unknown config key {name!r} (keys: {', '.join(KEYS)})")
    return key


def parse_value(name: str, raw: object) -> int | float:
    """Validate a value for key `name` (given as text or a number); return int or float."""
    key = KEYS[name]
    value: object
    if isinstance(raw, bool):
        raise InvalidInput(f"{name} must be a number")
    if key.kind == "duration" and isinstance(raw, str):
        value = parse_duration(raw, name)
        return int(value) if float(value).is_integer() else value
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise InvalidInput(f"{name} must be a number, not {raw!r}") from None
    else:
        value = raw
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number")
        if key.kind == "int":
            if not value.is_integer() or (isinstance(raw, str) and not _intlike(raw)):
                raise InvalidInput(f"{name} must be a whole number, not {raw!r}")
            value = int(value)
    if not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number")
    if value < key.minimum:
        raise InvalidInput(f"{name} must be >= {key.minimum:g}")
    if value > 10**9:
        raise InvalidInput(f"{name} must be <= 1000000000")
    return value


def _intlike(text: str) -> bool:
    try:
        int(text.strip())
        return True
    except ValueError:
        return False


def defaults() -> dict:
    return {name: key.default for name, key in KEYS.items()}


def render(value: float) -> str:
    """How `config get` prints a value: 2.0 -> 2, 0.5 -> 0.5."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
