"""The in-memory queries behind the HTTP layer's unit tests."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from falcon import testing

from checkins.adapters.memory import InMemoryCheckinQueries, InMemoryCheckinRepository
from checkins.domain.queries import (
    CheckinQuery,
    Grouping,
    InvalidTimeZoneError,
    ProjectTotals,
    StoredCheckin,
    SummaryGroup,
    SummaryQuery,
    UnknownUserError,
)
from checkins.entrypoints.http import create_app


def stamp(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


ROWS = [
    StoredCheckin(1, "dana", stamp("2018-11-12T16:30:52"), Decimal("3"), "hiring"),
    StoredCheckin(2, "dana", stamp("2018-11-12T15:59:59"), Decimal("1.5"), "hiring"),
    StoredCheckin(3, "dana", stamp("2018-11-11T23:00:00"), Decimal("2"), "blogideas"),
    StoredCheckin(4, "eve", stamp("2018-11-12T10:00:00.5"), Decimal("8"), "hiring"),
]


@pytest.fixture(name="queries")
def fixture_queries():
    repository = InMemoryCheckinRepository()
    repository.checkins.extend((row, (row.id,), 1) for row in ROWS)
    return InMemoryCheckinQueries(repository)


def test_summary_by_day_in_manila(queries):
    query = SummaryQuery("dana", Grouping.DAY, time_zone="Asia/Manila")

    assert queries.summarize(query) == [
        SummaryGroup("2018-11-12", 2, Decimal("3.5")),
        SummaryGroup("2018-11-13", 1, Decimal("3")),
    ]


def test_summary_by_week_in_utc(queries):
    query = SummaryQuery("dana", Grouping.WEEK)

    assert queries.summarize(query) == [
        SummaryGroup("2018-W45", 1, Decimal("2")),
        SummaryGroup("2018-W46", 2, Decimal("4.5")),
    ]


def test_summary_days_filter_in_zone(queries):
    query = SummaryQuery(
        "dana",
        Grouping.MONTH,
        time_zone="Asia/Manila",
        first_day=dt.date(2018, 11, 13),
        last_day=dt.date(2018, 11, 13),
    )

    assert queries.summarize(query) == [SummaryGroup("2018-11", 1, Decimal("3"))]


def test_summary_rejects_unknown_zone(queries):
    with pytest.raises(InvalidTimeZoneError):
        queries.summarize(SummaryQuery("dana", Grouping.DAY, time_zone="Mars/Base"))


def test_summary_rejects_unknown_user(queries):
    with pytest.raises(UnknownUserError):
        queries.summarize(SummaryQuery("zed", Grouping.DAY))


def test_projects_count_users(queries):
    assert queries.list_projects() == [
        ProjectTotals("blogideas", 1, Decimal("2"), 1),
        ProjectTotals("hiring", 3, Decimal("12.5"), 2),
    ]


def test_rendered_page_matches_rows(queries):
    page = queries.render_user_checkins(CheckinQuery("eve"))

    assert json.loads(page.checkins_json) == [
        {
            "id": 4,
            "user": "eve",
            "checkin_at": "2018-11-12T10:00:00.500000Z",
            "hours": 8,
            "project": "hiring",
            "flags": [],
        }
    ]
    assert page.next_position is None


def test_app_serves_in_memory_summary(queries):
    client = testing.TestClient(create_app(queries))

    result = client.simulate_get("/users/dana/summary", params={"by": "project"})

    assert result.status_code == 200
    assert result.json["groups"] == [
        {"group": "blogideas", "checkins": 1, "hours": 2},
        {"group": "hiring", "checkins": 2, "hours": 4.5},
    ]
