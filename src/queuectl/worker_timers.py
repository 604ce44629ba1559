"""Named periodic tasks for the worker, on its clock.

No thread: the worker runs the due ones from housekeeping(), between jobs and
from the runner's tick() while a job runs, so a task never competes with the
runner's output reading or timeout enforcement (each is one short store call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Timers:
    """Tasks by name, each due at a monotonic time. A task runs as
    `task(now)` and returns the seconds until it is due again; due tasks run
    in the order they were added, so one may make a later one due at once."""

    def __init__(self, clock):
        self.clock = clock
        self._at: "dict[str, float]" = {}
        self._tasks: "list[tuple[str, Callable[[float], float]]]" = []

    def add(self, name: str, task: "Callable[[float], float]", first: float = 0.0) -> None:
        """Add `task`, first due `first` seconds from now."""
        self._tasks.append((name, task))
        self._at[name] = self.clock.monotonic() + first

    def due(self, now: float) -> bool:
        return now >= min(self._at.values())

    def run_due(self, now: float) -> None:
        for name, task in self._tasks:
            if now >= self._at[name]:
                self._at[name] = now + task(now)

    def at(self, name: str) -> float:
        return self._at[name]

    def set(self, name: str, when: float) -> None:
        """Make `name` due at `when` (0: at the next look)."""
        self._at[name] = when

    def by(self, name: str, when: float) -> None:
        """Make `name` due no later than `when`."""
        self._at[name] = min(self._at[name], when)

    def postpone(self, now: float, seconds: float) -> None:
        """Nothing runs before `now + seconds` (after a database error)."""
        for name in self._at:
            self._at[name] = max(self._at[name], now + seconds)

    def until(self, now: float, names: "Iterable[str]") -> float:
        """Seconds until the first of `names` is due (at least 1 ms)."""
        return max(0.001, min(self._at[n] for n in names) - now)
