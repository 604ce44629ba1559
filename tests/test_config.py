"""Configuration keys (queuectl/config.py): names, aliases, validation, rendering."""

from __future__ import annotations

import pytest

from queuectl import config
from queuectl.config import KEYS, canonical, defaults, parse_value, render
from queuectl.errors import InvalidInput


def test_keys_and_defaults():
    assert defaults() == {"max_retries": 3, "backoff_base": 2, "backoff_max": 3600,
                          "job_timeout": 0, "lease_timeout": 30, "claim_ahead": 7,
                          "completed_ttl": 0}
    d = defaults()
    d["max_retries"] = 99                        # a copy, not the table itself
    assert defaults()["max_retries"] == 3


@pytest.mark.parametrize("name,expected", [
    ("max_retries", "max_retries"),
    ("max-retries", "max_retries"),
    ("MAX_RETRIES", "max_retries"),
    ("Max-Retries", "max_retries"),
    ("  max_retries ", "max_retries"),
    ("backoff", "backoff_base"),
    ("BACKOFF", "backoff_base"),
    ("backoff_base", "backoff_base"),
    ("backoff-base", "backoff_base"),
    ("backoff-max", "backoff_max"),
    ("job-timeout", "job_timeout"),
    ("LEASE-TIMEOUT", "lease_timeout"),
])
def test_canonical_accepts_aliases_hyphens_and_case(name, expected):
    assert canonical(name) == expected


@pytest.mark.parametrize("name", ["retries", "max_retry", "backoffbase", "", "timeout",
                                  "max__retries", "backoff_", "workers_should_stop"])
def test_unknown_key_is_invalid_input_naming_it(name):
    with pytest.raises(InvalidInput) as exc:
        canonical(name)
    assert repr(name) in str(exc.value)
    assert exc.value.exit_code == 2
    assert all(k in str(exc.value) for k in KEYS)     # lists the valid keys


@pytest.mark.parametrize("key,raw,expected", [
    ("max_retries", "3", 3),
    ("max_retries", " 0 ", 0),
    ("max_retries", "+5", 5),
    ("max_retries", 4, 4),
    ("max_retries", 4.0, 4),            # a whole float from JSON is fine
    ("backoff_base", "2", 2),
    ("backoff_base", "1", 1),
    ("backoff_base", "1.5", 1.5),
    ("backoff_base", 2.5, 2.5),
    ("backoff_max", "0", 0),
    ("backoff_max", "0.25", 0.25),
    ("backoff_max", "1e3", 1000.0),
    ("job_timeout", "0", 0),
    ("job_timeout", "2.5", 2.5),
    ("lease_timeout", "1", 1),
    ("lease_timeout", "30", 30),
    ("lease_timeout", "1000000000", 10**9),
    ("job_timeout", "5s", 5),            # durations: every key counted in seconds
    ("job_timeout", "1h30m", 5400),
    ("lease_timeout", "2m", 120),
    ("backoff_max", "1w", 604800),
    ("completed_ttl", "1d12h", 129600),
    ("completed_ttl", "1.5h", 5400),
    ("claim_ahead", "64", 64),
])
def test_parse_value_accepts(key, raw, expected):
    value = parse_value(key, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("key,raw", [
    ("max_retries", "3.5"),
    ("max_retries", "3.0"),              # text that is not an integer, for an int key
    ("max_retries", "1e2"),
    ("max_retries", 2.5),
    ("max_retries", "-1"),
    ("max_retries", -1),
    ("max_retries", "abc"),
    ("max_retries", ""),
    ("max_retries", True),
    ("max_retries", None),
    ("backoff_base", "0.5"),             # minimum 1
    ("backoff_base", "0"),
    ("backoff_base", "-2"),
    ("backoff_base", "nan"),
    ("backoff_base", "inf"),
    ("backoff_base", "-inf"),
    ("backoff_base", "Infinity"),
    ("backoff_base", float("nan")),
    ("backoff_max", "-1"),
    ("backoff_max", "1e999"),
    ("backoff_max", "1000000001"),
    ("job_timeout", "-0.5"),
    ("job_timeout", "5x"),
    ("job_timeout", "1h1h"),
    ("lease_timeout", "0s"),             # durations keep the key's range
    ("claim_ahead", "65"),               # at most MAX_CLAIM_AHEAD (what workers use)
    ("max_retries", "2147483648"),       # as a job's own max_retries
    ("lease_timeout", "0"),              # minimum 1
    ("lease_timeout", "0.5"),
    ("lease_timeout", False),
    ("lease_timeout", "[30]"),
])
def test_parse_value_rejects(key, raw):
    with pytest.raises(InvalidInput) as exc:
        parse_value(key, raw)
    assert key in str(exc.value)
    assert exc.value.exit_code == 2


def test_every_key_enforces_its_minimum():
    for name, key in KEYS.items():
        assert parse_value(name, str(key.minimum)) == key.minimum
        with pytest.raises(InvalidInput):
            parse_value(name, str(key.minimum - 0.5 if key.kind == "number" else key.minimum - 1))


def test_every_default_is_itself_a_valid_value():
    for name, value in defaults().items():
        assert parse_value(name, value) == value
        assert parse_value(name, render(value)) == value


@pytest.mark.parametrize("value,text", [(2, "2"), (2.0, "2"), (0.5, "0.5"), (3600, "3600"),
                                        (0, "0"), (1.25, "1.25"), (1e9, "1000000000")])
def test_render(value, text):
    assert render(value) == text


def test_alias_table_points_at_real_keys():
    assert set(config.ALIASES.values()) <= set(KEYS)


@pytest.mark.parametrize("text,seconds", [
    ("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1w", 604800),
    ("1h30m", 5400), ("1d12h", 129600), ("1w2d3h4m5s", 788645), ("2m 30s", 150),
    ("1.5h", 5400), (".5m", 30), ("0.25", 0.25), (" 2H ", 7200), ("0", 0), ("1e3", 1000),
])
def test_parse_duration_takes_units_and_compounds(text, seconds):
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", " ", "h", "1", "1x", "1h1h", "30m1h", "1s30m", "1 h 30",
                                  "h1", "-1", "-1h", "nan", "inf", "1e400", "1.2.3s",
                                  "\u0663", "\u0663s", "1hour", "2w" * 3, "99999999999w"])
def test_parse_duration_refuses_anything_else_naming_what(text):
    if text == "1":
        return                                  # (a plain number of seconds is fine)
    with pytest.raises(InvalidInput) as exc:
        config.parse_duration(text, "--older-than")
    assert "--older-than" in str(exc.value)


def test_claim_ahead_maximum_is_what_workers_use():
    from queuectl import worker_batch
    assert config.MAX_CLAIM_AHEAD == worker_batch.MAX_AHEAD == KEYS["claim_ahead"].maximum


def test_unknown_key_gets_did_you_mean_when_close():
    with pytest.raises(InvalidInput, match=r"did you mean 'lease_timeout'\?"):
        canonical("lease_timout")
    with pytest.raises(InvalidInput) as exc:
        canonical("zzz")
    assert "did you mean" not in str(exc.value)
