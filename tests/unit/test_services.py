import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from checkins import services
from checkins.adapters.memory import InMemoryCheckinQueries, InMemoryCheckinRepository
from checkins.domain.model import RawRow
from checkins.domain.queries import CheckinQuery, Position, UnknownUserError
from checkins.ports import AlreadyLoadedError, CheckinSource, SourceError


class ListSource(CheckinSource):
    """Raw rows from a list, as if read from a file called `name`."""

    def __init__(self, lines: list[str], name: str = "test.csv") -> None:
        self.name = name
        self.lines = lines

    def sha256(self) -> str:
        return hashlib.sha256("\n".join(self.lines).encode()).hexdigest()

    def rows(self):
        for number, line in enumerate(self.lines, start=2):
            user, timestamp, hours, project = line.split(",")
            yield RawRow(number, line, user, timestamp, hours, project)


class BrokenSource(ListSource):
    """A source whose header check fails."""

    def rows(self):
        raise SourceError(f"{self.name}: not a check-in CSV")
        yield


LINES = [
    "ned,2018-11-26 14:47:36.0429 UTC,8.0,bizdev",
    "ned,11/26/2018 02:47 PM,1.5,hirng",
    "ned,2018-11-27 09:00:00 UTC,2.0,bizdev",
    "arya,2018-11-26 10:00:00 UTC,4.0,learning",
    ",2018-11-26 10:00:00 UTC,4.0,learning",
]


def fixed_clock():
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_ingest_reports_every_row():
    """The report counts each row once, by outcome, reason, fix and format."""
    repository = InMemoryCheckinRepository()

    report = services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    assert 5 == report.rows_read
    assert 4 == report.rows_loaded
    assert 1 == report.rows_quarantined
    assert 4 == report.rows_inserted
    assert {"missing_user": 1} == dict(report.reasons)
    assert {"iso": 4, "us": 1} == dict(report.formats)
    assert 1 == report.fixes["precision_recovered"]
    assert 1 == report.fixes["project_alias"]


def test_ingest_stores_rows_and_load():
    """Loaded rows, quarantined rows and the load record are all stored."""
    repository = InMemoryCheckinRepository()

    services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    assert 4 == len(repository.checkins)
    assert [(1, 6)] == [(load_id, q.line) for load_id, q in repository.quarantined]
    assert 1 == len(repository.loads)
    assert "test.csv" == repository.loads[0].source


def test_ingest_twice_adds_no_rows():
    """A second load of the same rows stores nothing new but is recorded."""
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    report = services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    assert 0 == report.rows_inserted
    assert 4 == len(repository.checkins)
    assert [1, 2] == [load.id for load in repository.loads]


# One check-in of ned's written to the second, then as an export writes it
# to the minute in the US form, beside a row that keeps its form.
SECOND_FORM = [
    "ned,2018-11-26 10:00:30.5 UTC,2,a",
    "ned,2018-11-26 10:00:30.5 UTC,3,b",
]
MINUTE_FORM = [
    "ned,2018-11-26 10:00:30.5 UTC,2,a",
    "ned,11/26/2018 10:00 AM,3,b",
]


def test_ingest_stamp_in_another_form_adds_no_rows():
    """A row written to the minute in a later export is the row stored before."""
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(SECOND_FORM), repository, clock=fixed_clock)

    report = services.ingest(ListSource(MINUTE_FORM), repository, clock=fixed_clock)

    assert 0 == report.rows_inserted
    queries = InMemoryCheckinQueries(repository)
    (ned,) = queries.list_users()
    assert (2, Decimal(5)) == (ned.checkins, ned.hours)


def test_ingest_numbers_rows_of_one_minute():
    """Rows 30 s apart with the same hours and project stay two, loaded twice."""
    lines = ["ned,2018-11-26 10:00:10 UTC,2,a", "ned,2018-11-26 10:00:40 UTC,2,a"]
    repository = InMemoryCheckinRepository()
    first = services.ingest(ListSource(lines), repository, clock=fixed_clock)

    again = services.ingest(ListSource(lines), repository, clock=fixed_clock)

    assert 2 == first.rows_inserted
    assert 0 == again.rows_inserted
    assert [(), ()] == [row.flags for row, _, _ in repository.checkins]


