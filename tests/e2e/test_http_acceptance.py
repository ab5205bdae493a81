"""Acceptance: summaries and projects of the real export, read over HTTP."""

import collections
import datetime as dt
import json
import zoneinfo
from decimal import Decimal

import falcon.testing
import jsonschema
import pytest
import referencing
import referencing.jsonschema

from checkins.adapters.postgres_queries import PostgresCheckinQueries
from checkins.entrypoints.http import create_app
from checkins.entrypoints.openapi import DOCUMENT


MANILA = zoneinfo.ZoneInfo("Asia/Manila")


@pytest.fixture(name="client", scope="module")
def fixture_client(module_database_url, real_export, run_cli):
    status, _, _ = run_cli(module_database_url, "load", str(real_export))
    assert 0 == status
    queries = PostgresCheckinQueries(module_database_url)
    yield falcon.testing.TestClient(create_app(queries))
    queries.close()


def exact_json(result):
    assert 200 == result.status_code, result.text
    return json.loads(result.text, parse_float=Decimal)


def all_checkins(client, user):
    rows = []
    cursor = None
    while True:
        params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
        page = exact_json(client.simulate_get(f"/users/{user}/checkins", params=params))
        rows.extend(page["checkins"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def parse_stamp(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_project_summary_sums_to_user_totals(client):
    """For every user, the groups by project add up to the user's totals."""
    users = exact_json(client.simulate_get("/users"))["users"]

    assert 40 == len(users)
    for user in users:
        summary = exact_json(
            client.simulate_get(f"/users/{user['user']}/summary?by=project")
        )
        groups = summary["groups"]
        assert user["checkins"] == sum(g["checkins"] for g in groups), user["user"]
        assert user["hours"] == sum(g["hours"] for g in groups), user["user"]


def test_manila_days_match_rows_in_manila(client):
    """For every user, the Manila day groups equal per-day sums of their rows."""
    users = [u["user"] for u in exact_json(client.simulate_get("/users"))["users"]]

    for user in users:
        expected: dict[str, list[Decimal]] = collections.defaultdict(list)
        for row in all_checkins(client, user):
            day = parse_stamp(row["checkin_at"]).astimezone(MANILA).date()
            expected[day.isoformat()].append(row["hours"])

        summary = exact_json(
            client.simulate_get(
                f"/users/{user}/summary", params={"by": "day", "tz": "Asia/Manila"}
            )
        )

        assert [
            {"group": day, "checkins": len(hours), "hours": sum(hours)}
            for day, hours in sorted(expected.items())
        ] == summary["groups"], user


def test_ned_evening_counts_on_next_manila_day(client):
    """ned's 3.0 hours at 2018-11-12T16:30:52Z fall on 2018-11-13 in Manila."""
    rows = [
        row
        for row in all_checkins(client, "ned")
        if row["checkin_at"].startswith("2018-11-12T16:30:52")
    ]
    manila = exact_json(
        client.simulate_get(
            "/users/ned/summary",
            params={
                "by": "day",
                "tz": "Asia/Manila",
                "from": "2018-11-12",
                "to": "2018-11-13",
            },
        )
    )
    utc = exact_json(
        client.simulate_get(
            "/users/ned/summary",
            params={"by": "day", "tz": "UTC", "from": "2018-11-12", "to": "2018-11-13"},
        )
    )

    assert Decimal("3.0") == sum(row["hours"] for row in rows)
    assert [
        {"group": "2018-11-12", "checkins": 3, "hours": Decimal("9.0")},
        {"group": "2018-11-13", "checkins": 2, "hours": Decimal("3.0")},
    ] == manila["groups"]
    assert [
        {"group": "2018-11-12", "checkins": 5, "hours": Decimal("12.0")},
    ] == utc["groups"]


def test_projects_sum_to_all_checkins(client):
    """The projects' check-ins and hours add up to the users' totals."""
    users = exact_json(client.simulate_get("/users"))["users"]
    projects = exact_json(client.simulate_get("/projects"))["projects"]

    assert sum(u["checkins"] for u in users) == sum(p["checkins"] for p in projects)
    assert sum(u["hours"] for u in users) == sum(p["hours"] for p in projects)
    assert 20_492 == sum(p["checkins"] for p in projects)
    assert all(1 <= p["users"] <= 40 for p in projects)


DOCUMENT_URI = "urn:checkins:openapi"
REGISTRY = referencing.Registry().with_resource(
    DOCUMENT_URI, referencing.jsonschema.DRAFT202012.create_resource(DOCUMENT)
)


def validator_of(name):
    return jsonschema.Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#/components/schemas/{name}"},
        registry=REGISTRY,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def test_real_responses_match_document(client):
    """Every user's first page and weekly summary validate against the schemas."""
    users = client.simulate_get("/users").json
    validator_of("UserList").validate(users)
    validator_of("ProjectList").validate(client.simulate_get("/projects").json)

    flags = set()
    for user in users["users"]:
        page = client.simulate_get(f"/users/{user['user']}/checkins?limit=1000").json
        validator_of("CheckinPage").validate(page)
        flags.update(flag for row in page["checkins"] for flag in row["flags"])
        summary = client.simulate_get(f"/users/{user['user']}/summary?by=week").json
        validator_of("Summary").validate(summary)

    assert {"repeated_entry", "day_over_24h", "isolated_timestamp"} <= flags
