"""Payload validation and timestamps (queuectl/payload.py, queuectl/model.py, queuectl/clock.py): pure."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from queuectl.clock import iso, parse_iso
from queuectl.errors import InvalidInput
from queuectl.model import FIELDS, MAX_COMMAND_BYTES, NewJob, valid_id
from queuectl.payload import parse_many, parse_one, validate_payload

DEFAULTS = {"default_max_retries": 3, "default_timeout": 0.0}


def one(text: str) -> NewJob:
    return parse_one(text, **DEFAULTS)


def many(text: str) -> list[NewJob]:
    return parse_many(text, **DEFAULTS)


# ---------------------------------------------------------------- valid payloads

def test_minimal_payload_gets_defaults_and_a_generated_id():
    job = one('{"command": "echo hi"}')
    assert job.command == "echo hi"
    assert job.max_retries == 3 and job.priority == 0
    assert job.run_at is None and job.delay == 0.0 and job.timeout == 0.0
    assert valid_id(job.id)
    assert one('{"command": "true"}').id != job.id


def test_defaults_come_from_the_caller():
    job = parse_one('{"command": "x"}', default_max_retries=7, default_timeout=12.5)
    assert (job.max_retries, job.timeout) == (7, 12.5)


def test_full_payload():
    job = one(json.dumps({"id": "A.b_c:d-9", "command": "sleep 1", "max_retries": 0,
                          "priority": -5, "run_at": "2030-01-02T03:04:05.678Z",
                          "timeout": 2.5}))
    assert job.id == "A.b_c:d-9"
    assert (job.max_retries, job.priority, job.timeout) == (0, -5, 2.5)
    assert job.run_at == parse_iso("2030-01-02T03:04:05.678Z")
    job = one('{"command": "x", "delay": 1.5, "id": "' + "x" * 128 + '"}')
    assert job.delay == 1.5 and job.run_at is None and len(job.id) == 128


def test_integral_values_and_zero_are_accepted():
    job = one('{"command": "x", "max_retries": 0, "timeout": 0, "delay": 0, "priority": 0}')
    assert (job.max_retries, job.timeout, job.delay, job.priority) == (0, 0.0, 0.0, 0)
    assert isinstance(job.max_retries, int)


# ---------------------------------------------------------------- malformed payloads

MALFORMED = [
    # (payload text, field the message must name)
    ('{"command": "x", "foo": 1}', "foo"),
    ('{"command": "x", "Command": "y"}', "Command"),
    ('{}', "command"),
    ('{"id": "abc"}', "command"),
    ('{"command": ""}', "command"),
    ('{"command": "   \\t\\n"}', "command"),
    ('{"command": 5}', "command"),
    ('{"command": null}', "command"),
    ('{"command": ["ls", "-l"]}', "command"),
    ('{"command": {"sh": "ls"}}', "command"),
    ('{"command": true}', "command"),
    ('{"command": "echo a\\u0000b"}', "command"),
    ('{"command": "x", "id": "has space"}', "id"),
    ('{"command": "x", "id": "a/b"}', "id"),
    ('{"command": "x", "id": "caf\\u00e9"}', "id"),
    ('{"command": "x", "id": "new\\nline"}', "id"),
    ('{"command": "x", "id": "' + "x" * 129 + '"}', "id"),
    ('{"command": "x", "id": ""}', "id"),
    ('{"command": "x", "id": 12}', "id"),
    ('{"command": "x", "id": null}', "id"),
    ('{"command": "x", "max_retries": "3"}', "max_retries"),
    ('{"command": "x", "max_retries": 3.0}', "max_retries"),
    ('{"command": "x", "max_retries": 2.5}', "max_retries"),
    ('{"command": "x", "max_retries": true}', "max_retries"),
    ('{"command": "x", "max_retries": -1}', "max_retries"),
    ('{"command": "x", "max_retries": null}', "max_retries"),
    ('{"command": "x", "max_retries": 99999999999999999999}', "max_retries"),
    ('{"command": "x", "priority": 1.5}', "priority"),
    ('{"command": "x", "priority": 1.0}', "priority"),
    ('{"command": "x", "priority": true}', "priority"),
    ('{"command": "x", "priority": "1"}', "priority"),
    ('{"command": "x", "run_at": "2030-01-01T00:00:00Z", "delay": 5}', "run_at"),
    ('{"command": "x", "run_at": "2030-01-01T00:00:00Z", "delay": 5}', "delay"),
    ('{"command": "x", "run_at": "tomorrow"}', "run_at"),
    ('{"command": "x", "run_at": "2030-13-01T00:00:00Z"}', "run_at"),
    ('{"command": "x", "run_at": ""}', "run_at"),
    ('{"command": "x", "run_at": 1700000000}', "run_at"),
    ('{"command": "x", "run_at": null}', "run_at"),
    ('{"command": "x", "delay": -1}', "delay"),
    ('{"command": "x", "delay": "5 minutes"}', "delay"),
    ('{"command": "x", "delay": false}', "delay"),
    ('{"command": "x", "delay": 1e400}', "delay"),
    ('{"command": "x", "timeout": -0.5}', "timeout"),
    ('{"command": "x", "timeout": "ten"}', "timeout"),
    ('{"command": "x", "timeout": true}', "timeout"),
    ('{"command": "x", "timeout": 1e400}', "timeout"),
    ('{"command": "x", "command": "y"}', "command"),          # duplicate key
    ('{"id": "a", "command": "x", "id": "b"}', "id"),         # duplicate key
]


@pytest.mark.parametrize("text,field", MALFORMED)
def test_malformed_payload_is_rejected_naming_the_field(text, field):
    with pytest.raises(InvalidInput) as exc:
        one(text)
    assert field in str(exc.value), str(exc.value)
    assert exc.value.exit_code == 2


def test_there_are_at_least_twenty_malformed_payloads():
    assert len({t for t, _ in MALFORMED}) >= 20


def test_unknown_field_message_lists_the_allowed_fields():
    with pytest.raises(InvalidInput) as exc:
        one('{"command": "x", "retries": 3}')
    msg = str(exc.value)
    assert "retries" in msg
    assert all(f in msg for f in FIELDS)


def test_overlong_command_is_rejected():
    with pytest.raises(InvalidInput, match="command"):
        one(json.dumps({"command": "x" * (MAX_COMMAND_BYTES + 1)}))
    assert one(json.dumps({"command": "x" * MAX_COMMAND_BYTES})).command


@pytest.mark.parametrize("text,word", [
    ('{"command": "x", "delay": NaN}', "NaN"),
    ('{"command": "x", "timeout": Infinity}', "Infinity"),
    ('{"command": "x", "priority": -Infinity}', "Infinity"),
])
def test_nan_and_infinity_literals_are_rejected(text, word):
    with pytest.raises(InvalidInput) as exc:
        one(text)
    assert word in str(exc.value)


@pytest.mark.parametrize("field", ["delay", "timeout"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_in_a_decoded_object_name_the_field(field, value):
    with pytest.raises(InvalidInput, match=field):
        validate_payload({"command": "x", field: value}, **DEFAULTS)


@pytest.mark.parametrize("text", ['"echo hi"', "5", "null", "true", '"{}"'])
def test_non_object_json_is_rejected(text):
    with pytest.raises(InvalidInput, match="JSON object"):
        one(text)


@pytest.mark.parametrize("text", ["", "   ", "{", '{"command": "x",}', "{'command': 'x'}",
                                  '{"command": "x"} {"command": "y"}', "nope"])
def test_invalid_json_is_rejected(text):
    with pytest.raises(InvalidInput, match="JSON"):
        one(text)


def test_deeply_nested_json_is_rejected_cleanly():
    with pytest.raises(InvalidInput):
        one('{"command": ' + "[" * 100000 + "]" * 100000 + "}")


def test_command_with_a_lone_surrogate_is_rejected_naming_the_field():
    # Valid JSON escape syntax, but not encodable text: no shell, no UTF-8 database
    # can take it, so it must be refused here as invalid input (exit 2).
    with pytest.raises(InvalidInput, match="command"):
        one('{"command": "echo \\ud800"}')


def test_parse_one_rejects_a_list_with_a_hint_about_enqueue_dash():
    with pytest.raises(InvalidInput) as exc:
        one('[{"command": "x"}]')
    assert "enqueue -" in str(exc.value)


# ---------------------------------------------------------------- parse_many

def test_json_lines_with_blank_lines_ignored():
    jobs = many('{"command": "a", "id": "1"}\n\n   \n{"command": "b", "id": "2"}\r\n'
                '{"command": "c", "id": "3"}')
    assert [(j.id, j.command) for j in jobs] == [("1", "a"), ("2", "b"), ("3", "c")]


def test_json_array():
    jobs = many('  [{"command": "a", "id": "1"},\n {"command": "b", "priority": 2}]\n')
    assert [j.command for j in jobs] == ["a", "b"]
    assert jobs[1].priority == 2
    assert many("[]") == []


def test_json_lines_error_names_the_physical_line():
    text = '{"command": "a"}\n\n{"command": "b"}\n{"command": "c", "max_retries": "x"}\n'
    with pytest.raises(InvalidInput) as exc:
        many(text)
    msg = str(exc.value)
    assert msg.startswith("line 4:") and "max_retries" in msg


def test_json_lines_invalid_json_names_the_line():
    with pytest.raises(InvalidInput, match=r"^line 2: invalid JSON"):
        many('{"command": "a"}\n{"command": \n')


def test_array_error_names_the_item():
    with pytest.raises(InvalidInput) as exc:
        many('[{"command": "a"}, {"command": "b"}, {"command": "c", "bogus": 1}]')
    assert str(exc.value).startswith("item 3:") and "bogus" in str(exc.value)
    with pytest.raises(InvalidInput, match=r"^item 2: .*JSON object"):
        many('[{"command": "a"}, 7]')


def test_duplicate_ids_inside_a_batch_are_rejected_naming_both():
    with pytest.raises(InvalidInput) as exc:
        many('{"command": "a", "id": "j1"}\n{"command": "b", "id": "j2"}\n'
             '{"command": "c", "id": "j1"}\n')
    msg = str(exc.value)
    assert msg.startswith("line 3:") and "j1" in msg and "line 1" in msg
    with pytest.raises(InvalidInput) as exc:
        many('[{"command": "a", "id": "j1"}, {"command": "b", "id": "j1"}]')
    assert str(exc.value).startswith("item 2:") and "item 1" in str(exc.value)


def test_json_lines_with_a_nested_list_line_is_an_item_error():
    with pytest.raises(InvalidInput, match=r"^line 2: .*JSON object"):
        many('{"command": "a"}\n[{"command": "b"}]\n')


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85"])
def test_json_lines_split_only_on_newlines(sep):
    # U+2028, U+2029 and U+0085 may appear unescaped inside a JSON string
    # (json.dumps(..., ensure_ascii=False) writes them raw); they are data,
    # not line breaks.
    line = json.dumps({"id": "u", "command": f"echo a{sep}b"}, ensure_ascii=False)
    assert sep in line
    jobs = many(line + "\n" + json.dumps({"command": "second"}) + "\n")
    assert [j.command for j in jobs] == [f"echo a{sep}b", "second"]


# ---------------------------------------------------------------- timestamps

@pytest.mark.parametrize("ms", [0, 1, 999, 1_700_000_000_000, 1_700_000_000_123,
                                1_709_210_096_789, 4_102_444_800_000, -1, -86_400_001,
                                253_402_300_799_999])
def test_iso_round_trips(ms):
    text = iso(ms)
    assert text.endswith("Z") and len(text) == 24, text
    assert parse_iso(text) == ms


def test_iso_format():
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert iso(None) is None


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00.000Z", "0999-12-31T23:59:59.999Z",
                                  "1000-01-01T00:00:00.000Z"])
def test_iso_of_early_years_is_still_iso_8601(text):
    # parse_iso (and so enqueue's run_at) accepts any year; iso() must render
    # it back as a four-digit ISO-8601 year.
    assert iso(parse_iso(text)) == text


@pytest.mark.parametrize("text,expected", [
    ("2024-03-01T12:00:00Z", "2024-03-01T12:00:00.000Z"),
    ("2024-03-01T12:00:00z", "2024-03-01T12:00:00.000Z"),
    ("2024-03-01T12:00:00.5Z", "2024-03-01T12:00:00.500Z"),
    ("2024-03-01T12:00:00+00:00", "2024-03-01T12:00:00.000Z"),
    ("2024-03-01T14:30:00+02:30", "2024-03-01T12:00:00.000Z"),
    ("2024-03-01T07:00:00-05:00", "2024-03-01T12:00:00.000Z"),
    ("2024-03-01T12:00:00", "2024-03-01T12:00:00.000Z"),          # naive = UTC
    ("2024-03-01 12:00:00.250", "2024-03-01T12:00:00.250Z"),
    ("  2024-03-01T12:00:00Z  ", "2024-03-01T12:00:00.000Z"),
])
def test_parse_iso_honours_z_and_offsets_and_takes_naive_as_utc(text, expected):
    assert iso(parse_iso(text)) == expected


def test_parse_iso_matches_datetime():
    dt = datetime(2031, 7, 4, 5, 6, 7, 890000, tzinfo=timezone.utc)
    assert parse_iso("2031-07-04T05:06:07.890Z") == int(dt.timestamp() * 1000)


@pytest.mark.parametrize("text", ["", "   ", "tomorrow", "2024-02-30T00:00:00Z",
                                  "2024-01-01T25:00:00Z", "2024-01-01T00:00:00+25:00",
                                  "12:00"])
def test_parse_iso_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_iso(text)


def test_to_dict_renders_times_as_iso():
    from queuectl.model import Job
    j = Job(id="a", command="x", state="pending", attempts=0, max_retries=3, priority=0,
            run_at=1_700_000_000_000, timeout=5.0, created_at=0, updated_at=1)
    d = j.to_dict(with_output=True)
    assert d["run_at"] == "2023-11-14T22:13:20.000Z"
    assert d["created_at"] == "1970-01-01T00:00:00.000Z"
    assert d["started_at"] is None and d["finished_at"] is None
    assert d["timeout"] == 5 and isinstance(d["timeout"], int)
    assert d["output"] == "" and d["output_truncated"] is False


def test_exported_run_settings_come_back_on_import():
    from queuectl.model import Job
    from queuectl.payload import parse_exported
    opts = {"fatal_exit_codes": [2], "cwd": "/srv", "env": {"A": "b"}}
    job = Job("x", "true", "dead", 1, 0, 0, 1_700_000_000_000, 0.0, 1_700_000_000_000,
              1_700_000_000_000, finished_at=1_700_000_000_000, options=opts)
    back = parse_exported(job.to_dict(with_output=True))
    assert back.options == opts and back.state == "dead"
    plain = Job("y", "true", "pending", 0, 0, 0, 1, 0.0, 1, 1)
    assert parse_exported(plain.to_dict(with_output=True)).options is None


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200),
                                          ("7d", 604800), ("1w", 604800), ("1h30m", 5400)])
def test_delay_and_timeout_take_duration_strings(text, seconds):
    job = parse_one(json.dumps({"command": "x", "delay": text, "timeout": text}))
    assert (job.delay, job.timeout) == (seconds, seconds)


def test_unknown_field_gets_did_you_mean_when_close():
    with pytest.raises(InvalidInput, match=r"unknown field 'max_retry'; did you mean "
                                           r"'max_retries'\?"):
        parse_one('{"command": "x", "max_retry": 1}')
