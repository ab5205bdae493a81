"""Summaries, projects, CSV export and ETags of the HTTP API on PostgreSQL."""

import datetime as dt
import json
import urllib.parse
from decimal import Decimal

import pytest
from falcon import testing

from checkins.adapters.csv_source import CsvFileSource
from checkins.adapters.postgres import PostgresCheckinRepository
from checkins.adapters.postgres_queries import PostgresCheckinQueries
from checkins.entrypoints.http import create_app
from checkins.services import ingest


# dana's stamps sit near day, week and month ends, so UTC and Manila (UTC+8)
# put them in different groups. frank has 2,500 rows, over two CSV pages.
CSV_HEAD = """\
user,timestamp,hours,project
dana,2018-11-12 16:30:52 UTC,3,hiring
dana,2018-11-12 15:59:59 UTC,1.5,hiring
dana,2018-11-11 23:00:00 UTC,2,blogideas
dana,2018-11-30 20:00:00 UTC,4,opsandadmin
dana,2018-12-31 23:30:00 UTC,0.25,hiring
eve,2018-11-12 10:00:00 UTC,8,hiring
eve,2018-11-13 10:00:00 UTC,1,machinelearning
"""

FRANK_ROWS = 2500
FRANK_START = dt.datetime(2018, 10, 1, tzinfo=dt.UTC)

PROBLEM_JSON = "application/problem+json"


def frank_stamp(index):
    return FRANK_START + dt.timedelta(minutes=10 * index)


def export_text():
    lines = [CSV_HEAD]
    for index in range(FRANK_ROWS):
        stamp = frank_stamp(index).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"frank,{stamp},0.01,bizdev\n")
    return "".join(lines)


