"""Timestamp parsing for the three forms found in check-in exports.

Every form is read as UTC unless it carries its own offset:

- ISO 8601 and the export's variant of it: ``2018-11-26 14:47:36.0429 UTC``,
  ``2018-11-26T14:47:36Z``, ``2018-11-26T22:47:36+08:00``;
- US 12-hour: ``11/26/2018 12:49 PM`` (month first);
- Russian, with the month in the genitive case: ``26 ноября 2018 14:47``.

Forms without seconds have minute precision, which cleaning may recover from
the person's batch. Fractions beyond microseconds are truncated, since Python
and PostgreSQL keep no more.
"""

import datetime as dt
import functools
import re

import attrs

from checkins.domain.model import StampFormat


# Years outside this range are typing errors, and near the ends of Python's
# calendar a time zone shift would leave it.
MIN_YEAR = 1900
MAX_YEAR = 2999


class TimestampError(ValueError):
    """Raised when a text is not a timestamp in any supported form."""


@attrs.frozen
class ParsedStamp:
    """An instant in UTC, the form it was written in and whether it had seconds.

    `truncated` is true when the text had digits beyond microseconds, which
    were dropped.
    """

    instant: dt.datetime
    stamp_format: StampFormat
    minute_precision: bool
    had_offset: bool
    truncated: bool = False


# A stamp with a nine-digit fraction and an offset,
# "2018-11-26T14:47:36.123456789+08:00", has 35 characters. Longer text is
# rejected before any pattern runs, which keeps huge fields out of the cache
# and out of error messages.
MAX_TIMESTAMP_CHARS = 64

_ISO = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"(?:[ T]+)(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE | re.ASCII,
)
_US = re.compile(
    r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\s*"
    r"(?P<meridiem>AM|PM)",
    re.IGNORECASE | re.ASCII,
)
_RUSSIAN = re.compile(
    r"(?P<day>\d{1,2})\s+(?P<month>[а-яёА-ЯЁ]+)\.?\s+(?P<year>\d{4})(?:\s*г\.?)?"
    r",?\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?",
    re.IGNORECASE | re.ASCII,
)

# Genitive ("26 ноября") is how dates are written; the nominative is accepted too
# because some tools print it.
_RUSSIAN_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("января", "январь"),
            ("февраля", "февраль"),
            ("марта", "март"),
            ("апреля", "апрель"),
            ("мая", "май"),
            ("июня", "июнь"),
            ("июля", "июль"),
            ("августа", "август"),
            ("сентября", "сентябрь"),
            ("октября", "октябрь"),
            ("ноября", "ноябрь"),
            ("декабря", "декабрь"),
        ],
        start=1,
    )
    for name in names
}


def is_russian_month(word: str) -> bool:
    """Return whether `word` is a Russian month name that stamps may contain."""
    return word.lower() in _RUSSIAN_MONTHS


def parse_timestamp(text: str) -> ParsedStamp:
    """Parse `text` in any supported form into a UTC instant.

    Runs of white space count as one space. Raises TimestampError, naming the
    text, when no form matches or the date does not exist.
    """
    stripped = " ".join(text.split())
    if not stripped:
        raise TimestampError("timestamp is empty")
    if len(stripped) > MAX_TIMESTAMP_CHARS:
        raise TimestampError(
            f"timestamp {stripped[:40]!r}... is {len(stripped):,} characters long, "
            f"over the limit of {MAX_TIMESTAMP_CHARS} for a supported form"
        )
    return _parse_stripped(stripped)


# Results are cached because one batch shares one stamp. The key is the text
# with white space folded and at most MAX_TIMESTAMP_CHARS long, so the cache
# stays small.
@functools.lru_cache(maxsize=65536)
def _parse_stripped(text: str) -> ParsedStamp:
    if (parsed := _parse_export_iso(text)) is not None:
        return parsed
    if match := _ISO.fullmatch(text):
        return _from_iso(match, text)
    if match := _US.fullmatch(text):
        return _from_us(match, text)
    if match := _RUSSIAN.fullmatch(text):
        return _from_russian(match, text)
    raise TimestampError(
        f"timestamp {text!r} matches no supported form "
        "(ISO 8601, MM/DD/YYYY hh:mm AM, or '26 ноября 2018 14:47')"
    )


_EXPORT_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
)


def _parse_export_iso(text: str) -> ParsedStamp | None:
    """Parse the export's usual form, ``2018-11-26 14:47:36.0429 UTC``, quickly.

    Most stamps of an export have this form, and the standard library parses
    it several times faster than the general expressions. Anything else,
    invalid dates included, returns None for the general path to handle.
    """
    parsed = parse_export_iso(text)
    if parsed is None:
        return None
    instant, truncated = parsed
    return ParsedStamp(
        instant=instant,
        stamp_format=StampFormat.ISO,
        minute_precision=False,
        had_offset=False,
        truncated=truncated,
    )


