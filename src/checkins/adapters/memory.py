"""An in-memory repository and queries with the same behaviour as PostgreSQL's."""

import contextlib
import datetime as dt
import zoneinfo
from collections.abc import Iterator

import attrs

from checkins.domain.cleaning import Record, flag_stored_rows
from checkins.domain.model import Quarantined
from checkins.domain.queries import (
    CheckinPage,
    CheckinQuery,
    InvalidTimeZoneError,
    Position,
    ProjectTotals,
    RenderedPage,
    StoredCheckin,
    SummaryGroup,
    SummaryQuery,
    UnknownUserError,
    UserTotals,
    group_key,
    render_checkins_json,
)
from checkins.domain.report import LoadReport, StoredLoad
from checkins.ports import (
    AlreadyLoadedError,
    CheckinQueries,
    CheckinRepository,
    LoadWriter,
)


class InMemoryCheckinRepository(CheckinRepository):
    """Stored check-ins in plain lists, for the core's unit tests.

    `checkins` contains the current rows as (row, identity, load id) and
    `retired` the rows a snapshot load retired, with that load's id.
    """

    def __init__(self) -> None:
        self.checkins: list[tuple[StoredCheckin, tuple, int]] = []
        self.retired: list[tuple[StoredCheckin, tuple, int, int]] = []
        self.quarantined: list[tuple[int, Quarantined]] = []
        self.loads: list[StoredLoad] = []
        self.reports: dict[int, dict] = {}
        self._next_id = 1

    def migrate(self) -> list[str]:
        return []

    def loaded_sha256s(self) -> set[str]:
        return {load.sha256 for load in self.loads}

    def list_loads(self) -> list[StoredLoad]:
        return list(self.loads)

    def load_report(self, load_id: int | None = None) -> dict | None:
        if load_id is None:
            return self.reports[self.loads[-1].id] if self.loads else None
        return self.reports.get(load_id)

    @contextlib.contextmanager
    def load(
        self,
        source: str,
        sha256: str,
        started_at: dt.datetime,
        *,
        mode: str = "append",
        window: tuple[dt.datetime, dt.datetime] | None = None,
        skip_loaded: bool = False,
    ) -> Iterator[LoadWriter]:
        if skip_loaded and sha256 in self.loaded_sha256s():
            raise AlreadyLoadedError(source, sha256)
        writer = _InMemoryLoadWriter(self, source, sha256, started_at, mode, window)
        yield writer
        if not writer.finished:
            raise RuntimeError("a load block ended without calling finish()")
        writer.commit()


class _InMemoryLoadWriter(LoadWriter):
    """Stages a load's rows and applies them all at commit, as a transaction would."""

    def __init__(
        self,
        repository: InMemoryCheckinRepository,
        source: str,
        sha256: str,
        started_at: dt.datetime,
        mode: str,
        window: tuple[dt.datetime, dt.datetime] | None,
    ) -> None:
        self.repository = repository
        self.source = source
        self.sha256 = sha256
        self.started_at = started_at
        self.mode = mode
        self.window = window
        self.load_id = len(repository.loads) + 1
        self.records: list[Record] = []
        self.quarantined: list[Quarantined] = []
        self.finished = False
        self._load: StoredLoad | None = None
        self._report: dict | None = None
        self._window: tuple[dt.datetime, dt.datetime] | None = None

    def add_records(self, records: list[Record]) -> None:
        self.records.extend(records)

    def add_quarantined(self, rows: list[Quarantined]) -> None:
        self.quarantined.extend(rows)

    def finish(self, report: LoadReport, finished_at: dt.datetime) -> None:
        repository = self.repository
        current = {key for _, key, _ in repository.checkins}
        retired = {key for _, key, _, _ in repository.retired}
        file_keys = {_identity(record) for record in self.records}
        inserted = sum(
            1 for key in file_keys if key not in current and key not in retired
        )

        retiring = 0
        window = self.window or report.window
        if self.mode == "snapshot" and window is not None:
            low, high = window
            retiring = sum(
                1
                for row, key, _ in repository.checkins
                if low <= row.checkin_at <= high and key not in file_keys
            )
        self._window = window

        report.load_id = self.load_id
        report.rows_inserted = inserted
        report.rows_retired = retiring
        report.rows_revived = sum(
            1 for _, key, _, _ in repository.retired if key in file_keys
        )

        self._load = StoredLoad(
            id=self.load_id,
            source=self.source,
            sha256=self.sha256,
            mode=self.mode,
            started_at=self.started_at,
            finished_at=finished_at,
            rows_read=report.rows_read,
            rows_loaded=report.rows_loaded,
            rows_quarantined=report.rows_quarantined,
            rows_inserted=inserted,
            rows_retired=retiring,
            rows_revived=report.rows_revived,
        )
        self._report = report.to_dict()
        self.finished = True

    def commit(self) -> None:
        """Apply the finished load to the repository."""
        assert self._load is not None
        repository = self.repository
        file_keys = {_identity(record) for record in self.records}
        revived = [row for row in repository.retired if row[1] in file_keys]
        repository.retired = [
            row for row in repository.retired if row[1] not in file_keys
        ]
        repository.checkins.extend(row[:3] for row in revived)
        changed_users = {record[1] for record in self.records}
        changed_users.update(row[0].user for row in revived)
        if self.mode == "snapshot" and self._window is not None:
            low, high = self._window
            keep = []
            for row in repository.checkins:
                if low <= row[0].checkin_at <= high and row[1] not in file_keys:
                    repository.retired.append((*row, self.load_id))
                    changed_users.add(row[0].user)
                else:
                    keep.append(row)
            repository.checkins = keep

        stored = {key for _, key, _ in repository.checkins}
        for record in self.records:
            key = _identity(record)
            if key in stored:
                continue
            stored.add(key)
            row = StoredCheckin(
                id=repository._next_id,
                user=record[1],
                checkin_at=record[2],
                hours=record[3],
                project=record[4],
                flags=record[8],
            )
            repository._next_id += 1
            repository.checkins.append((row, key, self.load_id))
        repository.quarantined.extend((self.load_id, row) for row in self.quarantined)
        repository.loads.append(self._load)
        repository.reports[self.load_id] = self._report
        _reflag(repository, changed_users)