@pytest.fixture(name="loaded_url", scope="module")
def fixture_loaded_url(module_database_url, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "checkins.csv"
    path.write_text(export_text(), encoding="utf-8")
    ingest(CsvFileSource(path), PostgresCheckinRepository(module_database_url))
    return module_database_url


@pytest.fixture(name="queries", scope="module")
def fixture_queries(loaded_url):
    queries = PostgresCheckinQueries(loaded_url)
    yield queries
    queries.close()


@pytest.fixture(name="client", scope="module")
def fixture_client(queries):
    return testing.TestClient(create_app(queries))


def exact_json(result):
    return json.loads(result.text, parse_float=Decimal)


def summary(client, user, **params):
    return client.simulate_get(f"/users/{user}/summary", params=params)


def groups(result):
    return [
        (group["group"], group["checkins"], group["hours"])
        for group in exact_json(result)["groups"]
    ]


def test_summary_by_day_in_utc(client):
    result = summary(client, "dana", by="day")

    assert result.status_code == 200
    assert exact_json(result) == {
        "user": "dana",
        "by": "day",
        "tz": "UTC",
        "from": None,
        "to": None,
        "groups": [
            {"group": "2018-11-11", "checkins": 1, "hours": Decimal("2")},
            {"group": "2018-11-12", "checkins": 2, "hours": Decimal("4.5")},
            {"group": "2018-11-30", "checkins": 1, "hours": Decimal("4")},
            {"group": "2018-12-31", "checkins": 1, "hours": Decimal("0.25")},
        ],
    }


def test_summary_by_day_in_manila(client):
    result = summary(client, "dana", by="day", tz="Asia/Manila")

    assert groups(result) == [
        ("2018-11-12", 2, Decimal("3.5")),
        ("2018-11-13", 1, Decimal("3")),
        ("2018-12-01", 1, Decimal("4")),
        ("2019-01-01", 1, Decimal("0.25")),
    ]
    assert exact_json(result)["tz"] == "Asia/Manila"


def test_summary_by_iso_week_in_utc(client):
    result = summary(client, "dana", by="week")

    # 2018-11-11 is a Sunday, and 2018-12-31 a Monday of ISO week 2019-W01.
    assert groups(result) == [
        ("2018-W45", 1, Decimal("2")),
        ("2018-W46", 2, Decimal("4.5")),
        ("2018-W48", 1, Decimal("4")),
        ("2019-W01", 1, Decimal("0.25")),
    ]


def test_summary_by_iso_week_in_manila(client):
    result = summary(client, "dana", by="week", tz="Asia/Manila")

    assert groups(result) == [
        ("2018-W46", 3, Decimal("6.5")),
        ("2018-W48", 1, Decimal("4")),
        ("2019-W01", 1, Decimal("0.25")),
    ]


def test_summary_by_month_in_both_zones(client):
    utc = summary(client, "dana", by="month")
    manila = summary(client, "dana", by="month", tz="Asia/Manila")

    assert groups(utc) == [
        ("2018-11", 4, Decimal("10.5")),
        ("2018-12", 1, Decimal("0.25")),
    ]
    assert groups(manila) == [
        ("2018-11", 3, Decimal("6.5")),
        ("2018-12", 1, Decimal("4")),
        ("2019-01", 1, Decimal("0.25")),
    ]


def test_summary_by_project(client):
    result = summary(client, "dana", by="project", tz="Asia/Manila")

    assert groups(result) == [
        ("blogideas", 1, Decimal("2")),
        ("hiring", 3, Decimal("4.75")),
        ("opsandadmin", 1, Decimal("4")),
    ]


def test_summary_days_are_local_dates(client):
    manila = summary(
        client, "dana", by="day", tz="Asia/Manila", **{"from": "2018-11-13"}
    )
    utc = summary(
        client, "dana", by="day", **{"from": "2018-11-12", "to": "2018-11-12"}
    )

    assert groups(manila) == [
        ("2018-11-13", 1, Decimal("3")),
        ("2018-12-01", 1, Decimal("4")),
        ("2019-01-01", 1, Decimal("0.25")),
    ]
    assert groups(utc) == [("2018-11-12", 2, Decimal("4.5"))]
    assert exact_json(utc)["from"] == "2018-11-12"
    assert exact_json(utc)["to"] == "2018-11-12"


def test_summary_to_day_is_inclusive_in_zone(client):
    result = summary(client, "dana", by="week", tz="Asia/Manila", to="2018-11-12")

    assert groups(result) == [("2018-W46", 2, Decimal("3.5"))]


def test_summary_of_empty_range_has_no_groups(client):
    result = summary(client, "dana", by="day", **{"from": "2020-01-01"})

    assert result.status_code == 200
    assert exact_json(result)["groups"] == []


def test_summary_uses_configured_zone(queries):
    client = testing.TestClient(create_app(queries, time_zone="Asia/Manila"))

    result = summary(client, "dana", by="month")

    assert exact_json(result)["tz"] == "Asia/Manila"
    assert groups(result)[-1] == ("2019-01", 1, Decimal("0.25"))


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({}, "missing query parameter by: expected one of day, week, month, project"),
        (
            {"by": "year"},
            "invalid query parameter by='year': "
            "expected one of day, week, month, project",
        ),
        (
            {"by": "day", "tz": "Mars/Olympus"},
            "invalid query parameter tz='Mars/Olympus': expected an IANA time "
            "zone name, such as UTC or Asia/Manila",
        ),
        (
            {"by": "day", "tz": "../../etc/passwd"},
            "invalid query parameter tz='../../etc/passwd': expected an IANA time "
            "zone name, such as UTC or Asia/Manila",
        ),
        (
            {"by": "day", "tz": "+08:00"},
            "invalid query parameter tz='+08:00': expected an IANA time "
            "zone name, such as UTC or Asia/Manila",
        ),
        (
            {"by": "day", "from": "2018-11-13", "to": "2018-11-12"},
            "invalid query parameters: from=2018-11-13 is after to=2018-11-12; "
            "expected from on or before to",
        ),
    ],
)
def test_summary_invalid_parameter_is_400(client, params, detail):
    result = summary(client, "dana", **params)

    assert result.status_code == 400
    assert result.headers["content-type"] == PROBLEM_JSON
    assert result.json["detail"] == detail


