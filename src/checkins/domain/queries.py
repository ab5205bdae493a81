"""Read-side types: the queries of the API over stored check-ins, and their results."""

import datetime as dt
import enum
import json
import zoneinfo
from decimal import Decimal

import attrs


class UnknownUserError(LookupError):
    """Raised when a query names a user with no stored check-ins."""

    def __init__(self, user: str) -> None:
        super().__init__(f"user {user!r} not found")
        self.user = user


@attrs.frozen
class UserTotals:
    """A person's number of check-ins, total hours and first and last stamps."""

    user: str
    checkins: int
    hours: Decimal
    first_checkin_at: dt.datetime
    last_checkin_at: dt.datetime


@attrs.frozen
class StoredCheckin:
    """A check-in as stored, with its database id and flags."""

    id: int
    user: str
    checkin_at: dt.datetime
    hours: Decimal
    project: str
    flags: tuple[str, ...] = ()


@attrs.frozen
class Position:
    """A place in a user's check-ins ordered by stamp, then id; pages start after it."""

    checkin_at: dt.datetime
    id: int


@attrs.frozen
class CheckinQuery:
    """Filters and page size for one user's check-ins.

    `first_day` and `last_day` are inclusive UTC dates; `after` is the last row
    of the previous page.
    """

    user: str
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    project: str | None = None
    limit: int = 100
    after: Position | None = None


@attrs.frozen
class CheckinPage:
    """One page of check-ins and the position to continue from, if any."""

    checkins: list[StoredCheckin]
    next_position: Position | None


class InvalidTimeZoneError(ValueError):
    """Raised when the database does not know a time zone name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"time zone {name!r} not found")
        self.name = name


class QueriesUnavailableError(RuntimeError):
    """Raised when the stored check-ins cannot be read, such as with the database down.

    The message is safe to show a client: it names no host, user or query.
    """


class Grouping(enum.Enum):
    """The unit by which a summary groups a user's check-ins."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    PROJECT = "project"


@attrs.frozen
class SummaryQuery:
    """A user's check-ins to group, and how.

    Days, ISO weeks and months are taken in the IANA time zone `time_zone`, and
    `first_day` and `last_day` are inclusive dates in that zone.
    """

    user: str
    by: Grouping
    time_zone: str = "UTC"
    first_day: dt.date | None = None
    last_day: dt.date | None = None


@attrs.frozen
class SummaryGroup:
    """The number of check-ins and the hours of one group of a summary.

    `key` is the local day as YYYY-MM-DD, the ISO week as YYYY-Www, the month as
    YYYY-MM, or the project name.
    """

    key: str
    checkins: int
    hours: Decimal


@attrs.frozen
class ProjectTotals:
    """A project's number of current check-ins, total hours and number of users."""

    project: str
    checkins: int
    hours: Decimal
    users: int


@attrs.frozen
class RenderedPage:
    """One page of a user's check-ins, already written as a UTF-8 JSON array.

    `data_version` is the data version read with the rows, when it was asked for.
    """

    checkins_json: bytes
    next_position: Position | None
    data_version: int | None = None


def group_key(checkin: StoredCheckin, by: Grouping, zone: zoneinfo.ZoneInfo) -> str:
    """Return the key of the summary group that `checkin` belongs to."""
    if by is Grouping.PROJECT:
        return checkin.project
    local = checkin.checkin_at.astimezone(zone)
    if by is Grouping.DAY:
        return local.date().isoformat()
    if by is Grouping.WEEK:
        year, week, _ = local.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{local.year:04d}-{local.month:02d}"


def render_checkins_json(checkins: list[StoredCheckin]) -> str:
    """Write `checkins` as a JSON array of objects, as the HTTP API sends them."""
    return dumps_json([checkin_document(checkin) for checkin in checkins])


def checkin_document(checkin: StoredCheckin) -> dict[str, object]:
    """Return the JSON object of one check-in, before serialisation."""
    return {
        "id": checkin.id,
        "user": checkin.user,
        "checkin_at": checkin.checkin_at,
        "hours": checkin.hours,
        "project": checkin.project,
        "flags": list(checkin.flags),
    }


def dumps_json(value: object) -> str:
    """Serialise `value` as JSON, with Decimal and datetime values included.

    A Decimal is written as a JSON number with all its digits, never as a
    string. A timezone-aware datetime is written in UTC as ISO 8601 with a Z
    suffix. Raises TypeError for types that JSON has no form for, and
    ValueError for NaN, infinities and naive datetimes.
    """
    parts: list[str] = []
    _write_json(value, parts)
    return "".join(parts)


def format_utc(stamp: dt.datetime) -> str:
    """Format a timezone-aware `stamp` in UTC as ISO 8601 with a Z suffix."""
    if stamp.tzinfo is None:
        raise ValueError(f"stamp {stamp.isoformat()} has no time zone")
    text = stamp.astimezone(dt.UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def _write_json(value: object, parts: list[str]) -> None:
    if isinstance(value, dict):
        parts.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            if index:
                parts.append(", ")
            parts.append(json.dumps(key, ensure_ascii=False))
            parts.append(": ")
            _write_json(item, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(", ")
            _write_json(item, parts)
        parts.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"JSON has no number for {value}")
        parts.append(format(value, "f"))
    elif isinstance(value, dt.datetime):
        parts.append(json.dumps(format_utc(value)))
    else:
        parts.append(json.dumps(value, ensure_ascii=False, allow_nan=False))