def _reflag(repository: InMemoryCheckinRepository, users: set[str]) -> None:
    """Work out again the flags of the current rows of `users`."""
    by_user: dict[str, list[StoredCheckin]] = {}
    for row, _, _ in repository.checkins:
        if row.user in users:
            by_user.setdefault(row.user, []).append(row)
    flags: dict[int, tuple[str, ...]] = {}
    for rows in by_user.values():
        flags |= flag_stored_rows(
            (row.id, row.checkin_at, row.hours, row.project) for row in rows
        )
    repository.checkins = [
        (attrs.evolve(row, flags=flags[row.id]), key, load_id)
        if row.id in flags
        else (row, key, load_id)
        for row, key, load_id in repository.checkins
    ]


def _identity(record: Record) -> tuple:
    return (record[1], record[10], record[3], record[4], record[9])


class InMemoryCheckinQueries(CheckinQueries):
    """Queries over an in-memory repository's current rows."""

    def __init__(self, repository: InMemoryCheckinRepository) -> None:
        self.repository = repository

    def list_users(self) -> list[UserTotals]:
        by_user: dict[str, list[StoredCheckin]] = {}
        for checkin, _, _ in self.repository.checkins:
            by_user.setdefault(checkin.user, []).append(checkin)
        return [
            UserTotals(
                user=user,
                checkins=len(rows),
                hours=sum((row.hours for row in rows), start=rows[0].hours * 0),
                first_checkin_at=min(row.checkin_at for row in rows),
                last_checkin_at=max(row.checkin_at for row in rows),
            )
            for user, rows in sorted(by_user.items())
        ]

    def user_checkins(self, query: CheckinQuery) -> CheckinPage:
        rows = self._rows_of(query.user)
        rows = sorted(
            (row for row in rows if _matches(row, query)),
            key=lambda row: (row.checkin_at, row.id),
        )
        page = rows[: query.limit]
        more = len(rows) > query.limit
        last = page[-1] if page and more else None
        return CheckinPage(
            checkins=page,
            next_position=Position(last.checkin_at, last.id) if last else None,
        )

    def render_user_checkins(
        self, query: CheckinQuery, *, with_version: bool = False
    ) -> RenderedPage:
        page = self.user_checkins(query)
        return RenderedPage(
            checkins_json=render_checkins_json(page.checkins).encode(),
            next_position=page.next_position,
            data_version=self.data_version() if with_version else None,
        )

    def summarize(self, query: SummaryQuery) -> list[SummaryGroup]:
        try:
            zone = zoneinfo.ZoneInfo(query.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InvalidTimeZoneError(query.time_zone) from None
        groups: dict[str, list[StoredCheckin]] = {}
        for row in self._rows_of(query.user):
            day = row.checkin_at.astimezone(zone).date()
            if query.first_day and day < query.first_day:
                continue
            if query.last_day and day > query.last_day:
                continue
            groups.setdefault(group_key(row, query.by, zone), []).append(row)
        return [
            SummaryGroup(
                key=key,
                checkins=len(rows),
                hours=sum((row.hours for row in rows), start=rows[0].hours * 0),
            )
            for key, rows in sorted(groups.items())
        ]

    def list_projects(self) -> list[ProjectTotals]:
        by_project: dict[str, list[StoredCheckin]] = {}
        for checkin, _, _ in self.repository.checkins:
            by_project.setdefault(checkin.project, []).append(checkin)
        return [
            ProjectTotals(
                project=project,
                checkins=len(rows),
                hours=sum((row.hours for row in rows), start=rows[0].hours * 0),
                users=len({row.user for row in rows}),
            )
            for project, rows in sorted(by_project.items())
        ]

    def data_version(self) -> int:
        return max((load.id for load in self.repository.loads), default=0)

    def check(self, timeout: float | None = None) -> None:
        return None

    def _rows_of(self, user: str) -> list[StoredCheckin]:
        rows = [c for c, _, _ in self.repository.checkins if c.user == user]
        if not rows:
            raise UnknownUserError(user)
        return rows


def _matches(row: StoredCheckin, query: CheckinQuery) -> bool:
    day = row.checkin_at.astimezone(dt.UTC).date()
    if query.first_day and day < query.first_day:
        return False
    if query.last_day and day > query.last_day:
        return False
    if query.project and row.project != query.project:
        return False
    if query.after is None:
        return True
    return (row.checkin_at, row.id) > (query.after.checkin_at, query.after.id)
