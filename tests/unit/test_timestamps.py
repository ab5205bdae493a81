import datetime as dt

import pytest

from checkins.domain.model import StampFormat
from checkins.domain.timestamps import TimestampError, parse_timestamp


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "instant", "stamp_format", "minute_precision"),
    [
        (
            "2018-11-26 14:47:36.0429 UTC",
            utc(2018, 11, 26, 14, 47, 36, 42900),
            StampFormat.ISO,
            False,
        ),
        (
            "2018-11-26 14:47:36 UTC",
            utc(2018, 11, 26, 14, 47, 36),
            StampFormat.ISO,
            False,
        ),
        ("2018-11-26T14:47:36Z", utc(2018, 11, 26, 14, 47, 36), StampFormat.ISO, False),
        (
            "2018-11-26T22:47:36+08:00",
            utc(2018, 11, 26, 14, 47, 36),
            StampFormat.ISO,
            False,
        ),
        (
            "2018-11-26T10:17:36-0430",
            utc(2018, 11, 26, 14, 47, 36),
            StampFormat.ISO,
            False,
        ),
        ("2018-11-26 14:47 UTC", utc(2018, 11, 26, 14, 47), StampFormat.ISO, True),
        ("11/26/2018 12:49 PM", utc(2018, 11, 26, 12, 49), StampFormat.US, True),
        ("11/26/2018 02:49 PM", utc(2018, 11, 26, 14, 49), StampFormat.US, True),
        ("11/26/2018 12:00 AM", utc(2018, 11, 26, 0, 0), StampFormat.US, True),
        ("11/26/2018 11:59 AM", utc(2018, 11, 26, 11, 59), StampFormat.US, True),
        ("1/2/2018 3:04:05 pm", utc(2018, 1, 2, 15, 4, 5), StampFormat.US, False),
        ("26 ноября 2018 14:47", utc(2018, 11, 26, 14, 47), StampFormat.RUSSIAN, True),
        ("1 мая 2018 04:05", utc(2018, 5, 1, 4, 5), StampFormat.RUSSIAN, True),
        ("3 Января 2019 09:00", utc(2019, 1, 3, 9, 0), StampFormat.RUSSIAN, True),
    ],
)
def test_parse_timestamp_supported_forms(text, instant, stamp_format, minute_precision):
    """Each supported form parses to the UTC instant it names."""
    parsed = parse_timestamp(text)

    assert instant == parsed.instant
    assert stamp_format is parsed.stamp_format
    assert minute_precision is parsed.minute_precision


def test_parse_timestamp_truncates_long_fraction():
    """Digits past microseconds are dropped, not rounded."""
    parsed = parse_timestamp("2018-11-26 14:47:36.1234567 UTC")

    assert utc(2018, 11, 26, 14, 47, 36, 123456) == parsed.instant


def test_parse_timestamp_result_is_utc():
    """Every parsed instant carries the UTC time zone."""
    parsed = parse_timestamp("2018-11-26T22:47:36+08:00")

    assert dt.UTC == parsed.instant.tzinfo
    assert parsed.had_offset


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "timestamp is empty"),
        ("yesterday", "matches no supported form"),
        ("2018-02-30 10:00:00 UTC", "is not a valid date"),
        ("13/26/2018 12:49 PM", "is not a valid date"),
        ("11/26/2018 13:49 PM", "has hour 13, expected 1 to 12"),
        ("11/26/2018 00:49 AM", "has hour 0, expected 1 to 12"),
        ("26 брюмера 2018 14:47", "unknown Russian month 'брюмера'"),
        ("2018-11-26 24:00:00 UTC", "is not a valid date"),
        ("2018-11-26T14:47:36+25:00", "invalid UTC offset"),
        ("2018-11-26", "matches no supported form"),
        ("1899-12-31 23:00:00 UTC", "has year 1899, outside 1900 to 2999"),
        (
            "1900-01-01T00:00:00+01:00",
            "is in year 1899 in UTC, outside 1900 to 2999",
        ),
        (
            "2999-12-31T23:00:00-05:00",
            "is in year 3000 in UTC, outside 1900 to 2999",
        ),
    ],
)
def test_parse_timestamp_rejects_invalid(text, message):
    """Invalid stamps raise TimestampError with a message naming the problem."""
    with pytest.raises(TimestampError) as raised:
        parse_timestamp(text)

    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("11/26/2018 12:00 AM", utc(2018, 11, 26, 0, 0)),
        ("11/26/2018 12:00 PM", utc(2018, 11, 26, 12, 0)),
        ("2018-11-26 14:47:36.123456789 UTC", utc(2018, 11, 26, 14, 47, 36, 123456)),
        ("2018-11-26T14:47:36.5+08:00", utc(2018, 11, 26, 6, 47, 36, 500000)),
        ("2018-11-26" + " " * 200 + "14:47:36 UTC", utc(2018, 11, 26, 14, 47, 36)),
        ("\t1  ноября\n2018 00:05 ", utc(2018, 11, 1, 0, 5)),
    ],
)
def test_parse_timestamp_edge_forms(text, instant):
    """Midnight, noon, long fractions, offsets and odd spacing parse exactly."""
    assert instant == parse_timestamp(text).instant


def test_parse_timestamp_rejects_long_text():
    """Text past MAX_TIMESTAMP_CHARS fails before any pattern runs."""
    text = "2018-11-26 14:47:36." + "1" * 100 + " UTC"

    with pytest.raises(TimestampError) as raised:
        parse_timestamp(text)

    assert (
        "timestamp '2018-11-26 14:47:36.11111111111111111111'... is 124 "
        "characters long, over the limit of 64 for a supported form"
    ) == str(raised.value)