def test_summary_unknown_user_is_404(client):
    result = summary(client, "zed", by="day")

    assert result.status_code == 404
    assert result.json["detail"] == "user 'zed' not found; GET /users lists the users"


def test_summary_sums_match_user_totals(client):
    users = {
        user["user"]: user
        for user in exact_json(client.simulate_get("/users"))["users"]
    }

    for name in ("dana", "eve", "frank"):
        rows = groups(summary(client, name, by="project"))
        assert sum(count for _, count, _ in rows) == users[name]["checkins"]
        assert sum(hours for _, _, hours in rows) == users[name]["hours"]


def test_projects_list_exact_totals(client):
    result = client.simulate_get("/projects")

    assert result.status_code == 200
    assert exact_json(result) == {
        "projects": [
            {
                "project": "bizdev",
                "checkins": 2500,
                "hours": Decimal("25.00"),
                "users": 1,
            },
            {"project": "blogideas", "checkins": 1, "hours": Decimal("2"), "users": 1},
            {"project": "hiring", "checkins": 4, "hours": Decimal("12.75"), "users": 2},
            {
                "project": "machinelearning",
                "checkins": 1,
                "hours": Decimal("1"),
                "users": 1,
            },
            {
                "project": "opsandadmin",
                "checkins": 1,
                "hours": Decimal("4"),
                "users": 1,
            },
        ]
    }


def csv_lines(result):
    return result.text.split("\r\n")


def test_checkins_csv_by_accept_header(client):
    ids = [
        row["id"] for row in client.simulate_get("/users/eve/checkins").json["checkins"]
    ]

    result = client.simulate_get("/users/eve/checkins", headers={"Accept": "text/csv"})

    assert result.status_code == 200
    assert result.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_lines(result) == [
        "id,user,checkin_at,hours,project,flags",
        f"{ids[0]},eve,2018-11-12T10:00:00Z,8,hiring,",
        f"{ids[1]},eve,2018-11-13T10:00:00Z,1,machinelearning,",
        "",
    ]


@pytest.mark.parametrize(
    "accept", ["TEXT/CSV", "Text/Csv;q=0.9, application/json;q=0.5"]
)
def test_checkins_csv_accept_ignores_case(client, accept):
    result = client.simulate_get("/users/eve/checkins", headers={"Accept": accept})

    assert result.status_code == 200
    assert result.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_lines(result)[0] == "id,user,checkin_at,hours,project,flags"


def test_checkins_csv_by_format_parameter(client):
    result = client.simulate_get(
        "/users/dana/checkins",
        params={"format": "csv", "from": "2018-11-12", "to": "2018-11-12"},
        headers={"Accept": "application/json"},
    )

    lines = csv_lines(result)
    assert result.headers["content-type"] == "text/csv; charset=utf-8"
    assert [line.split(",")[2:] for line in lines[1:-1]] == [
        ["2018-11-12T15:59:59Z", "1.5", "hiring", ""],
        ["2018-11-12T16:30:52Z", "3", "hiring", ""],
    ]


def test_checkins_csv_filters_project(client):
    result = client.simulate_get(
        "/users/dana/checkins", params={"format": "csv", "project": "Hiring"}
    )

    assert [line.split(",")[2] for line in csv_lines(result)[1:-1]] == [
        "2018-11-12T15:59:59Z",
        "2018-11-12T16:30:52Z",
        "2018-12-31T23:30:00Z",
    ]


