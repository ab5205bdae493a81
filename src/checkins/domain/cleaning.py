"""Cleaning rules: turn raw rows into check-ins or quarantined rows.

Cleaning runs in two steps. `RowCleaner` validates and normalises each row on
its own. The rules that need all of a person's rows then run person by
person: a stamp written at minute precision takes the full-precision stamp of
its batch, identical rows are numbered, and rows are flagged for a human.
Every row read comes out exactly once, as a check-in or as a `Quarantined`.

The load path works on plain tuples (`Row` and `Record` below) because it
handles millions of rows; `clean` turns them into `CheckIn` objects for
library use.
"""

import bisect
import collections
import datetime as dt
import pickle
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

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
from checkins.domain.timestamps import (
    TimestampError,
    parse_export_iso,
    parse_timestamp,
)


MAX_HOURS = Decimal(24)
# Spreadsheets write thirds of an hour with up to 17 significant digits.
MAX_HOURS_DECIMALS = 20
MAX_NAME_LENGTH = 200

# Hours are plain decimal numbers: no exponent, no digit separators, ASCII
# digits only, with a point or a comma before the fraction.
_HOURS = re.compile(r"[+-]?(?=[.,]?[0-9])[0-9]*(?:[.,](?P<fraction>[0-9]*))?", re.ASCII)
DAY_LIMIT = Decimal(24)

# A person's activity splits into runs wherever two consecutive active days
# are more than ISOLATION_GAP apart. A run holding less than ISOLATION_SHARE
# of the person's rows is flagged isolated_timestamp: it sits far from
# everything else the person logged, like a batch stamped years off.
ISOLATION_GAP = dt.timedelta(days=60)
ISOLATION_SHARE = 0.05

# Caches keyed by raw text are emptied past this many entries, so that a file
# of unique values cannot grow them without bound.
_CACHE_LIMIT = 100_000
_CACHE_KEY_LIMIT = 256

# Row: (line, user, checkin_at, hours, project, stamp_format, minute_precision,
#       fixes, checkin_minute), the outcome of the rules that look at one row
# only. checkin_minute is checkin_at cut to the minute, in UTC, which recovery
# leaves as it is.
Row = tuple[
    int, str, dt.datetime, Decimal, str, str, bool, tuple[str, ...], dt.datetime
]

# Record: (line, user, checkin_at, hours, project, stamp_format,
#          minute_precision, fixes, flags, occurrence, checkin_minute), ready to
#          store.
Record = tuple[
    int,
    str,
    dt.datetime,
    Decimal,
    str,
    str,
    bool,
    tuple[str, ...],
    tuple[str, ...],
    int,
    dt.datetime,
]

# A parsed stamp: instant, form, minute precision, the fixes it needed and
# the instant cut to the minute.
_Stamp = tuple[dt.datetime, StampFormat, bool, tuple[str, ...], dt.datetime]

_MINUTE = dt.timedelta(minutes=1)
_NO_FIX: tuple[str, ...] = ()
_USER_FIX = (Fix.USER_NORMALISED.value,)
_STAMP_FIX = (Fix.TIMESTAMP_NORMALISED.value,)
_HOURS_FIX = (Fix.HOURS_NORMALISED.value,)
_RECOVERED_FIX = Fix.PRECISION_RECOVERED.value
_REPEATED = Flag.REPEATED_ENTRY.value
_DAY_OVER = Flag.DAY_OVER_24H.value
_ISOLATED = Flag.ISOLATED_TIMESTAMP.value
_ISO = StampFormat.ISO.value


