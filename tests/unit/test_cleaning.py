import datetime as dt
from decimal import Decimal

import pytest

from checkins.domain.cleaning import Cleaning, clean
from checkins.domain.model import (
    CheckIn,
    Fix,
    Flag,
    Quarantined,
    RawRow,
    Reason,
    StampFormat,
)
from checkins.domain.projects import ProjectAliases


ALIASES = ProjectAliases.from_csv("alias,canonical,reason\nhirng,hiring,typo\n")


def raw(
    line,
    user="ned",
    timestamp="2018-11-26 14:47:36.0429 UTC",
    hours="8.0",
    project="bizdev",
):
    return RawRow(
        line, f"{user},{timestamp},{hours},{project}", user, timestamp, hours, project
    )


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def clean_row(row, aliases):
    """Clean one row on its own and return its outcome."""
    (outcome,) = clean([row], aliases)
    return outcome


def test_clean_row_accepts_valid_row():
    """A valid row becomes a check-in with no fixes."""
    outcome = clean_row(raw(2), ALIASES)

    assert isinstance(outcome, CheckIn)
    assert "ned" == outcome.user
    assert utc(2018, 11, 26, 14, 47, 36, 42900) == outcome.checkin_at
    assert Decimal("8.0") == outcome.hours
    assert "bizdev" == outcome.project
    assert StampFormat.ISO is outcome.stamp_format
    assert frozenset() == outcome.fixes


def test_clean_row_normalises_names():
    """User and project are trimmed and lower-cased, and the fix recorded."""
    outcome = clean_row(raw(2, user=" Ned ", project="BizDev "), ALIASES)

    assert "ned" == outcome.user
    assert "bizdev" == outcome.project
    assert {Fix.USER_NORMALISED, Fix.PROJECT_NORMALISED} == outcome.fixes


def test_clean_row_applies_alias():
    """A known typo takes its canonical name."""
    outcome = clean_row(raw(2, project="hirng"), ALIASES)

    assert "hiring" == outcome.project
    assert {Fix.PROJECT_ALIAS} == outcome.fixes


def test_clean_row_normalises_us_stamp():
    """A US stamp is converted and marked as normalised, at minute precision."""
    outcome = clean_row(raw(2, timestamp="11/26/2018 02:49 PM"), ALIASES)

    assert utc(2018, 11, 26, 14, 49) == outcome.checkin_at
    assert outcome.minute_precision
    assert {Fix.TIMESTAMP_NORMALISED} == outcome.fixes


def test_clean_row_reads_decimal_comma():
    """Hours written with a decimal comma are read and the fix recorded."""
    outcome = clean_row(raw(2, hours="7,5"), ALIASES)

    assert Decimal("7.5") == outcome.hours
    assert {Fix.HOURS_NORMALISED} == outcome.fixes


@pytest.mark.parametrize(
    ("row", "reason", "detail"),
    [
        (raw(2, user=""), Reason.MISSING_USER, "user is empty"),
        (raw(2, user="   "), Reason.MISSING_USER, "user is empty"),
        (raw(2, timestamp=""), Reason.MISSING_TIMESTAMP, "timestamp is empty"),
        (
            raw(2, timestamp="soon"),
            Reason.INVALID_TIMESTAMP,
            "timestamp 'soon' matches no supported form (ISO 8601, "
            "MM/DD/YYYY hh:mm AM, or '26 ноября 2018 14:47')",
        ),
        (raw(2, hours=""), Reason.MISSING_HOURS, "hours is empty"),
        (
            raw(2, hours="eight"),
            Reason.INVALID_HOURS,
            "hours 'eight' is not a number such as 7.5",
        ),
        (
            raw(2, hours="1e1"),
            Reason.INVALID_HOURS,
            "hours '1e1' is not a number such as 7.5",
        ),
        (
            raw(2, hours="1_0"),
            Reason.INVALID_HOURS,
            "hours '1_0' is not a number such as 7.5",
        ),
        (
            raw(2, hours="."),
            Reason.INVALID_HOURS,
            "hours '.' is not a number such as 7.5",
        ),
        (
            raw(2, hours="0." + "0" * 20 + "1"),
            Reason.INVALID_HOURS,
            "hours '0.000000000000000000001' has more than 20 decimal places",
        ),
        (
            raw(2, user="a\x00b"),
            Reason.INVALID_USER,
            "user 'a\\x00b' contains the control character U+0000",
        ),
        (
            raw(2, project="x\x07"),
            Reason.INVALID_PROJECT,
            "project 'x\\x07' contains the control character U+0007",
        ),
        (
            raw(2, user="u" * 201),
            Reason.INVALID_USER,
            "user is 201 characters long, over 200",
        ),
        (
            raw(2, hours="NaN"),
            Reason.INVALID_HOURS,
            "hours 'NaN' is not a number such as 7.5",
        ),
        (raw(2, hours="0.0"), Reason.HOURS_NOT_POSITIVE, "hours '0.0' is not above 0"),
        (raw(2, hours="-1"), Reason.HOURS_NOT_POSITIVE, "hours '-1' is not above 0"),
        (raw(2, hours="30.0"), Reason.HOURS_OVER_24, "hours '30.0' is over 24"),
        (raw(2, project=" "), Reason.MISSING_PROJECT, "project is empty"),
        (
            RawRow(2, "a,b", problem="expected 4 fields, found 2"),
            Reason.MALFORMED_RECORD,
            "expected 4 fields, found 2",
        ),
    ],
)
def test_clean_row_quarantines_invalid(row, reason, detail):
    """Each kind of invalid row is quarantined with its reason and raw text."""
    outcome = clean_row(row, ALIASES)

    assert isinstance(outcome, Quarantined)
    assert reason is outcome.reason
    assert detail == outcome.detail
    assert row.text == outcome.text
    assert 2 == outcome.line


