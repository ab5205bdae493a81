import base64
import datetime as dt
import json
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkins.domain.queries import CheckinQuery, Position
from checkins.entrypoints.http_params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ParameterError,
    _checksum,
    decode_cursor,
    encode_cursor,
    parse_checkin_query,
    parse_date,
    parse_limit,
    parse_project,
    show,
    single_value,
)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
POSITION = Position(dt.datetime(2018, 11, 26, 14, 47, 36, 42900, tzinfo=dt.UTC), 7)
# The query whose pages the cursors of these tests come from.
QUERY = CheckinQuery(user="alice")


def test_parse_date_reads_iso_day():
    assert parse_date("from", "2018-11-26") == dt.date(2018, 11, 26)


@pytest.mark.parametrize(
    "text",
    [
        "2018-13-01",
        "2018-02-30",
        "20181126",
        "2018-W48-1",
        "2018-11-26T00:00:00",
        "18-11-26",
        " 2018-11-26",
        "２０１８-１１-２６",
        "",
    ],
)
def test_parse_date_rejects_other_forms(text):
    with pytest.raises(ParameterError) as raised:
        parse_date("to", text)

    assert raised.value.name == "to"
    assert str(raised.value) == (
        f"invalid query parameter to={text!r}: "
        "expected a date as YYYY-MM-DD from 1900 to 2999, such as 2018-11-26"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("100", 100), ("1000", 1000), ("+5", 5), ("0007", 7)],
)
def test_parse_limit_accepts_range(text, expected):
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["0", "-0", "-5", "-" + "9" * 5000])
def test_parse_limit_rejects_below_one(text):
    with pytest.raises(ParameterError) as raised:
        parse_limit(text)

    assert raised.value.name == "limit"
    assert str(raised.value).endswith(": expected at least 1")


@pytest.mark.parametrize("text", ["1001", "99999", "9" * 5000])
def test_parse_limit_rejects_above_maximum(text):
    with pytest.raises(ParameterError) as raised:
        parse_limit(text)

    assert raised.value.name == "limit"
    assert str(raised.value).endswith(f": expected at most {MAX_LIMIT}")


@pytest.mark.parametrize("text", ["", "ten", "1.5", "1e3", "1_0", " 5", "٥", "--5"])
def test_parse_limit_rejects_non_integers(text):
    with pytest.raises(ParameterError) as raised:
        parse_limit(text)

    assert str(raised.value) == (
        f"invalid query parameter limit={text!r}: expected an integer from 1 to 1000"
    )


def test_parse_project_trims_and_lowercases():
    assert parse_project("  Blog\tIdeas ") == "blog ideas"


@pytest.mark.parametrize("text", ["", "   ", "a\x00b"])
def test_parse_project_rejects_unusable_names(text):
    with pytest.raises(ParameterError) as raised:
        parse_project(text)

    assert raised.value.name == "project"


def test_single_value_rejects_repeats():
    with pytest.raises(ParameterError) as raised:
        single_value({"limit": ["1", "2"]}, "limit")

    assert raised.value.name == "limit"
    assert str(raised.value) == (
        "query parameter limit is given 2 times; expected it at most once"
    )


def test_single_value_returns_none_when_absent():
    assert single_value({}, "limit") is None


def test_show_cuts_long_values():
    assert show("x" * 200) == repr("x" * 80 + "...")


def test_checkin_query_uses_defaults():
    assert parse_checkin_query(" Alice ", {}) == CheckinQuery(
        user="alice", limit=DEFAULT_LIMIT
    )


def test_checkin_query_reads_every_parameter():
    expected = CheckinQuery(
        user="alice",
        first_day=dt.date(2018, 11, 26),
        last_day=dt.date(2018, 11, 27),
        project="hiring",
        limit=3,
        after=POSITION,
    )
    params = {
        "from": "2018-11-26",
        "to": "2018-11-27",
        "project": "Hiring",
        "limit": "3",
        "cursor": encode_cursor(POSITION, expected),
        "unknown": ["ignored", "twice"],
    }

    assert parse_checkin_query("alice", params) == expected


def test_checkin_query_takes_cursor_with_another_limit():
    params = {"limit": "7", "cursor": encode_cursor(POSITION, QUERY)}

    assert parse_checkin_query("Alice", params) == CheckinQuery(
        user="alice", limit=7, after=POSITION
    )


@pytest.mark.parametrize(
    ("user", "params"),
    [
        ("bob", {}),
        ("alice", {"from": "2018-11-26"}),
        ("alice", {"to": "2018-11-27"}),
        ("alice", {"project": "hiring"}),
    ],
)
def test_checkin_query_rejects_foreign_cursor(user, params):
    cursor = encode_cursor(POSITION, QUERY)

    with pytest.raises(ParameterError) as raised:
        parse_checkin_query(user, params | {"cursor": cursor})

    assert raised.value.name == "cursor"
    assert str(raised.value) == (
        f"invalid query parameter cursor='{cursor}': expected the next_cursor of "
        "a previous page, unchanged, with the same user, from, to and project"
    )