class RowCleaner:
    """Validates and normalises single rows, caching the work on repeated text.

    Exports repeat the same few users, projects and hours, and every row of a
    batch shares one stamp, so each distinct text is cleaned once.
    """

    def __init__(self, aliases: ProjectAliases | None = None) -> None:
        self.aliases = ProjectAliases.shipped() if aliases is None else aliases
        self._users: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._projects: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._hours: dict[
            str, tuple[Decimal, tuple[str, ...]] | tuple[Reason, str]
        ] = {}
        self._stamps: dict[str, _Stamp | str] = {}
        # Valid results only, keyed by raw text, for Cleaning.read's fast path:
        # users, hours and projects with their fixes, and stamps as (instant,
        # form name, minute precision, fixes, minute).
        self.valid_users: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.valid_hours: dict[str, tuple[Decimal, tuple[str, ...]]] = {}
        self.valid_projects: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.valid_stamps: dict[
            str, tuple[dt.datetime, str, bool, tuple[str, ...], dt.datetime]
        ] = {}

    def clean(self, row: RawRow) -> Row | Quarantined:
        """Return the cleaned row, or the row quarantined with its reason."""
        if row.problem is not None:
            return _quarantine(row, Reason.MALFORMED_RECORD, row.problem)

        # The stamp is parsed first so that its form is counted for every row,
        # quarantined or not.
        stamp = self._stamps.get(row.timestamp)
        if stamp is None:
            stamp = self._parse_stamp(row.timestamp)
        stamp_format = None if isinstance(stamp, str) else stamp[1]

        user = self._users.get(row.user)
        if user is None:
            user = _remember(self._users, row.user, _clean_user(row.user))
        if type(user[0]) is Reason:
            return _quarantine(row, user[0], user[1], stamp_format)

        if isinstance(stamp, str):
            reason = (
                Reason.INVALID_TIMESTAMP
                if row.timestamp.strip()
                else Reason.MISSING_TIMESTAMP
            )
            return _quarantine(row, reason, stamp)

        hours = self._hours.get(row.hours)
        if hours is None:
            hours = _remember(self._hours, row.hours, _clean_hours(row.hours))
        if isinstance(hours[0], Reason):
            return _quarantine(row, hours[0], hours[1], stamp_format)

        project = self._projects.get(row.project)
        if project is None:
            project = _remember(
                self._projects, row.project, _clean_project(row.project, self.aliases)
            )
        if type(project[0]) is Reason:
            return _quarantine(row, project[0], project[1], stamp_format)

        _remember(self.valid_users, row.user, user)
        _remember(self.valid_hours, row.hours, hours)
        _remember(self.valid_projects, row.project, project)
        _remember(
            self.valid_stamps,
            row.timestamp,
            (stamp[0], stamp_format.value, stamp[2], stamp[3], stamp[4]),
        )
        fixes = user[1] + stamp[3] + hours[1] + project[1]
        return (
            row.line,
            user[0],
            stamp[0],
            hours[0],
            project[0],
            stamp_format.value,
            stamp[2],
            fixes,
            stamp[4],
        )

    def export_stamp(
        self, text: str
    ) -> tuple[dt.datetime, str, bool, tuple[str, ...], dt.datetime] | None:
        """Return the valid stamp of `text` in the export's usual form, or None.

        None stands for any other text, which clean() parses.
        """
        export_iso = parse_export_iso(text)
        if export_iso is None:
            return None
        instant, truncated = export_iso
        fixes = _STAMP_FIX if truncated else _NO_FIX
        minute = _minute_of(instant)
        _remember(self._stamps, text, (instant, StampFormat.ISO, False, fixes, minute))
        return _remember(self.valid_stamps, text, (instant, _ISO, False, fixes, minute))

    def _parse_stamp(self, text: str) -> "_Stamp | str":
        if (export_iso := parse_export_iso(text)) is not None:
            # The export's usual form, without building a ParsedStamp.
            instant, truncated = export_iso
            stamp = (
                instant,
                StampFormat.ISO,
                False,
                _STAMP_FIX if truncated else _NO_FIX,
                _minute_of(instant),
            )
            return _remember(self._stamps, text, stamp)
        if not text.strip():
            return _remember(self._stamps, text, "timestamp is empty")
        try:
            parsed = parse_timestamp(text)
        except TimestampError as error:
            return _remember(self._stamps, text, str(error))
        normalised = (
            parsed.stamp_format is not StampFormat.ISO
            or parsed.had_offset
            or parsed.truncated
        )
        stamp = (
            parsed.instant,
            parsed.stamp_format,
            parsed.minute_precision,
            _STAMP_FIX if normalised else _NO_FIX,
            _minute_of(parsed.instant),
        )
        return _remember(self._stamps, text, stamp)


