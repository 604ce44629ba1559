"""Configuration keys: names, defaults, aliases and validation (pure).

Values live in the database (`config` table) as JSON text; anything not set
there has the default below.
"""

from __future__ import annotations

import math
import re

from queuectl.errors import InvalidInput

# The largest value of any key (seconds: ~31 years).
MAX_VALUE = 10**9
# claim_ahead: the most jobs a worker claims ahead. worker.MAX_AHEAD caps what it
# uses at this number; it is stated here (not imported: config is pure and
# imports no worker) and tests/test_config.py checks that the two agree.
MAX_CLAIM_AHEAD = 64


class Key:
    """One config key: its default, kind ("int", "number", or "duration": seconds,
    also written 90s/15m/2h/7d/1w/1h30m), range and meaning."""

    __slots__ = ("name", "default", "kind", "minimum", "maximum", "help")

    def __init__(self, name: str, default: float, kind: str, minimum: float, help: str,
                 maximum: float = MAX_VALUE):
        self.name, self.default, self.kind = name, default, kind
        self.minimum, self.maximum, self.help = minimum, maximum, help


KEYS = {k.name: k for k in (
    Key("max_retries", 3, "int", 0,
        "retries after the first attempt, copied into each job at enqueue",
        maximum=2**31 - 1),       # as a job's own max_retries
    Key("backoff_base", 2, "number", 1,
        "retry k waits backoff_base ** k seconds (plus up to 10% jitter)"),
    Key("backoff_max", 3600, "duration", 0,
        "upper bound of one backoff delay, in seconds"),
    Key("job_timeout", 0, "duration", 0,
        "default per-job timeout in seconds, copied at enqueue (0 = none)"),
    Key("lease_timeout", 30, "duration", 1,
        "seconds without a heartbeat after which a running job is rescued"),
    Key("claim_ahead", 7, "int", 0,
        "while jobs take under 20 ms, a worker reserves up to this many more "
        "with each claim and records them together (SQLite; 0 = one at a time)",
        maximum=MAX_CLAIM_AHEAD),
    Key("completed_ttl", 0, "duration", 0,
        "workers delete completed jobs (and their events) older than this; "
        "seconds or 30s/15m/2h/7d/1w (0 = keep them)"),
)}


_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)\s*([wdhms]))\s*", re.ASCII)


def parse_duration(text: object, what: str = "duration") -> float:
    """Seconds from `90`, `90s`, `15m`, `2h`, `7d`, `1w` or a compound like
    `1h30m` / `1d 12h` (units from the largest down, each at most once), or from
    a number of seconds. The one parser of durations: options, config keys and
    the payload's `delay` and `timeout` all come here."""
    t = str(text).strip().lower()
    try:
        value = float(t)
        if "n" in t or not t.isascii():     # nan, inf; digits of other scripts
            raise ValueError
    except ValueError:
        value = _compound(t, text, what)
    if not math.isfinite(value) or value < 0 or value > 10**10:
        raise InvalidInput(f"{what} must be from 0 to 10000000000 seconds, not {text!r}")
    return value


def _compound(t: str, text: object, what: str) -> float:
    pos, value, order = 0, 0.0, "wdhms"
    last = -1
    while pos < len(t):
        m = _DURATION_RE.match(t, pos)
        if m is None or order.index(m.group(2)) <= last:
            break
        last = order.index(m.group(2))
        value += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise InvalidInput(f"{what} must be like 90, 90s, 15m, 2h, 7d, 1w or 1h30m, "
                           f"not {text!r}")
    return value


ALIASES = {"backoff": "backoff_base"}


def canonical(name: str) -> str:
    """Map `max-retries`, `MAX_RETRIES`, `backoff` ... to the key's name."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in KEYS:
        raise InvalidInput(f"unknown config key {name!r}{did_you_mean(key, [*KEYS, *ALIASES])}"
                           f" (keys: {', '.join(KEYS)})")
    return key


def did_you_mean(word: str, choices: "list[str]") -> str:
    """' (did you mean 'x'?)' for the closest of `choices`, or '' if none is close."""
    import difflib
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_value(name: str, raw: object) -> int | float:
    """Validate a value for key `name` (given as text or a number); return int or float."""
    key = KEYS[name]
    value: object
    if isinstance(raw, bool):
        raise InvalidInput(f"{name} must be a number")
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                if key.kind != "duration":
                    raise InvalidInput(f"{name} must be a number, not {raw!r}") from None
                value = parse_duration(raw, name)
                value = int(value) if value.is_integer() else value
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
    if not key.minimum <= value <= key.maximum:
        raise InvalidInput(f"{name} must be from {key.minimum:g} to {key.maximum:.0f}, "
                           f"not {raw!r}")
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