def test_checkin_query_accepts_equal_days():
    query = parse_checkin_query("alice", {"from": "2018-11-26", "to": "2018-11-26"})

    assert query.first_day == dt.date(2018, 11, 26)
    assert query.last_day == dt.date(2018, 11, 26)


def test_checkin_query_rejects_from_after_to():
    with pytest.raises(ParameterError) as raised:
        parse_checkin_query("alice", {"from": "2018-11-27", "to": "2018-11-26"})

    assert raised.value.name == "from"
    assert str(raised.value) == (
        "invalid query parameters: from=2018-11-27 is after to=2018-11-26; "
        "expected from on or before to"
    )


def test_cursor_is_url_safe():
    cursor = encode_cursor(POSITION, QUERY)

    assert cursor.isascii()
    assert set(cursor) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_cursor_round_trips_position():
    assert decode_cursor(encode_cursor(POSITION, QUERY), QUERY) == POSITION


def test_cursor_converts_offsets_to_utc():
    plus_eight = dt.timezone(dt.timedelta(hours=8))
    position = Position(dt.datetime(2018, 11, 26, 22, 47, tzinfo=plus_eight), 3)

    decoded = decode_cursor(encode_cursor(position, QUERY), QUERY)

    assert decoded == Position(dt.datetime(2018, 11, 26, 14, 47, tzinfo=dt.UTC), 3)
    assert decoded.checkin_at.tzinfo == dt.UTC


def test_cursor_rejects_naive_stamp():
    with pytest.raises(ValueError, match="has no time zone"):
        encode_cursor(Position(dt.datetime(2018, 11, 26), 1), QUERY)  # noqa: DTZ001


@given(
    # Hypothesis takes naive bounds and adds the time zone afterwards.
    stamp=st.datetimes(
        min_value=dt.datetime(1900, 1, 1),  # noqa: DTZ001
        max_value=dt.datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.just(dt.UTC),
    ),
    row_id=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_cursor_round_trips_any_position(stamp, row_id):
    position = Position(stamp, row_id)

    assert decode_cursor(encode_cursor(position, QUERY), QUERY) == position


def test_cursor_rejects_every_changed_character():
    cursor = encode_cursor(POSITION, QUERY)

    for index, character in enumerate(cursor):
        replacement = "A" if character != "A" else "B"
        changed = cursor[:index] + replacement + cursor[index + 1 :]
        with pytest.raises(ParameterError):
            decode_cursor(changed, QUERY)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "A" * 28,
        "=" * 28,
        "AQAFe5DBxWcAAAAAAAAAAAIPGt5z=",
        "AQAFe5DBxWcAAAAAAAAAAAIPGt5",
        "AQAFe5DBxWcAAAAAAAAAAAIPGt5zA",
        "AQAFe5DBxWc+AAAAAAAAAAIPGt5z",
        "AQAFe5DBxWc AAAAAAAAAAIPGt5z",
        "ÀQAFe5DBxWcAAAAAAAAAAAIPGt5z",
        "' OR 1=1 --",
    ],
)
def test_cursor_rejects_garbled_text(text):
    with pytest.raises(ParameterError) as raised:
        decode_cursor(text, QUERY)

    assert raised.value.name == "cursor"
    assert str(raised.value).startswith(f"invalid query parameter cursor={show(text)}")


def _cursor_from_parts(version, microseconds, row_id):
    payload = struct.pack(">Bqq", version, microseconds, row_id)
    token = base64.urlsafe_b64encode(payload + _checksum(payload, QUERY))
    return token.rstrip(b"=").decode("ascii")


def test_cursor_accepts_checked_parts():
    microseconds = (POSITION.checkin_at - EPOCH) // dt.timedelta(microseconds=1)

    assert _cursor_from_parts(2, microseconds, 7) == encode_cursor(POSITION, QUERY)


@pytest.mark.parametrize("version", [1, 3])
def test_cursor_rejects_other_version(version):
    with pytest.raises(ParameterError):
        decode_cursor(_cursor_from_parts(version, 0, 1), QUERY)


@pytest.mark.parametrize("microseconds", [2**63 - 1, -(2**63)])
def test_cursor_rejects_stamp_out_of_range(microseconds):
    with pytest.raises(ParameterError):
        decode_cursor(_cursor_from_parts(2, microseconds, 1), QUERY)


def test_documented_page_cursor_decodes():
    """The example page in docs/api.md carries the cursor of its last row."""
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(\{.*?\})\n```", text, re.S)[1])
    (last,) = example["checkins"]

    position = decode_cursor(example["next_cursor"], CheckinQuery(user="ned"))

    assert position == Position(
        dt.datetime(2018, 11, 12, 16, 30, 52, 28400, tzinfo=dt.UTC), 45
    )
    assert position.id == last["id"]
    assert (
        position.checkin_at.isoformat().replace("+00:00", "Z") == (last["checkin_at"])
    )