def _minute_of(instant: dt.datetime) -> dt.datetime:
    """Return the UTC `instant` cut to the minute, the same object when it is one."""
    if instant.second or instant.microsecond:
        return instant.replace(second=0, microsecond=0)
    return instant


def _remember(cache: dict, key: str, value):
    # Long texts are rare and would make the cache large, so they are not kept.
    if len(key) > _CACHE_KEY_LIMIT:
        return value
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def _clean_user(text: str) -> tuple[str, tuple[str, ...]] | tuple[Reason, str]:
    user = normalise_name(text)
    if not user:
        return Reason.MISSING_USER, "user is empty"
    problem = _name_problem("user", user)
    if problem:
        return Reason.INVALID_USER, problem
    return user, _USER_FIX if user != text else _NO_FIX


def _clean_project(
    text: str, aliases: ProjectAliases
) -> tuple[str, tuple[str, ...]] | tuple[Reason, str]:
    project = normalise_name(text)
    if not project:
        return Reason.MISSING_PROJECT, "project is empty"
    problem = _name_problem("project", project)
    if problem:
        return Reason.INVALID_PROJECT, problem
    fixes = _NO_FIX
    if project != text:
        fixes = (Fix.PROJECT_NORMALISED.value,)
    canonical = aliases.canonical(project)
    if canonical is not None:
        return canonical, fixes + (Fix.PROJECT_ALIAS.value,)
    return project, fixes


def _name_problem(field: str, name: str) -> str | None:
    """Describe what makes a normalised name unstorable, or return None."""
    if len(name) > MAX_NAME_LENGTH:
        return f"{field} is {len(name):,} characters long, over {MAX_NAME_LENGTH}"
    # Control characters, NUL included, never belong in a name; PostgreSQL
    # cannot store NUL at all. normalise_name has already folded line breaks
    # and tabs into spaces.
    for character in name:
        if unicodedata.category(character) == "Cc":
            return (
                f"{field} {_shorten(name)!r} contains the control character "
                f"U+{ord(character):04X}"
            )
    return None


def _shorten(text: str) -> str:
    return text if len(text) <= 60 else text[:60] + "..."


def _clean_hours(
    text: str,
) -> tuple[Decimal, tuple[str, ...]] | tuple[Reason, str]:
    stripped = text.strip()
    if not stripped:
        return Reason.MISSING_HOURS, "hours is empty"
    match = _HOURS.fullmatch(stripped)
    if match is None:
        return (
            Reason.INVALID_HOURS,
            f"hours {_shorten(text)!r} is not a number such as 7.5",
        )
    if len(match["fraction"] or "") > MAX_HOURS_DECIMALS:
        return (
            Reason.INVALID_HOURS,
            f"hours {_shorten(text)!r} has more than {MAX_HOURS_DECIMALS} decimal "
            "places",
        )
    # A decimal comma ("7,5") comes from spreadsheets in many locales.
    comma = "," in stripped
    hours = Decimal(stripped.replace(",", ".") if comma else stripped)
    if hours <= 0:
        return Reason.HOURS_NOT_POSITIVE, f"hours {text!r} is not above 0"
    if hours > MAX_HOURS:
        return Reason.HOURS_OVER_24, f"hours {text!r} is over {MAX_HOURS}"
    return hours, _HOURS_FIX if comma else _NO_FIX


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