def test_clean_row_keeps_format_of_quarantined():
    """A quarantined row still reports the form of its parsed stamp."""
    outcome = clean_row(raw(2, user="", timestamp="11/26/2018 02:49 PM"), ALIASES)

    assert StampFormat.US is outcome.stamp_format


def test_clean_row_accepts_24_hours():
    """Exactly 24 hours is the largest valid entry."""
    outcome = clean_row(raw(2, hours="24"), ALIASES)

    assert Decimal(24) == outcome.hours


def test_clean_recovers_stamp_from_batch():
    """A minute-precision row takes the one full stamp of its minute."""
    rows = [
        raw(2, timestamp="2018-11-26 14:47:36.0429 UTC", project="a"),
        raw(3, timestamp="11/26/2018 02:47 PM", project="b"),
        raw(4, timestamp="26 ноября 2018 14:47", project="c"),
    ]

    outcomes = list(clean(rows, ALIASES))

    assert [utc(2018, 11, 26, 14, 47, 36, 42900)] * 3 == [
        o.checkin_at for o in outcomes
    ]
    assert Fix.PRECISION_RECOVERED in outcomes[1].fixes
    assert Fix.PRECISION_RECOVERED in outcomes[2].fixes
    assert not outcomes[1].minute_precision


def test_clean_recovers_when_batch_comes_later():
    """Recovery does not depend on the order of rows in the file."""
    rows = [
        raw(2, timestamp="11/26/2018 02:47 PM"),
        raw(3, timestamp="2018-11-26 14:47:36.0429 UTC", project="b"),
    ]

    first, _ = clean(rows, ALIASES)

    assert utc(2018, 11, 26, 14, 47, 36, 42900) == first.checkin_at


def test_clean_keeps_minute_when_ambiguous():
    """With two full stamps in the minute, the row keeps its minute."""
    rows = [
        raw(2, timestamp="2018-11-26 14:47:10 UTC"),
        raw(3, timestamp="2018-11-26 14:47:50 UTC"),
        raw(4, timestamp="11/26/2018 02:47 PM"),
    ]

    outcomes = list(clean(rows, ALIASES))

    assert utc(2018, 11, 26, 14, 47) == outcomes[2].checkin_at
    assert outcomes[2].minute_precision
    assert Fix.PRECISION_RECOVERED not in outcomes[2].fixes


def test_clean_recovers_only_from_same_person():
    """Another person's stamp in the same minute is not used."""
    rows = [
        raw(2, user="arya", timestamp="2018-11-26 14:47:36 UTC"),
        raw(3, user="ned", timestamp="11/26/2018 02:47 PM"),
    ]

    outcomes = list(clean(rows, ALIASES))

    assert utc(2018, 11, 26, 14, 47) == outcomes[1].checkin_at


def test_clean_yields_every_row_in_order():
    """Loaded and quarantined rows come out once each, in the order read."""
    rows = [raw(2), raw(3, user=""), raw(4, hours="2.5"), raw(5, hours="x")]

    outcomes = list(clean(rows, ALIASES))

    assert [2, 3, 4, 5] == [o.line for o in outcomes]
    assert [CheckIn, Quarantined, CheckIn, Quarantined] == [type(o) for o in outcomes]


def test_clean_flags_repeated_entries():
    """Identical rows of a person all load; copies after the first are flagged."""
    rows = [raw(2), raw(3), raw(4, hours="1.0")]

    first, second, other = clean(rows, ALIASES)

    assert frozenset() == first.flags
    assert {Flag.REPEATED_ENTRY} == second.flags
    assert frozenset() == other.flags
    assert first.key != second.key