def parse_export_iso(text: str) -> tuple[dt.datetime, bool] | None:
    """Return the instant of a stamp in the export's usual form, and whether
    digits beyond microseconds were dropped, or None for any other text.

    For such text parse_timestamp returns the same instant, in the ISO form,
    with seconds and without an offset. Text with other white space, over
    MAX_TIMESTAMP_CHARS characters or with an invalid date returns None.
    """
    if (
        not text.endswith(" UTC")
        or len(text) > MAX_TIMESTAMP_CHARS
        or not _EXPORT_ISO.fullmatch(text, 0, len(text) - 4)
    ):
        return None
    try:
        local = dt.datetime.fromisoformat(text[:-4])
    except ValueError:
        return None
    if not MIN_YEAR <= local.year <= MAX_YEAR:
        return None
    # The fraction starts after "YYYY-MM-DD HH:MM:SS." and ends at " UTC".
    return local.replace(tzinfo=dt.UTC), len(text) - 4 - 20 > 6


def _from_iso(match: re.Match[str], text: str) -> ParsedStamp:
    fraction = match["fraction"] or ""
    microsecond = int(fraction[:6].ljust(6, "0")) if fraction else 0
    zone = (match["zone"] or "").upper()
    offset = _parse_offset(zone, text)
    instant = _build(
        text,
        int(match["year"]),
        int(match["month"]),
        int(match["day"]),
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"] or 0),
        microsecond,
        offset,
    )
    return ParsedStamp(
        instant=instant,
        stamp_format=StampFormat.ISO,
        minute_precision=match["second"] is None,
        had_offset=offset != dt.timedelta(0),
        truncated=len(fraction) > 6,
    )


def _parse_offset(zone: str, text: str) -> dt.timedelta:
    if zone in ("", "Z", "UTC", "GMT"):
        return dt.timedelta(0)
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise TimestampError(f"timestamp {text!r} has an invalid UTC offset")
    return sign * dt.timedelta(hours=hours, minutes=minutes)


def _from_us(match: re.Match[str], text: str) -> ParsedStamp:
    hour = int(match["hour"])
    if not 1 <= hour <= 12:
        raise TimestampError(f"timestamp {text!r} has hour {hour}, expected 1 to 12")
    # 12:xx AM is just after midnight and 12:xx PM just after noon.
    hour %= 12
    if match["meridiem"].upper() == "PM":
        hour += 12
    instant = _build(
        text,
        int(match["year"]),
        int(match["month"]),
        int(match["day"]),
        hour,
        int(match["minute"]),
        int(match["second"] or 0),
        0,
        dt.timedelta(0),
    )
    return ParsedStamp(
        instant=instant,
        stamp_format=StampFormat.US,
        minute_precision=match["second"] is None,
        had_offset=False,
    )


def _from_russian(match: re.Match[str], text: str) -> ParsedStamp:
    month = _RUSSIAN_MONTHS.get(match["month"].lower())
    if month is None:
        raise TimestampError(
            f"timestamp {text!r} has an unknown Russian month {match['month']!r}"
        )
    instant = _build(
        text,
        int(match["year"]),
        month,
        int(match["day"]),
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"] or 0),
        0,
        dt.timedelta(0),
    )
    return ParsedStamp(
        instant=instant,
        stamp_format=StampFormat.RUSSIAN,
        minute_precision=match["second"] is None,
        had_offset=False,
    )


def _build(
    text: str,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    microsecond: int,
    offset: dt.timedelta,
) -> dt.datetime:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise TimestampError(
            f"timestamp {text!r} has year {year}, outside {MIN_YEAR} to {MAX_YEAR}"
        )
    try:
        local = dt.datetime(
            year, month, day, hour, minute, second, microsecond, tzinfo=dt.UTC
        )
    except ValueError as error:
        raise TimestampError(
            f"timestamp {text!r} is not a valid date: {error}"
        ) from None
    try:
        instant = local - offset
    except OverflowError:
        raise TimestampError(f"timestamp {text!r} is out of range") from None
    # The API's days are UTC days, so an offset must not carry a stamp out of
    # the range.
    if not MIN_YEAR <= instant.year <= MAX_YEAR:
        raise TimestampError(
            f"timestamp {text!r} is in year {instant.year} in UTC, outside "
            f"{MIN_YEAR} to {MAX_YEAR}"
        )
    return instant