def finish_person(rows: list[Row]) -> list[Record]:
    """Apply the rules that need all of one person's rows, in the order given.

    Minute-precision stamps are recovered from the batch, identical rows are
    numbered, and rows are flagged.

    The flags of stored rows are worked out again by `flag_stored_rows` when a
    later load changes the person's rows.
    """
    rows = _recover_precision(rows)

    # Rows of a batch share one stamp, so dates are computed once a stamp.
    day_of: dict[dt.datetime, dt.date] = {}
    day_hours: dict[dt.date, Decimal] = {}
    for row in rows:
        at = row[2]
        day = day_of.get(at)
        if day is None:
            day = day_of[at] = at.date()
        day_hours[day] = day_hours.get(day, 0) + row[3]
    long_days = {day for day, hours in day_hours.items() if hours > DAY_LIMIT}
    isolated_days = _isolated_days(rows, day_of)
    flagged_days = long_days | isolated_days

    # Identity numbers rows by the minute of their stamp: every stamp form
    # shows it, and recovery keeps it. The repeated_entry flag compares whole
    # stamps, kept per identity with the rows' minute, hours and project.
    # NOTE: rows of one minute with the same hours and project are numbered
    # in file order. When a later snapshot drops one of them, the row kept may
    # be the one with the other's seconds.
    stamps_by_identity: dict[tuple, list[dt.datetime]] = {}
    records = []
    append = records.append
    for row in rows:
        identity = (row[8], row[3], row[4])
        stamps = stamps_by_identity.get(identity)
        if stamps is None:
            stamps_by_identity[identity] = [row[2]]
            occurrence = 0
            repeated = False
        else:
            occurrence = len(stamps)
            repeated = row[2] in stamps
            stamps.append(row[2])
        flags = _NO_FIX
        if repeated or flagged_days:
            day = day_of[row[2]]
            if repeated:
                flags = (_REPEATED,)
            if day in long_days:
                flags += (_DAY_OVER,)
            if day in isolated_days:
                flags += (_ISOLATED,)
        append(row[:8] + (flags, occurrence, row[8]))
    return records


def _recover_precision(rows: list[Row]) -> list[Row]:
    """Give minute-precision stamps the full stamp of their batch.

    A batch of one person shares one stamp. When exactly one distinct
    full-precision stamp of the person falls in a row's minute, that stamp is
    the row's true one. With none or several, the row keeps its minute.

    NOTE: only the rows of one file are searched, so a stored row keeps its
    minute when a later file brings the full stamp of its batch.
    """
    if not any(row[6] for row in rows):
        return rows
    full_stamps = sorted({row[2] for row in rows if not row[6]})
    recovered = []
    for row in rows:
        if row[6]:
            start = bisect.bisect_left(full_stamps, row[2])
            end = bisect.bisect_left(full_stamps, row[2] + _MINUTE, start)
            if end - start == 1:
                row = (
                    *row[:2],
                    full_stamps[start],
                    *row[3:6],
                    False,
                    row[7] + (_RECOVERED_FIX,),
                    row[8],
                )
        recovered.append(row)
    return recovered


def _isolated_days(rows: list[Row], day_of: dict[dt.datetime, dt.date]) -> set[dt.date]:
    """Return the days of runs of activity far from the rest of the person's."""
    return _isolated_runs(collections.Counter(day_of[row[2]] for row in rows))


def _isolated_runs(rows_per_day: collections.Counter[dt.date]) -> set[dt.date]:
    """Return the days of runs that hold too small a share of the person's rows."""
    days = sorted(rows_per_day)
    runs = [[days[0]]] if days else []
    for previous, day in zip(days, days[1:], strict=False):
        if day - previous > ISOLATION_GAP:
            runs.append([day])
        else:
            runs[-1].append(day)
    if len(runs) < 2:
        return set()
    total = rows_per_day.total()
    isolated = set()
    for run in runs:
        if sum(rows_per_day[day] for day in run) < ISOLATION_SHARE * total:
            isolated.update(run)
    return isolated


