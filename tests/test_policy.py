"""The retry policy (queuectl/policy.py): pure functions, randomness injected."""

from __future__ import annotations

import math
import random

import pytest

from queuectl import policy
from queuectl.policy import BURY, COMPLETE, Decision, backoff, decide
from queuectl.runner import Outcome

CFG = {"max_retries": 3, "backoff_base": 2, "backoff_max": 3600, "job_timeout": 0,
       "lease_timeout": 30}

ZERO = lambda: 0.0          # noqa: E731  no jitter
TOP = lambda: 0.999999      # noqa: E731  (almost) the largest jitter random() can give

FAILURES = [
    Outcome("exit", 1, "exit code 1"),
    Outcome("exit", 127, "exit code 127: sh: 1: foo: not found"),
    Outcome("signal", None, "killed by signal 9 (SIGKILL)"),
    Outcome("timeout", None, "timed out after 1s"),
    Outcome("start_failed", None, "could not start: boom"),
    Outcome("lease_expired", None, "lease expired"),
]


@pytest.mark.parametrize("k,base,cap,expected", [
    (1, 2, 3600, 2.0),
    (2, 2, 3600, 4.0),
    (3, 2, 3600, 8.0),
    (10, 2, 3600, 1024.0),
    (12, 2, 3600, 3600.0),          # 4096 capped
    (3, 1.5, 3600, 3.375),
    (5, 1, 3600, 1.0),
    (4, 3, 50, 50.0),
    (1, 10, 5, 5.0),
    (3, 2, 0, 0.0),
])
def test_backoff_is_min_of_power_and_cap_without_jitter(k, base, cap, expected):
    assert backoff(k, base, cap, rand=ZERO) == pytest.approx(expected)


@pytest.mark.parametrize("k,base,cap", [(1, 2, 3600), (3, 2, 3600), (7, 3, 100), (20, 2, 3600)])
def test_jitter_is_up_to_ten_percent_on_top(k, base, cap):
    formula = min(base ** k, cap)
    assert backoff(k, base, cap, rand=ZERO) == pytest.approx(formula)
    assert backoff(k, base, cap, rand=lambda: 0.5) == pytest.approx(formula * 1.05)
    top = backoff(k, base, cap, rand=TOP)
    assert formula < top <= formula * 1.10 + 1e-9


def test_jitter_with_the_real_random_stays_in_range():
    rng = random.Random(1234)
    seen = []
    for k in range(1, 15):
        formula = min(2.0 ** k, 3600.0)
        for _ in range(50):
            d = backoff(k, 2, 3600, rand=rng.random)
            assert formula <= d <= formula * 1.10 + 1e-9, (k, d)
            seen.append(d / formula - 1)
    # It is really random: the spread covers most of [0, 10%].
    assert min(seen) < 0.01 and max(seen) > 0.09
    # The default `rand` is random.random and obeys the same bounds.
    for _ in range(200):
        assert 8.0 <= backoff(3, 2, 3600) <= 8.8 + 1e-9


@pytest.mark.parametrize("k", [1000, 10**6, 10**9, 10**400])
def test_backoff_is_overflow_safe_for_huge_attempts(k):
    d = backoff(k, 2, 3600, rand=ZERO)
    assert d == 3600.0
    assert math.isfinite(backoff(k, 10, 3600, rand=TOP))
    assert 3600.0 <= backoff(k, 10, 3600, rand=TOP) <= 3960.0 + 1e-9


def test_success_completes():
    ok = Outcome("succeeded", 0)
    assert decide(ok, 1, 3, CFG) == COMPLETE
    assert decide(ok, 99, 0, CFG) == COMPLETE          # even past max_retries
    assert COMPLETE.action == "complete"


@pytest.mark.parametrize("outcome", FAILURES, ids=[o.kind for o in FAILURES])
@pytest.mark.parametrize("attempts,max_retries", [(1, 1), (1, 3), (2, 3), (3, 3), (5, 10)])
def test_failure_within_max_retries_retries_after_the_backoff(outcome, attempts, max_retries):
    d = decide(outcome, attempts, max_retries, CFG, rand=ZERO)
    assert d == Decision("retry", float(2 ** attempts))
    d = decide(outcome, attempts, max_retries, CFG, rand=lambda: 0.5)
    assert d.action == "retry" and d.delay == pytest.approx(2 ** attempts * 1.05)


@pytest.mark.parametrize("outcome", FAILURES, ids=[o.kind for o in FAILURES])
@pytest.mark.parametrize("attempts,max_retries", [(1, 0), (2, 1), (4, 3), (9, 3)])
def test_failure_past_max_retries_buries(outcome, attempts, max_retries):
    assert decide(outcome, attempts, max_retries, CFG, rand=ZERO) == BURY
    assert BURY.action == "bury"


def test_decide_uses_the_configured_base_and_cap():
    cfg = {**CFG, "backoff_base": 3, "backoff_max": 20}
    fail = FAILURES[0]
    assert decide(fail, 1, 5, cfg, rand=ZERO).delay == 3
    assert decide(fail, 2, 5, cfg, rand=ZERO).delay == 9
    assert decide(fail, 3, 5, cfg, rand=ZERO).delay == 20


@pytest.mark.parametrize("max_retries", [0, 1, 3, 7])
def test_always_failing_job_runs_max_retries_plus_one_times(max_retries):
    """Simulate the worker loop: claim (attempts + 1), run (fails), decide."""
    attempts, runs, delays = 0, 0, []
    while runs < 100:
        attempts += 1          # the claim counts the attempt
        runs += 1
        d = decide(Outcome("exit", 1, "exit code 1"), attempts, max_retries, CFG, rand=ZERO)
        if d.action == "bury":
            break
        assert d.action == "retry"
        delays.append(d.delay)
    assert runs == max_retries + 1
    assert delays == [float(2 ** k) for k in range(1, max_retries + 1)]


@pytest.mark.parametrize("attempts,max_retries", [(1, 3), (4, 3), (50, 0)])
def test_interrupted_attempt_is_retried_at_once(attempts, max_retries):
    out = Outcome("interrupted", None, "interrupted: worker was stopped")
    assert decide(out, attempts, max_retries, CFG, rand=TOP) == Decision("retry", 0.0)


def test_decisions_are_plain_values():
    assert Decision("retry", 2.0) == Decision("retry", 2.0)
    assert policy.JITTER == pytest.approx(0.10)
    with pytest.raises(Exception):
        COMPLETE.action = "bury"   # frozen


def test_a_fatal_exit_code_buries_at_once_whatever_the_retries_left():
    from queuectl.policy import BURY, decide
    from queuectl.runner import Outcome
    cfg = {"backoff_base": 2, "backoff_max": 3600}
    assert decide(Outcome("exit", 2, "exit code 2"), 1, 5, cfg, fatal=(2,)) == BURY
    assert decide(Outcome("exit", 3, "exit code 3"), 1, 5, cfg, fatal=(2,)).action == "retry"
    # Only an exit code counts: a timeout or a signal is never "fatal".
    assert decide(Outcome("timeout", None, "timed out"), 1, 5, cfg, fatal=(2,)).action == "retry"
    assert decide(Outcome("succeeded", 0), 1, 5, cfg, fatal=(0, 2)).action == "complete"