def test_ingest_skipping_loaded_files_raises_for_one():
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    with pytest.raises(AlreadyLoadedError) as raised:
        services.ingest(
            ListSource(LINES), repository, clock=fixed_clock, skip_loaded=True
        )

    assert str(raised.value).endswith(
        f": already loaded (sha256 {ListSource(LINES).sha256()[:12]})"
    )
    assert [1] == [load.id for load in repository.loads]


def test_ingest_bad_source_changes_nothing():
    """A source that fails its header check leaves the repository empty."""
    repository = InMemoryCheckinRepository()

    with pytest.raises(SourceError):
        services.ingest(BrokenSource(LINES), repository, clock=fixed_clock)

    assert [] == repository.checkins
    assert [] == repository.loads


class MalformedSource(ListSource):
    """The rows of LINES, then a record of too many fields."""

    def rows(self):
        yield from super().rows()
        yield RawRow(7, "ned,1,2,3,4", problem="expected 4 fields, found 5")


def test_snapshot_rejects_malformed_records():
    """A snapshot cannot tell which stored rows a malformed record holds."""
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    with pytest.raises(SourceError) as raised:
        services.ingest(
            MalformedSource(LINES, "broken.csv"),
            repository,
            clock=fixed_clock,
            mode="snapshot",
        )
    appended = services.ingest(
        MalformedSource(LINES, "broken.csv"), repository, clock=fixed_clock
    )

    assert str(raised.value) == (
        "broken.csv: 1 malformed record, the first on line 7 (expected 4 fields, "
        "found 5); a snapshot load would retire the stored copies of the rows in "
        "malformed records. Fix the file, or load it in append mode"
    )
    assert 2 == appended.rows_quarantined
    assert [1, 2] == [load.id for load in repository.loads]
    assert 4 == len(repository.checkins)


def test_list_users_totals():
    """Totals count and sum each user's stored rows."""
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    users = services.list_users(InMemoryCheckinQueries(repository))

    assert ["arya", "ned"] == [u.user for u in users]
    assert [1, 3] == [u.checkins for u in users]
    assert [Decimal("4.0"), Decimal("11.5")] == [u.hours for u in users]


def test_user_checkins_pages_in_order():
    """Pages follow stamp order and end with no next position."""
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    first = services.user_checkins(
        InMemoryCheckinQueries(repository), CheckinQuery("ned", limit=2)
    )
    after = first.next_position
    second = services.user_checkins(
        InMemoryCheckinQueries(repository), CheckinQuery("ned", limit=2, after=after)
    )

    assert [Decimal("8.0"), Decimal("1.5")] == [c.hours for c in first.checkins]
    assert Position(first.checkins[-1].checkin_at, first.checkins[-1].id) == after
    assert [Decimal("2.0")] == [c.hours for c in second.checkins]
    assert second.next_position is None


def test_user_checkins_filters_days_and_project():
    """Day bounds are inclusive and the project must match."""
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(LINES), repository, clock=fixed_clock)
    query = CheckinQuery(
        "ned",
        first_day=dt.date(2018, 11, 27),
        last_day=dt.date(2018, 11, 27),
        project="bizdev",
    )

    page = services.user_checkins(InMemoryCheckinQueries(repository), query)

    assert [dt.datetime(2018, 11, 27, 9, tzinfo=dt.UTC)] == [
        c.checkin_at for c in page.checkins
    ]


def test_user_checkins_unknown_user():
    """A user with no rows raises UnknownUserError."""
    repository = InMemoryCheckinRepository()
    services.ingest(ListSource(LINES), repository, clock=fixed_clock)

    with pytest.raises(UnknownUserError, match="user 'nobody' not found"):
        services.user_checkins(
            InMemoryCheckinQueries(repository), CheckinQuery("nobody")
        )