def flag_stored_rows(
    rows: Iterable[tuple[int, dt.datetime, Decimal, str]],
) -> dict[int, tuple[str, ...]]:
    """Return the flags of one person's current stored rows, by row id.

    `rows` are (id, UTC stamp, hours, project). They get the flags that
    `finish_person` gives the rows of one file, with the stored rows of every
    load taken together: a row is repeated when a row with a lower id has the
    same stamp, hours and project.
    """
    rows = sorted(rows)
    day_hours: dict[dt.date, Decimal] = {}
    rows_per_day: collections.Counter[dt.date] = collections.Counter()
    for _, at, hours, _ in rows:
        day = at.date()
        day_hours[day] = day_hours.get(day, 0) + hours
        rows_per_day[day] += 1
    long_days = {day for day, hours in day_hours.items() if hours > DAY_LIMIT}
    isolated_days = _isolated_runs(rows_per_day)

    seen: set[tuple[dt.datetime, Decimal, str]] = set()
    flags_by_id = {}
    for row_id, at, hours, project in rows:
        content = (at, hours, project)
        flags = (_REPEATED,) if content in seen else _NO_FIX
        seen.add(content)
        day = at.date()
        if day in long_days:
            flags += (_DAY_OVER,)
        if day in isolated_days:
            flags += (_ISOLATED,)
        flags_by_id[row_id] = flags
    return flags_by_id


class Cleaning:
    """One cleaning run over a file: read every row, then finish person by person.

    `read` applies the single-row rules and yields quarantined rows as they are
    found. `people` then applies each person's rules and yields that person's
    records. Each person's rules need all of that person's rows, so rows wait
    until the file is read. Up to `max_rows_in_memory` rows wait in memory.
    Beyond that, all rows go to temporary files, one per group of people, so
    memory stays flat however large the file is. `progress`, when given, is
    called with the number of rows read so far when reading starts and every
    65,536 rows.
    """

    PROGRESS_EVERY = 1 << 16
    MAX_ROWS_IN_MEMORY = 1_000_000

    def __init__(
        self,
        aliases: ProjectAliases | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        max_rows_in_memory: int = MAX_ROWS_IN_MEMORY,
    ) -> None:
        self.cleaner = RowCleaner(aliases)
        self.progress = progress
        self.max_rows_in_memory = max_rows_in_memory
        self.rows_read = 0
        self._by_person: dict[str, list[Row]] = collections.defaultdict(list)
        self._spill: _Spill | None = None

    def read(self, rows: Iterable[RawRow]) -> Iterator[Quarantined]:
        """Clean each row on its own; yield the quarantined ones."""
        cleaner = self.cleaner
        clean_row = cleaner.clean
        users = cleaner.valid_users
        stamps = cleaner.valid_stamps
        hours_of = cleaner.valid_hours
        projects = cleaner.valid_projects
        by_person = self._by_person
        count = self.rows_read
        rows_held = 0
        if self.progress is not None:
            self.progress(count)
        for raw in rows:
            count += 1
            if not count % self.PROGRESS_EVERY:
                if self.progress is not None:
                    self.progress(count)
                if rows_held > self.max_rows_in_memory:
                    self._spill_rows()
                    rows_held = 0
            # The fast path: every field is text already cleaned without a
            # problem, so the row is built from the caches as clean() would.
            user = users.get(raw[2])
            stamp = stamps.get(raw[3])
            if stamp is None:
                # Stamps repeat only within a batch, so a new one is common.
                stamp = cleaner.export_stamp(raw[3])
            hours = hours_of.get(raw[4])
            project = projects.get(raw[5])
            if (
                user is not None
                and stamp is not None
                and hours is not None
                and project is not None
                and raw[6] is None
            ):
                instant = stamp[0]
                row = (
                    raw[0],
                    user[0],
                    instant,
                    hours[0],
                    project[0],
                    stamp[1],
                    stamp[2],
                    user[1] + stamp[3] + hours[1] + project[1],
                    stamp[4],
                )
            else:
                row = clean_row(raw)
                if type(row) is not tuple:
                    yield row
                    continue
            people_rows = by_person.get(row[1])
            if people_rows is None:
                by_person[row[1]] = [row]
            else:
                people_rows.append(row)
            rows_held += 1
        self.rows_read = count

    def people(self) -> Iterator[list[Record]]:
        """Yield each person's finished records, in the order people first appear.

        Each person's rows are released once their records are yielded. After
        a spill, people come group by group instead.
        """
        if self._spill is not None:
            self._spill_rows()
            spill, self._spill = self._spill, None
            for group in spill.groups():
                for rows in group.values():
                    yield finish_person(rows)
            return
        by_person = self._by_person
        for person in list(by_person):
            yield finish_person(by_person.pop(person))

    def _spill_rows(self) -> None:
        if self._spill is None:
            self._spill = _Spill()
        self._spill.write(self._by_person)
        self._by_person.clear()


