"""An in-memory repository and queries with the same behaviour as PostgreSQL's."""

import contextlib
import datetime as dt
from collections.abc import Iterator

import attrs

from checkins.domain.model import CheckIn, Outcome, Quarantined
from checkins.domain.queries import (
    CheckinPage,
    CheckinQuery,
    Position,
    StoredCheckin,
    UnknownUserError,
    UserTotals,
)
from checkins.domain.report import LoadReport
from checkins.ports import CheckinQueries, CheckinRepository, LoadWriter


@attrs.frozen
class StoredLoad:
    """A finished load as the repository keeps it."""

    id: int
    source: str
    sha256: str
    started_at: dt.datetime
    finished_at: dt.datetime
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_inserted: int


class InMemoryCheckinRepository(CheckinRepository):
    """Stored check-ins in plain lists, for the core's unit tests."""

    def __init__(self) -> None:
        self.checkins: list[tuple[StoredCheckin, bytes, int]] = []
        self.quarantined: list[tuple[int, Quarantined]] = []
        self.loads: list[StoredLoad] = []
        self._keys: set[bytes] = set()

    def migrate(self) -> list[str]:
        return []

    @contextlib.contextmanager
    def load(
        self, source: str, sha256: str, started_at: dt.datetime
    ) -> Iterator[LoadWriter]:
        writer = _InMemoryLoadWriter(self, source, sha256, started_at)
        yield writer
        if not writer.finished:
            raise RuntimeError("a load block ended without calling finish()")
        writer.commit()


class _InMemoryLoadWriter(LoadWriter):
    def __init__(
        self,
        repository: InMemoryCheckinRepository,
        source: str,
        sha256: str,
        started_at: dt.datetime,
    ) -> None:
        self.repository = repository
        self.source = source
        self.sha256 = sha256
        self.started_at = started_at
        self.staged: list[Outcome] = []
        self.finished = False
        self._pending: tuple[StoredLoad, list[CheckIn]] | None = None

    def add(self, outcome: Outcome) -> None:
        self.staged.append(outcome)

    def finish(self, report: LoadReport, finished_at: dt.datetime) -> tuple[int, int]:
        load_id = len(self.repository.loads) + 1
        keys = set(self.repository._keys)
        new = []
        for outcome in self.staged:
            if isinstance(outcome, CheckIn) and outcome.row_key not in keys:
                keys.add(outcome.row_key)
                new.append(outcome)
        load = StoredLoad(
            id=load_id,
            source=self.source,
            sha256=self.sha256,
            started_at=self.started_at,
            finished_at=finished_at,
            rows_read=report.rows_read,
            rows_loaded=report.rows_loaded,
            rows_quarantined=report.rows_quarantined,
            rows_inserted=len(new),
        )
        self._pending = (load, new)
        self.finished = True
        return load_id, len(new)

    def commit(self) -> None:
        assert self._pending is not None
        load, new = self._pending
        repository = self.repository
        for checkin in new:
            stored = StoredCheckin(
                id=len(repository.checkins) + 1,
                user=checkin.user,
                checkin_at=checkin.checkin_at,
                hours=checkin.hours,
                project=checkin.project,
                flags=tuple(sorted(flag.value for flag in checkin.flags)),
            )
            repository.checkins.append((stored, checkin.row_key, load.id))
            repository._keys.add(checkin.row_key)
        repository.quarantined.extend(
            (load.id, outcome)
            for outcome in self.staged
            if isinstance(outcome, Quarantined)
        )
        repository.loads.append(load)


class InMemoryCheckinQueries(CheckinQueries):
    """Queries over an in-memory repository's rows."""

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
        rows = [c for c, _, _ in self.repository.checkins if c.user == query.user]
        if not rows:
            raise UnknownUserError(query.user)
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


def _matches(row: StoredCheckin, query: CheckinQuery) -> bool:
    day = row.checkin_at.date()
    if query.first_day and day < query.first_day:
        return False
    if query.last_day and day > query.last_day:
        return False
    if query.project and row.project != query.project:
        return False
    if query.after is None:
        return True
    return (row.checkin_at, row.id) > (query.after.checkin_at, query.after.id)
