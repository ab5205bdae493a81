"""Check-in model: raw rows as read, cleaned check-ins and quarantined rows."""

import datetime as dt
import enum
from decimal import Decimal
from typing import NamedTuple

import attrs


class StampFormat(enum.Enum):
    """Written form of a timestamp in the export."""

    ISO = "iso"
    US = "us"
    RUSSIAN = "russian"


class Reason(enum.Enum):
    """Reason a row was quarantined instead of loaded."""

    MALFORMED_RECORD = "malformed_record"
    MISSING_USER = "missing_user"
    INVALID_USER = "invalid_user"
    MISSING_TIMESTAMP = "missing_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    MISSING_HOURS = "missing_hours"
    INVALID_HOURS = "invalid_hours"
    HOURS_NOT_POSITIVE = "hours_not_positive"
    HOURS_OVER_24 = "hours_over_24"
    MISSING_PROJECT = "missing_project"
    INVALID_PROJECT = "invalid_project"


class Fix(enum.Enum):
    """Change made to a loaded row, recorded with it."""

    TIMESTAMP_NORMALISED = "timestamp_normalised"
    PRECISION_RECOVERED = "precision_recovered"
    USER_NORMALISED = "user_normalised"
    HOURS_NORMALISED = "hours_normalised"
    PROJECT_NORMALISED = "project_normalised"
    PROJECT_ALIAS = "project_alias"


class Flag(enum.Enum):
    """Mark on a loaded row for a human to look at. The row is loaded as is."""

    REPEATED_ENTRY = "repeated_entry"
    DAY_OVER_24H = "day_over_24h"
    ISOLATED_TIMESTAMP = "isolated_timestamp"


class RawRow(NamedTuple):
    """One CSV record as read, before any cleaning.

    `line` is the physical file line on which the record starts, the first
    line of the file being 1. `problem` is set, and the fields are empty,
    when the record could not be split into the expected columns. A named
    tuple rather than an attrs class, because a load builds millions of them.
    """

    line: int
    text: str
    user: str = ""
    timestamp: str = ""
    hours: str = ""
    project: str = ""
    problem: str | None = None


@attrs.frozen
class CheckIn:
    """A cleaned check-in: a person spent `hours` on `project` at `checkin_at`.

    `checkin_at` is timezone-aware UTC. `minute_precision` is true when the
    stamp had no seconds and no batch stamp could replace it. `occurrence`
    counts the rows before this one in its file with the same person, hours,
    project and minute of `checkin_at`. Those five values are the row's
    identity across loads: every stamp form shows the minute, so the identity
    does not change when another export writes the stamp in another form.
    """

    line: int
    user: str
    checkin_at: dt.datetime
    hours: Decimal
    project: str
    stamp_format: StampFormat
    minute_precision: bool = False
    fixes: frozenset[Fix] = frozenset()
    flags: frozenset[Flag] = frozenset()
    occurrence: int = 0

    @property
    def key(self) -> tuple[str, dt.datetime, Decimal, str, int]:
        """Return the row's identity across loads."""
        minute = self.checkin_at.replace(second=0, microsecond=0)
        return (self.user, minute, self.hours, self.project, self.occurrence)


@attrs.frozen
class Quarantined:
    """A row kept aside instead of loaded, with the reason and its raw text.

    `stamp_format` is the form of the row's timestamp when it could be parsed.
    """

    line: int
    text: str
    reason: Reason
    detail: str
    stamp_format: StampFormat | None = None


Outcome = CheckIn | Quarantined
