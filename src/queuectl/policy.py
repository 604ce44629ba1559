"""The retry policy, pure: an attempt's outcome + the job + config -> one decision.

Nothing here touches the database, a process or the clock; the worker applies
the decision through exactly one store call.
"""

from __future__ import annotations

import random

from queuectl.model import Action, Decision, Outcome, OutcomeKind

JITTER = 0.10  # up to +10%, never below the formula

COMPLETE = Decision(Action.COMPLETE)
BURY = Decision(Action.BURY)


def backoff(attempt: int, base: float, cap: float, rand=random.random) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based).

    min(base ** attempt, cap), plus up to 10% random jitter on top.
    """
    try:
        delay = float(base) ** attempt
    except OverflowError:
        delay = float("inf")
    delay = min(delay, float(cap))
    return delay + delay * JITTER * rand()


def decide(outcome: Outcome, attempts: int, max_retries: int, cfg: dict,
           rand=random.random, fatal=()) -> Decision:
    """What to do with a job whose attempt number `attempts` ended with `outcome`.
    An exit code listed in `fatal` (the job's fatal_exit_codes) buries at once."""
    if outcome.ok:
        return COMPLETE
    if outcome.kind == OutcomeKind.EXIT and outcome.exit_code in fatal:
        return BURY
    if outcome.kind == OutcomeKind.INTERRUPTED:
        # The worker itself was stopped (second Ctrl+C): hand the job back for
        # an immediate retry; a user's interruption never buries a job.
        return Decision(Action.RETRY, 0.0)
    if attempts > max_retries:
        return BURY
    return Decision(Action.RETRY, backoff(attempts, cfg["backoff_base"], cfg["backoff_max"], rand))