class _Spill:
    """Rows kept in temporary files, grouped by a hash of the person's name.

    NOTE: a group comes back into memory whole, so memory grows with the rows
    of the person who has the most.

    On POSIX systems tempfile unlinks each file as soon as it is created, so
    nothing is left on disk when the process ends, even when it is killed.
    """

    GROUPS = 64

    def __init__(self) -> None:
        # The files live until `groups` has read them, past any one block.
        self._files = [
            tempfile.TemporaryFile()  # noqa: SIM115
            for _ in range(self.GROUPS)
        ]

    def write(self, by_person: dict[str, list[Row]]) -> None:
        chunks: list[list[Row]] = [[] for _ in range(self.GROUPS)]
        for person, rows in by_person.items():
            chunks[hash(person) % self.GROUPS].extend(rows)
        for file, chunk in zip(self._files, chunks, strict=True):
            if chunk:
                pickle.dump(chunk, file, protocol=pickle.HIGHEST_PROTOCOL)

    def groups(self) -> Iterator[dict[str, list[Row]]]:
        """Yield each group's rows by person, then close its file."""
        for file in self._files:
            by_person: dict[str, list[Row]] = collections.defaultdict(list)
            file.seek(0)
            while True:
                try:
                    chunk = pickle.load(file)
                except EOFError:
                    break
                for row in chunk:
                    by_person[row[1]].append(row)
            file.close()
            yield by_person


def clean(
    rows: Iterable[RawRow], aliases: ProjectAliases | None = None
) -> Iterator[Outcome]:
    """Clean `rows` and yield one `CheckIn` or `Quarantined` per row, in line order.

    This is the library entry point: it needs no database. Each raw row is a
    `RawRow(line, text, user, timestamp, hours, project)`.
    """
    cleaning = Cleaning(aliases)
    outcomes: list[Outcome] = list(cleaning.read(rows))
    for records in cleaning.people():
        outcomes.extend(to_checkin(record) for record in records)
    outcomes.sort(key=lambda outcome: outcome.line)
    yield from outcomes


def to_checkin(record: Record) -> CheckIn:
    """Build the `CheckIn` of a stored-ready record."""
    (
        line,
        user,
        at,
        hours,
        project,
        stamp_format,
        minute,
        fixes,
        flags,
        occurrence,
        _,
    ) = record
    return CheckIn(
        line=line,
        user=user,
        checkin_at=at,
        hours=hours,
        project=project,
        stamp_format=StampFormat(stamp_format),
        minute_precision=minute,
        fixes=frozenset(Fix(fix) for fix in fixes),
        flags=frozenset(Flag(flag) for flag in flags),
        occurrence=occurrence,
    )