def test_clean_flags_day_over_24_hours():
    """Every row of a person's UTC day above 24 hours is flagged."""
    rows = [
        raw(2, timestamp="2018-11-26 01:00:00 UTC", hours="20"),
        raw(3, timestamp="2018-11-26 23:00:00 UTC", hours="5"),
        raw(4, timestamp="2018-11-27 00:30:00 UTC", hours="5"),
        raw(5, user="arya", timestamp="2018-11-26 02:00:00 UTC", hours="5"),
    ]

    outcomes = list(clean(rows, ALIASES))

    assert [{Flag.DAY_OVER_24H}, {Flag.DAY_OVER_24H}, set(), set()] == [
        set(o.flags) for o in outcomes
    ]


def test_key_ignores_hours_notation():
    """8, 8.0 and 8.00 hours give the same identity."""
    first = clean_row(raw(2, hours="8"), ALIASES)
    second = clean_row(raw(3, hours="8.00"), ALIASES)

    assert first.key == second.key


def test_key_numbers_identical_rows():
    """Identical rows get occurrences 0, 1, 2 and so distinct identities."""
    outcomes = list(clean([raw(2), raw(3), raw(4)], ALIASES))

    assert [0, 1, 2] == [o.occurrence for o in outcomes]
    assert 3 == len({o.key for o in outcomes})


def test_clean_uses_shipped_aliases_by_default():
    """Without an alias table, the one shipped with the package applies."""
    (outcome,) = clean([raw(2, project="opsandamin")])

    assert "opsandadmin" == outcome.project


def test_clean_flags_isolated_batch():
    """A small run of days far from the rest of a person's activity is flagged."""
    rows = [
        raw(line, timestamp=f"2018-{month:02d}-10 09:00:00 UTC", hours="1")
        for line, month in enumerate(range(1, 13), start=2)
    ] * 3
    rows = [row._replace(line=index) for index, row in enumerate(rows, start=2)]
    rows.append(raw(100, timestamp="2010-10-04 09:00:00 UTC", hours="1"))

    outcomes = list(clean(rows, ALIASES))

    flagged = [o.line for o in outcomes if Flag.ISOLATED_TIMESTAMP in o.flags]
    assert [100] == flagged


def test_clean_keeps_large_separate_runs():
    """Two long stretches of work with a gap between them are both normal."""
    rows = [
        raw(line, timestamp=f"{year}-03-{day:02d} 09:00:00 UTC", hours="1")
        for line, (year, day) in enumerate(
            [(2017, day) for day in range(1, 21)]
            + [(2018, day) for day in range(1, 21)],
            start=2,
        )
    ]

    outcomes = list(clean(rows, ALIASES))

    assert all(Flag.ISOLATED_TIMESTAMP not in o.flags for o in outcomes)


def test_clean_single_run_never_isolated():
    """A person whose activity is one run has no isolated rows."""
    rows = [raw(2, timestamp="2010-10-04 09:00:00 UTC")]

    (outcome,) = clean(rows, ALIASES)

    assert frozenset() == outcome.flags


class SmallCleaning(Cleaning):
    """Checks the memory limit every two rows, so that small tests spill."""

    PROGRESS_EVERY = 2


def test_spilled_cleaning_equals_in_memory():
    """Rows spilled to temporary files give the same records as in memory."""
    rows = [
        raw(2, timestamp="2018-11-26 14:47:36.0429 UTC", project="a"),
        raw(3, timestamp="11/26/2018 02:47 PM", project="b"),
        raw(4, user="arya", hours="3"),
        raw(5, user=""),
        raw(6, user="bran", timestamp="2018-11-27 10:00:00 UTC"),
        raw(7, timestamp="2018-11-26 14:47:36.0429 UTC", project="a"),
        raw(8, user="arya", hours="22"),
    ]

    def records(cleaning):
        quarantined = list(cleaning.read(rows))
        stored = sorted(r for person in cleaning.people() for r in person)
        return quarantined, stored

    in_memory = records(Cleaning(ALIASES))
    spilled = records(SmallCleaning(ALIASES, max_rows_in_memory=1))

    assert in_memory == spilled
    assert 6 == len(spilled[1])


def test_clean_records_truncated_fraction():
    """Digits past microseconds are dropped, and the change is recorded."""
    outcome = clean_row(raw(2, timestamp="2018-11-26 14:47:36.1234567 UTC"), ALIASES)

    assert utc(2018, 11, 26, 14, 47, 36, 123456) == outcome.checkin_at
    assert {Fix.TIMESTAMP_NORMALISED} == outcome.fixes
