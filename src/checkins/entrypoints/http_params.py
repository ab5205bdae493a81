"""Query parameters and page cursors of the HTTP API, parsed without I/O."""

import base64
import binascii
import datetime as dt
import functools
import hashlib
import re
import struct
import zoneinfo
from collections.abc import Mapping

import attrs

from checkins.domain.projects import normalise_name
from checkins.domain.queries import CheckinQuery, Grouping, Position, SummaryQuery
from checkins.domain.timestamps import MAX_YEAR, MIN_YEAR


DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

QueryParams = Mapping[str, str | list[str]]

# Values echoed in error details are cut to this many characters, so that a
# hostile request cannot make the response as large as the request.
_MAX_SHOWN = 80

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# IANA names are ASCII letters, digits, "_", "-" and "+" in parts joined by "/".
_TIME_ZONE = re.compile(r"[A-Za-z0-9_+-]{1,30}(/[A-Za-z0-9_+-]{1,30}){0,3}")
_GROUPINGS = ", ".join(grouping.value for grouping in Grouping)
FORMATS = ("json", "csv")

# A cursor is a version byte, the stamp in microseconds since the Unix epoch
# and the row id, then a checksum of those and of the query's user and filters,
# all in unpadded URL-safe base64.
_CURSOR_VERSION = 2
_CURSOR_PAYLOAD = struct.Struct(">Bqq")
_CURSOR_CHECKSUM_SIZE = 4
_CURSOR_CHECKSUM_PERSON = b"checkins-cursor"
_CURSOR_LENGTH = len(
    base64.urlsafe_b64encode(
        bytes(_CURSOR_PAYLOAD.size + _CURSOR_CHECKSUM_SIZE)
    ).rstrip(b"=")
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class ParameterError(ValueError):
    """Raised when a query parameter is invalid.

    The message names the parameter, its value and the expected form.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def show(value: str) -> str:
    """Quote `value` for an error message, cut to at most 80 characters."""
    if len(value) > _MAX_SHOWN:
        value = value[:_MAX_SHOWN] + "..."
    return repr(value)


def parse_checkin_query(user: str, params: QueryParams) -> CheckinQuery:
    """Build the query for one user's check-ins from the request's parameters.

    `user` and `project` are trimmed and lower-cased as stored names are.
    Parameters other than from, to, project, limit and cursor are ignored. The
    cursor must come from a page of the same user, from, to and project.
    Raises ParameterError naming the first invalid parameter.
    """
    first_day, last_day = _parse_days(params)

    text = single_value(params, "project")
    project = None if text is None else parse_project(text)

    text = single_value(params, "limit")
    limit = DEFAULT_LIMIT if text is None else parse_limit(text)

    query = CheckinQuery(
        user=normalise_name(user),
        first_day=first_day,
        last_day=last_day,
        project=project,
        limit=limit,
    )
    text = single_value(params, "cursor")
    if text is None:
        return query
    return attrs.evolve(query, after=decode_cursor(text, query))


def single_value(params: QueryParams, name: str) -> str | None:
    """Return the value of parameter `name`, or None when it is absent.

    Raises ParameterError when the parameter is given more than once.
    """
    value = params.get(name)
    if isinstance(value, list):
        raise ParameterError(
            name,
            f"query parameter {name} is given {len(value)} times; "
            "expected it at most once",
        )
    return value


def parse_date(name: str, text: str) -> dt.date:
    """Parse `text` as a calendar date written YYYY-MM-DD."""
    # date.fromisoformat alone would also take forms like 20181126 and 2018-W48-1.
    if _DATE.fullmatch(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            pass
        else:
            if MIN_YEAR <= day.year <= MAX_YEAR:
                return day
    raise ParameterError(
        name,
        f"invalid query parameter {name}={show(text)}: "
        f"expected a date as YYYY-MM-DD from {MIN_YEAR} to {MAX_YEAR}, "
        "such as 2018-11-26",
    )


def parse_limit(text: str) -> int:
    """Parse `text` as a page size from 1 to 1000."""
    if not _INTEGER.fullmatch(text):
        raise ParameterError(
            "limit",
            f"invalid query parameter limit={show(text)}: "
            f"expected an integer from 1 to {MAX_LIMIT}",
        )
    negative = text.startswith("-")
    digits = text.lstrip("+-").lstrip("0") or "0"
    # Longer digit strings are out of range anyway, and int() raises ValueError
    # on strings of over 4300 digits.
    if len(digits) > len(str(MAX_LIMIT)):
        digits = str(MAX_LIMIT + 1)
    value = -int(digits) if negative else int(digits)
    if value < 1:
        raise ParameterError(
            "limit",
            f"invalid query parameter limit={show(text)}: expected at least 1",
        )
    if value > MAX_LIMIT:
        raise ParameterError(
            "limit",
            f"invalid query parameter limit={show(text)}: expected at most {MAX_LIMIT}",
        )
    return value


def parse_project(text: str) -> str:
    """Normalise `text` as a project name, as stored project names are."""
    project = normalise_name(text)
    if not project:
        raise ParameterError(
            "project",
            f"invalid query parameter project={show(text)}: "
            "expected a project name, or no project parameter for all projects",
        )
    # PostgreSQL text cannot contain NUL, so no stored name contains one.
    if "\x00" in project:
        raise ParameterError(
            "project",
            f"invalid query parameter project={show(text)}: "
            "expected a project name without NUL characters",
        )
    return project


def encode_cursor(position: Position, query: CheckinQuery) -> str:
    """Encode `position` as an opaque URL-safe cursor for pages of `query`."""
    if position.checkin_at.tzinfo is None:
        raise ValueError(f"position stamp {position.checkin_at} has no time zone")
    microseconds = (position.checkin_at - _EPOCH) // _MICROSECOND
    payload = _CURSOR_PAYLOAD.pack(_CURSOR_VERSION, microseconds, position.id)
    token = base64.urlsafe_b64encode(payload + _checksum(payload, query))
    return token.rstrip(b"=").decode("ascii")


def decode_cursor(text: str, query: CheckinQuery) -> Position:
    """Decode a cursor that `encode_cursor` made for a query like `query`.

    The checksum covers the user, from, to and project, so a cursor taken to
    another user or other filters is rejected instead of skipping rows there.
    It also catches cursors that were cut, garbled or edited by hand. It is no
    signature: anyone who reads this code can forge a cursor, which only points
    at another place in rows the client may read anyway.
    """
    position = _decode_position(text, query)
    if position is None:
        raise ParameterError(
            "cursor",
            f"invalid query parameter cursor={show(text)}: expected the "
            "next_cursor of a previous page, unchanged, with the same user, "
            "from, to and project",
        )
    return position


def _decode_position(text: str, query: CheckinQuery) -> Position | None:
    if len(text) != _CURSOR_LENGTH or not _BASE64URL.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return None
    payload = data[: _CURSOR_PAYLOAD.size]
    if data[_CURSOR_PAYLOAD.size :] != _checksum(payload, query):
        return None
    version, microseconds, row_id = _CURSOR_PAYLOAD.unpack(payload)
    if version != _CURSOR_VERSION:
        return None
    try:
        stamp = _EPOCH + microseconds * _MICROSECOND
    except OverflowError:
        return None
    return Position(stamp, row_id)


def _checksum(payload: bytes, query: CheckinQuery) -> bytes:
    # repr quotes each name, so no two different scopes give the same text.
    scope = repr((query.user, query.first_day, query.last_day, query.project))
    digest = hashlib.blake2b(
        payload, digest_size=_CURSOR_CHECKSUM_SIZE, person=_CURSOR_CHECKSUM_PERSON
    )
    digest.update(scope.encode("utf-8", "surrogatepass"))
    return digest.digest()


def parse_summary_query(
    user: str, params: QueryParams, default_time_zone: str
) -> SummaryQuery:
    """Build the summary query for one user from the request's parameters.

    `by` is required; `tz` defaults to `default_time_zone`. Parameters other
    than by, tz, from and to are ignored. Raises ParameterError naming the
    first invalid parameter.
    """
    text = single_value(params, "by")
    if text is None:
        raise ParameterError(
            "by", f"missing query parameter by: expected one of {_GROUPINGS}"
        )
    try:
        by = Grouping(text)
    except ValueError:
        raise ParameterError(
            "by",
            f"invalid query parameter by={show(text)}: expected one of {_GROUPINGS}",
        ) from None

    text = single_value(params, "tz")
    time_zone = default_time_zone if text is None else parse_time_zone("tz", text)

    first_day, last_day = _parse_days(params)
    return SummaryQuery(
        user=normalise_name(user),
        by=by,
        time_zone=time_zone,
        first_day=first_day,
        last_day=last_day,
    )


def parse_time_zone(name: str, text: str) -> str:
    """Check that `text` is an IANA time zone name, such as Asia/Manila."""
    if not (_TIME_ZONE.fullmatch(text) and text in _time_zone_names()):
        raise ParameterError(
            name,
            f"invalid query parameter {name}={show(text)}: expected an IANA time "
            "zone name, such as UTC or Asia/Manila",
        )
    return text


def parse_format(params: QueryParams) -> str | None:
    """Return the `format` parameter, json or csv, or None when it is absent."""
    text = single_value(params, "format")
    if text is None or text in FORMATS:
        return text
    raise ParameterError(
        "format",
        f"invalid query parameter format={show(text)}: expected json or csv",
    )


def check_csv_parameters(params: QueryParams) -> None:
    """Reject the paging parameters, which a CSV export, holding every row, lacks."""
    for name in ("limit", "cursor"):
        if name in params:
            raise ParameterError(
                name,
                f"query parameter {name} applies to JSON pages only, and the CSV "
                f"export has every selected row; leave {name} out or ask for JSON",
            )


def _parse_days(params: QueryParams) -> tuple[dt.date | None, dt.date | None]:
    text = single_value(params, "from")
    first_day = None if text is None else parse_date("from", text)

    text = single_value(params, "to")
    last_day = None if text is None else parse_date("to", text)

    if first_day is not None and last_day is not None and first_day > last_day:
        raise ParameterError(
            "from",
            f"invalid query parameters: from={first_day} is after to={last_day}; "
            "expected from on or before to",
        )
    return first_day, last_day


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
