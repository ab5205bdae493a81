"""Cleaning rules: turn raw rows into check-ins or quarantined rows.

Cleaning runs in two steps. `clean_row` validates and normalises one row on its
own. `clean` then applies the rules that need the whole file: stamps written at
minute precision take the full-precision stamp of their batch, each row gets
its identity key, and rows are flagged for a human. Every row read comes out
exactly once, as a `CheckIn` or as a `Quarantined`.
"""

import collections
import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation

import attrs

from checkins.domain.model import (
    CheckIn,
    Fix,
    Flag,
    Outcome,
    Quarantined,
    RawRow,
    Reason,
    StampFormat,
)
from checkins.domain.projects import ProjectAliases, normalise_name
from checkins.domain.timestamps import ParsedStamp, TimestampError, parse_timestamp


MAX_HOURS = Decimal(24)
_DAY_LIMIT = Decimal(24)


def clean(
    rows: Iterable[RawRow], aliases: ProjectAliases | None = None
) -> Iterator[Outcome]:
    """Clean `rows` and yield one outcome per row, in the order read.

    The rows are held in memory because recovering a stamp and flagging a row
    both need every row of the same person.
    """
    if aliases is None:
        aliases = ProjectAliases.shipped()
    outcomes = [clean_row(row, aliases) for row in rows]
    checkins = [o for o in outcomes if isinstance(o, CheckIn)]
    finished = iter(_key_and_flag(_recover_precision(checkins)))
    for outcome in outcomes:
        yield next(finished) if isinstance(outcome, CheckIn) else outcome


def clean_row(row: RawRow, aliases: ProjectAliases) -> Outcome:
    """Validate and normalise one row on its own."""
    if row.problem is not None:
        return _quarantine(row, Reason.MALFORMED_RECORD, row.problem)

    # The stamp is parsed first so that its form is counted for every row,
    # quarantined or not.
    stamp: ParsedStamp | None = None
    stamp_problem = "timestamp is empty"
    if row.timestamp.strip():
        try:
            stamp = parse_timestamp(row.timestamp)
        except TimestampError as error:
            stamp_problem = str(error)
    stamp_format = stamp.stamp_format if stamp else None
    fixes = set()

    user = normalise_name(row.user)
    if not user:
        return _quarantine(row, Reason.MISSING_USER, "user is empty", stamp_format)
    if user != row.user:
        fixes.add(Fix.USER_NORMALISED)

    if stamp is None:
        reason = (
            Reason.INVALID_TIMESTAMP
            if row.timestamp.strip()
            else Reason.MISSING_TIMESTAMP
        )
        return _quarantine(row, reason, stamp_problem)
    if stamp.stamp_format is not StampFormat.ISO or stamp.had_offset:
        fixes.add(Fix.TIMESTAMP_NORMALISED)

    hours_or_problem = _parse_hours(row)
    if isinstance(hours_or_problem, Quarantined):
        return attrs.evolve(hours_or_problem, stamp_format=stamp_format)
    hours, hours_fixed = hours_or_problem
    if hours_fixed:
        fixes.add(Fix.HOURS_NORMALISED)

    project = normalise_name(row.project)
    if not project:
        return _quarantine(
            row, Reason.MISSING_PROJECT, "project is empty", stamp_format
        )
    if project != row.project:
        fixes.add(Fix.PROJECT_NORMALISED)
    canonical = aliases.canonical(project)
    if canonical is not None:
        project = canonical
        fixes.add(Fix.PROJECT_ALIAS)

    return CheckIn(
        line=row.line,
        user=user,
        checkin_at=stamp.instant,
        hours=hours,
        project=project,
        stamp_format=stamp.stamp_format,
        minute_precision=stamp.minute_precision,
        fixes=frozenset(fixes),
    )


