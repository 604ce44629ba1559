"""Time as the rest of queuectl sees it: integer milliseconds since the epoch (UTC).

The store and the retry/lease logic take a clock instead of calling `time`
directly, so tests drive them with `FakeClock` and never sleep.
"""

import time


class SystemClock:
    """Wall-clock time in integer milliseconds."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        """This process's monotonic time (no wall-clock steps): for judging
        how long something has gone unchanged (the SQLite lease rescue)."""
        return time.monotonic_ns() // 1_000_000

    def monotonic(self) -> float:
        """Monotonic seconds: the worker's timers, leases it renews, stop bursts."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start_ms: int = 1_700_000_000_000):
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000

    def sleep(self, seconds: float) -> None:
        """Sleeping only moves the clock."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


def iso(ms: "int | None") -> "str | None":
    """ISO-8601 UTC with millisecond precision and a `Z`, or None."""
    if ms is None:
        return None
    secs, milli = divmod(int(ms), 1000)
    t = time.gmtime(secs)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{milli:03d}Z")


def parse_iso(text: str) -> int:
    """Parse an ISO-8601 timestamp into epoch milliseconds.

    A trailing `Z` or an offset is honoured; a timestamp without one is taken
    as UTC. Raises ValueError on anything else.
    """
    from datetime import datetime, timezone
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty timestamp")
    s = text.strip()
    if s[-1] in "zZ":
        s = s[:-1] + "+00:00"
    # Python 3.10's fromisoformat takes only 3 or 6 fraction digits: pad to 6.
    import re
    m = re.search(r"[T ]\d\d:\d\d:\d\d[.,](\d+)", s)
    if m:
        s = s[:m.start(1)] + (m.group(1) + "000000")[:6] + s[m.end(1):]
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)
