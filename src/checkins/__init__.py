"""Clean, load and serve a team's time-tracking check-ins.

The cleaning core needs no database::

    from checkins import RawRow, clean

    rows = [RawRow(2, "", "ned", "11/26/2018 12:49 PM", "8", "Bizdev")]
    for outcome in clean(rows):
        print(outcome)
"""

from checkins.domain.cleaning import clean
from checkins.domain.model import (
    CheckIn,
    Fix,
    Flag,
    Quarantined,
    RawRow,
    Reason,
    StampFormat,
)
from checkins.domain.timestamps import TimestampError, parse_timestamp


__all__ = [
    "CheckIn",
    "Fix",
    "Flag",
    "Quarantined",
    "RawRow",
    "Reason",
    "StampFormat",
    "TimestampError",
    "clean",
    "parse_timestamp",
]
