"""Read-side types: what the API asks of stored check-ins and gets back."""

import datetime as dt
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