def _parse_hours(row: RawRow) -> tuple[Decimal, bool] | Quarantined:
    text = row.hours.strip()
    if not text:
        return _quarantine(row, Reason.MISSING_HOURS, "hours is empty")
    # A decimal comma ("7,5") comes from spreadsheets in many locales.
    fixed = text.count(",") == 1 and "." not in text
    try:
        hours = Decimal(text.replace(",", ".") if fixed else text)
    except InvalidOperation:
        return _quarantine(
            row, Reason.INVALID_HOURS, f"hours {row.hours!r} is not a number"
        )
    if not hours.is_finite():
        return _quarantine(
            row, Reason.INVALID_HOURS, f"hours {row.hours!r} is not a finite number"
        )
    if hours <= 0:
        return _quarantine(
            row, Reason.HOURS_NOT_POSITIVE, f"hours {row.hours!r} is not above 0"
        )
    if hours > MAX_HOURS:
        return _quarantine(
            row, Reason.HOURS_OVER_24, f"hours {row.hours!r} is over {MAX_HOURS}"
        )
    return hours, fixed


def _quarantine(
    row: RawRow,
    reason: Reason,
    detail: str,
    stamp_format: StampFormat | None = None,
) -> Quarantined:
    return Quarantined(
        line=row.line,
        text=row.text,
        reason=reason,
        detail=detail,
        stamp_format=stamp_format,
    )


def _recover_precision(checkins: list[CheckIn]) -> list[CheckIn]:
    """Give minute-precision stamps the full stamp of their batch.

    A batch of one person shares one stamp. When exactly one distinct
    full-precision stamp of the same person falls in a row's minute, that stamp
    is the row's true one; with none or several the row keeps its minute.
    """
    full_stamps: dict[tuple[str, dt.datetime], set[dt.datetime]] = (
        collections.defaultdict(set)
    )
    for checkin in checkins:
        if not checkin.minute_precision:
            minute = checkin.checkin_at.replace(second=0, microsecond=0)
            full_stamps[checkin.user, minute].add(checkin.checkin_at)

    recovered = []
    for checkin in checkins:
        candidates = full_stamps.get((checkin.user, checkin.checkin_at), ())
        if checkin.minute_precision and len(candidates) == 1:
            (stamp,) = candidates
            checkin = attrs.evolve(
                checkin,
                checkin_at=stamp,
                minute_precision=False,
                fixes=checkin.fixes | {Fix.PRECISION_RECOVERED},
            )
        recovered.append(checkin)
    return recovered


def _key_and_flag(checkins: list[CheckIn]) -> list[CheckIn]:
    """Give each check-in its row key and its flags."""
    seen: collections.Counter[tuple[str, dt.datetime, Decimal, str]] = (
        collections.Counter()
    )
    day_hours: collections.Counter[tuple[str, dt.date]] = collections.Counter()
    for checkin in checkins:
        day_hours[checkin.user, checkin.checkin_at.date()] += checkin.hours

    keyed = []
    for checkin in checkins:
        content = (checkin.user, checkin.checkin_at, checkin.hours, checkin.project)
        occurrence = seen[content]
        seen[content] += 1
        flags = set()
        if occurrence:
            flags.add(Flag.REPEATED_ENTRY)
        if day_hours[checkin.user, checkin.checkin_at.date()] > _DAY_LIMIT:
            flags.add(Flag.DAY_OVER_24H)
        keyed.append(
            attrs.evolve(
                checkin, flags=frozenset(flags), row_key=row_key(checkin, occurrence)
            )
        )
    return keyed


def row_key(checkin: CheckIn, occurrence: int) -> bytes:
    """Return the identity of a row: its cleaned content and its occurrence.

    `occurrence` counts the identical rows (same person, stamp, hours and
    project) before this one, so that two genuine identical entries stay two rows
    while the same row in two overlapping files is stored once.
    """
    text = "\x1f".join(
        (
            checkin.user,
            checkin.checkin_at.isoformat(),
            format(checkin.hours.normalize(), "f"),
            checkin.project,
            str(occurrence),
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=16).digest()