def test_checkins_csv_has_every_page(client):
    json_ids = []
    cursor = None
    for _ in range(5):
        params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
        page = client.simulate_get("/users/frank/checkins", params=params).json
        json_ids.extend(row["id"] for row in page["checkins"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    result = client.simulate_get("/users/frank/checkins", params={"format": "csv"})
    lines = csv_lines(result)

    assert len(lines) == FRANK_ROWS + 2
    assert [int(line.split(",")[0]) for line in lines[1:-1]] == json_ids
    assert lines[1].split(",")[1:] == [
        "frank",
        "2018-10-01T00:00:00Z",
        "0.01",
        "bizdev",
        "",
    ]
    last = frank_stamp(FRANK_ROWS - 1).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lines[-2].split(",")[2] == last


def test_checkins_csv_is_streamed(queries):
    app = create_app(queries)
    environ = testing.create_environ(
        path="/users/frank/checkins", query_string="format=csv"
    )
    statuses = []

    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    chunks = list(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()

    assert statuses == ["200 OK"]
    assert not isinstance(body, list | tuple | bytes)
    # A header chunk and rows in pages of 1,000.
    assert [chunk.count(b"\r\n") for chunk in chunks] == [1001, 1000, 500]


@pytest.mark.parametrize("name", ["limit", "cursor"])
def test_checkins_csv_rejects_paging(client, name):
    result = client.simulate_get(
        "/users/dana/checkins", query_string=f"format=csv&{name}=10"
    )

    assert result.status_code == 400
    assert result.headers["content-type"] == PROBLEM_JSON
    assert result.json["detail"] == (
        f"query parameter {name} applies to JSON pages only, and the CSV export "
        f"has every selected row; leave {name} out or ask for JSON"
    )


def test_checkins_csv_unknown_user_is_404(client):
    result = client.simulate_get("/users/zed/checkins", params={"format": "csv"})

    assert result.status_code == 404
    assert result.headers["content-type"] == PROBLEM_JSON


def test_checkins_invalid_format_is_400(client):
    result = client.simulate_get("/users/dana/checkins", params={"format": "xml"})

    assert result.status_code == 400
    assert result.json["detail"] == (
        "invalid query parameter format='xml': expected json or csv"
    )


def test_checkins_prefers_json_by_default(client):
    result = client.simulate_get(
        "/users/eve/checkins", headers={"Accept": "application/json, text/csv;q=0.5"}
    )

    assert result.headers["content-type"] == "application/json"
    assert [row["hours"] for row in result.json["checkins"]] == [8, 1]


@pytest.mark.parametrize(
    "path",
    [
        "/users",
        "/projects",
        "/users/dana/checkins?limit=2",
        "/users/dana/checkins?format=csv",
        "/users/dana/summary?by=week",
    ],
)
def test_matching_etag_gets_304(client, path):
    first = client.simulate_get(path)
    tag = first.headers["etag"]

    again = client.simulate_get(path, headers={"If-None-Match": tag})
    weak = client.simulate_get(path, headers={"If-None-Match": f"W/{tag}"})
    other = client.simulate_get(path, headers={"If-None-Match": '"v0-0"'})

    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, no-cache"
    assert again.status_code == 304
    assert again.text == ""
    assert again.headers["etag"] == tag
    assert weak.status_code == 304
    assert other.status_code == 200
    assert other.headers["etag"] == tag


def test_etag_differs_by_url_and_format(client):
    tags = {
        client.simulate_get(path).headers["etag"]
        for path in (
            "/users/dana/checkins",
            "/users/dana/checkins?limit=2",
            "/users/dana/checkins?format=csv",
            "/users/eve/checkins",
        )
    }

    assert len(tags) == 4


def test_summary_etag_differs_by_default_time_zone(queries):
    path = "/users/dana/summary?by=day"
    utc = testing.TestClient(create_app(queries)).simulate_get(path)
    manila = testing.TestClient(create_app(queries, time_zone="Asia/Manila"))

    result = manila.simulate_get(path, headers={"If-None-Match": utc.headers["etag"]})

    assert result.status_code == 200
    assert result.json["tz"] == "Asia/Manila"
    assert result.headers["etag"] != utc.headers["etag"]


def test_etags_can_be_switched_off(queries):
    client = testing.TestClient(create_app(queries, etags=False))

    first = client.simulate_get("/users")
    again = client.simulate_get("/users", headers={"If-None-Match": "*"})

    assert "etag" not in first.headers
    assert again.status_code == 200


class CountingQueries:
    """Queries that count how often the data version is read on its own."""

    def __init__(self, queries):
        self._queries = queries
        self.version_reads = 0

    def data_version(self):
        self.version_reads += 1
        return self._queries.data_version()

    def __getattr__(self, name):
        return getattr(self._queries, name)


def test_page_tag_comes_with_its_rows(queries):
    """A page's ETag costs no query of its own, unless If-None-Match is checked."""
    counting = CountingQueries(queries)
    client = testing.TestClient(create_app(counting))

    first = client.simulate_get("/users/dana/checkins", query_string="limit=2")
    reads_for_page = counting.version_reads
    again = client.simulate_get(
        "/users/dana/checkins",
        query_string="limit=2",
        headers={"If-None-Match": first.headers["etag"]},
    )

    assert first.status_code == 200
    assert first.headers["etag"].startswith('"v1-')
    assert reads_for_page == 0
    assert again.status_code == 304
    assert counting.version_reads == 1


def test_load_changes_etag(tmp_path, database_url):
    path = tmp_path / "first.csv"
    path.write_text(CSV_HEAD, encoding="utf-8")
    repository = PostgresCheckinRepository(database_url)
    ingest(CsvFileSource(path), repository)
    queries = PostgresCheckinQueries(database_url)
    try:
        client = testing.TestClient(create_app(queries))
        before = client.simulate_get("/users/eve/checkins")
        tag = before.headers["etag"]

        path.write_text(
            "user,timestamp,hours,project\neve,2018-11-14 10:00:00 UTC,2,hiring\n",
            encoding="utf-8",
        )
        ingest(CsvFileSource(path), repository)
        after = client.simulate_get(
            "/users/eve/checkins", headers={"If-None-Match": tag}
        )
    finally:
        queries.close()

    assert before.headers["etag"].startswith('"v1-')
    assert after.status_code == 200
    assert after.headers["etag"].startswith('"v2-')
    assert [row["hours"] for row in after.json["checkins"]] == [8, 1, 2]


HOSTILE_VALUES = [
    "'; DROP TABLE checkins; --",
    "dana' OR '1'='1",
    "..",
    "имя",
    "名前",
    "\U0001f600",
    "\x00",
    "a" * 10_000,
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_summary_hostile_user_is_404(client, value):
    result = client.simulate_get(
        "/users/" + urllib.parse.quote(value, safe="") + "/summary",
        params={"by": "day"},
    )

    assert result.status_code == 404
    assert result.headers["content-type"] == PROBLEM_JSON
    assert len(result.json["detail"]) < 200


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("name", ["by", "tz", "from", "to"])
def test_summary_hostile_parameter_is_400(client, name, value):
    params = {"by": "day"} | {name: value}

    result = client.simulate_get("/users/dana/summary", params=params)

    assert result.status_code == 400
    assert result.headers["content-type"] == PROBLEM_JSON
    assert result.json["detail"].startswith(f"invalid query parameter {name}=")
    assert len(result.json["detail"]) < 250


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_csv_hostile_user_is_404(client, value):
    result = client.simulate_get(
        "/users/" + urllib.parse.quote(value, safe="") + "/checkins",
        params={"format": "csv"},
    )

    assert result.status_code == 404
    assert result.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize(
    "path", ["/users/zed/checkins", "/users/zed/checkins?format=csv"]
)
def test_problem_has_no_etag(client, path):
    path_only, _, query = path.partition("?")

    result = client.simulate_get(path_only, query_string=query)

    assert result.status_code == 404
    assert "etag" not in result.headers
    assert "cache-control" not in result.headers
