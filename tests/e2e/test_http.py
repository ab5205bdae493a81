"""The HTTP API on a PostgreSQL database loaded from a CSV file."""

import urllib.parse

import pytest
from falcon import testing

from checkins.adapters.csv_source import CsvFileSource
from checkins.adapters.postgres import PostgresCheckinRepository
from checkins.adapters.postgres_queries import PostgresCheckinQueries
from checkins.entrypoints.http import create_app
from checkins.services import ingest


# Ids follow the file order of loaded rows. The row without a user is
# quarantined and takes no id.
CSV = """\
user,timestamp,hours,project
alice,2018-11-26 14:47:36.0429 UTC,2,Hiring
alice,2018-11-26 14:47:36.0429 UTC,1.5,blogideas
alice,11/26/2018 12:49 PM,3,hiring
alice,26 ноября 2018 09:15,1,opsandadmin
,2018-11-26 10:00:00 UTC,1,hiring
alice,2018-11-27 08:00:00 UTC,4,hiring
alice,2018-11-28 10:30:00.5 UTC,2.25,hiring
alice,2018-11-28 10:30:00.5 UTC,2.25,hiring
"  Bob ",26 ноября 2018 14:47,7.5,Blog-Ideas
bob,11/27/2018 09:05 AM,0.5,hiring
carol,2018-11-25T23:59:59Z,8,machinelearning
"""

# Alice's rows ordered by stamp, then id, as (id, checkin_at, hours, project).
ALICE = [
    (4, "2018-11-26T09:15:00Z", 1, "opsandadmin"),
    (3, "2018-11-26T12:49:00Z", 3, "hiring"),
    (1, "2018-11-26T14:47:36.042900Z", 2, "hiring"),
    (2, "2018-11-26T14:47:36.042900Z", 1.5, "blogideas"),
    (5, "2018-11-27T08:00:00Z", 4, "hiring"),
    (6, "2018-11-28T10:30:00.500000Z", 2.25, "hiring"),
    (7, "2018-11-28T10:30:00.500000Z", 2.25, "hiring"),
]

HOSTILE_VALUES = [
    "'; DROP TABLE checkins; --",
    "alice' OR '1'='1",
    "alice%",
    "..",
    "имя пользователя",
    "名前",
    "\U0001f600",
    "\u202ealice",
    "\x00",
    "a\x00b",
    "\\",
    "a" * 10_000,
]

PROBLEM_JSON = "application/problem+json"

ROUTES = (
    "/health, /ready, /metrics, /openapi.json, /projects, /users, "
    "/users/{user}/checkins and /users/{user}/summary"
)


@pytest.fixture
def client(tmp_path, database_url):
    path = tmp_path / "checkins.csv"
    path.write_text(CSV, encoding="utf-8")
    ingest(CsvFileSource(path), PostgresCheckinRepository(database_url))
    queries = PostgresCheckinQueries(database_url)
    try:
        yield testing.TestClient(create_app(queries))
    finally:
        queries.close()


def checkin(row_id, checkin_at, hours, project, user="alice", flags=()):
    return {
        "id": row_id,
        "user": user,
        "checkin_at": checkin_at,
        "hours": hours,
        "project": project,
        "flags": list(flags),
    }


def alice_checkin(row_id):
    (row,) = [row for row in ALICE if row[0] == row_id]
    flags = ["repeated_entry"] if row_id == 7 else []
    return checkin(*row, flags=flags)


def checkins_path(user):
    return f"/users/{urllib.parse.quote(user, safe='')}/checkins"


def assert_problem(result, status, title, detail):
    assert result.status_code == status
    assert result.headers["content-type"] == PROBLEM_JSON
    assert result.json == {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }


def test_health_returns_status_ok(client):
    result = client.simulate_get("/health")

    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert result.json == {"status": "ok"}


def test_users_lists_exact_totals(client):
    result = client.simulate_get("/users")

    assert result.status_code == 200
    assert result.json == {
        "users": [
            {
                "user": "alice",
                "checkins": 7,
                "hours": 16,
                "first_checkin_at": "2018-11-26T09:15:00Z",
                "last_checkin_at": "2018-11-28T10:30:00.500000Z",
            },
            {
                "user": "bob",
                "checkins": 2,
                "hours": 8,
                "first_checkin_at": "2018-11-26T14:47:00Z",
                "last_checkin_at": "2018-11-27T09:05:00Z",
            },
            {
                "user": "carol",
                "checkins": 1,
                "hours": 8,
                "first_checkin_at": "2018-11-25T23:59:59Z",
                "last_checkin_at": "2018-11-25T23:59:59Z",
            },
        ]
    }


def test_users_writes_hours_as_numbers(client):
    result = client.simulate_get("/users")

    hours = [user["hours"] for user in result.json["users"]]
    assert [type(value) in (int, float) for value in hours] == [True, True, True]
    assert '"hours": "' not in result.text


def test_checkins_return_exact_rows(client):
    result = client.simulate_get("/users/bob/checkins")

    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert result.json == {
        "user": "bob",
        "checkins": [
            checkin(8, "2018-11-26T14:47:00Z", 7.5, "blogideas", user="bob"),
            checkin(9, "2018-11-27T09:05:00Z", 0.5, "hiring", user="bob"),
        ],
        "next_cursor": None,
    }


def test_checkins_order_by_stamp_then_id(client):
    result = client.simulate_get("/users/alice/checkins")

    assert [row["id"] for row in result.json["checkins"]] == [4, 3, 1, 2, 5, 6, 7]
    assert result.json["checkins"] == [alice_checkin(row[0]) for row in ALICE]
    assert result.json["next_cursor"] is None


def test_checkins_mark_repeated_entry(client):
    result = client.simulate_get("/users/alice/checkins")

    flags = {row["id"]: row["flags"] for row in result.json["checkins"]}
    assert flags[6] == []
    assert flags[7] == ["repeated_entry"]


@pytest.mark.parametrize("user", ["BOB", "  Bob ", "bOb\t"])
def test_checkins_trim_and_fold_user(client, user):
    result = client.simulate_get(checkins_path(user))

    assert result.status_code == 200
    assert result.json["user"] == "bob"
    assert [row["id"] for row in result.json["checkins"]] == [8, 9]


def test_checkins_filter_from_day(client):
    result = client.simulate_get(
        "/users/alice/checkins", query_string="from=2018-11-27"
    )

    assert result.status_code == 200
    assert result.json["checkins"] == [
        alice_checkin(5),
        alice_checkin(6),
        alice_checkin(7),
    ]


def test_checkins_filter_to_day(client):
    result = client.simulate_get("/users/alice/checkins", query_string="to=2018-11-26")

    assert result.status_code == 200
    assert [row["id"] for row in result.json["checkins"]] == [4, 3, 1, 2]


def test_checkins_filter_single_day(client):
    result = client.simulate_get(
        "/users/alice/checkins", query_string="from=2018-11-27&to=2018-11-27"
    )

    assert result.status_code == 200
    assert result.json["checkins"] == [alice_checkin(5)]


def test_checkins_day_filter_uses_utc(client):
    same_day = client.simulate_get(
        "/users/carol/checkins", query_string="from=2018-11-25&to=2018-11-25"
    )
    next_day = client.simulate_get(
        "/users/carol/checkins", query_string="from=2018-11-26"
    )

    assert [row["id"] for row in same_day.json["checkins"]] == [10]
    assert next_day.json["checkins"] == []


@pytest.mark.parametrize("project", ["hiring", "HIRING", "  Hiring "])
def test_checkins_filter_project(client, project):
    result = client.simulate_get("/users/alice/checkins", params={"project": project})

    assert result.status_code == 200
    assert [row["id"] for row in result.json["checkins"]] == [3, 1, 5, 6, 7]


def test_checkins_combine_all_filters(client):
    result = client.simulate_get(
        "/users/alice/checkins",
        query_string="from=2018-11-26&to=2018-11-27&project=hiring&limit=2",
    )

    assert result.status_code == 200
    assert [row["id"] for row in result.json["checkins"]] == [3, 1]
    assert result.json["next_cursor"] is not None


def test_checkins_unknown_project_is_empty(client):
    result = client.simulate_get(
        "/users/alice/checkins", query_string="project=workshop"
    )

    assert result.status_code == 200
    assert result.json == {"user": "alice", "checkins": [], "next_cursor": None}


def test_checkins_ignore_unknown_parameters(client):
    result = client.simulate_get(
        "/users/bob/checkins", query_string="sort=desc&sort=asc&page=2"
    )

    assert result.status_code == 200
    assert [row["id"] for row in result.json["checkins"]] == [8, 9]


def test_paging_visits_every_row_once(client):
    pages = []
    cursor = None
    for _ in range(10):
        params = {"limit": "3"} if cursor is None else {"limit": "3", "cursor": cursor}
        result = client.simulate_get("/users/alice/checkins", params=params)
        assert result.status_code == 200
        pages.append([row["id"] for row in result.json["checkins"]])
        cursor = result.json["next_cursor"]
        if cursor is None:
            break

    assert pages == [[4, 3, 1], [2, 5, 6], [7]]


def test_paging_splits_equal_stamps(client):
    first = client.simulate_get("/users/alice/checkins", query_string="limit=3")
    cursor = first.json["next_cursor"]

    second = client.simulate_get(
        "/users/alice/checkins", params={"limit": "3", "cursor": cursor}
    )

    assert first.json["checkins"][-1] == alice_checkin(1)
    assert second.json["checkins"][0] == alice_checkin(2)


def test_paging_returns_exact_rows(client):
    rows = []
    cursor = None
    for _ in range(10):
        params = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        result = client.simulate_get("/users/alice/checkins", params=params)
        rows.extend(result.json["checkins"])
        cursor = result.json["next_cursor"]
        if cursor is None:
            break

    assert rows == [alice_checkin(row[0]) for row in ALICE]
    assert len({row["id"] for row in rows}) == 7


def test_paging_keeps_project_filter(client):
    ids = []
    cursor = None
    for _ in range(10):
        params = {"project": "hiring", "limit": "2"}
        if cursor is not None:
            params["cursor"] = cursor
        result = client.simulate_get("/users/alice/checkins", params=params)
        ids.append([row["id"] for row in result.json["checkins"]])
        cursor = result.json["next_cursor"]
        if cursor is None:
            break

    assert ids == [[3, 1], [5, 6], [7]]


def test_page_of_exact_size_ends(client):
    result = client.simulate_get("/users/bob/checkins", query_string="limit=2")

    assert [row["id"] for row in result.json["checkins"]] == [8, 9]
    assert result.json["next_cursor"] is None


def test_cursor_is_url_safe_text(client):
    result = client.simulate_get("/users/alice/checkins", query_string="limit=1")

    cursor = result.json["next_cursor"]
    assert urllib.parse.quote(cursor, safe="") == cursor


def test_unknown_user_is_problem_404(client):
    result = client.simulate_get("/users/dave/checkins")

    assert_problem(
        result, 404, "Not Found", "user 'dave' not found; GET /users lists the users"
    )


def test_quarantined_empty_user_is_unknown(client):
    result = client.simulate_get(checkins_path(" "))

    assert_problem(
        result, 404, "Not Found", "user '' not found; GET /users lists the users"
    )


def test_invalid_month_is_problem_400(client):
    result = client.simulate_get(
        "/users/alice/checkins", query_string="from=2018-13-01"
    )

    assert_problem(
        result,
        400,
        "Bad Request",
        "invalid query parameter from='2018-13-01': "
        "expected a date as YYYY-MM-DD from 1900 to 2999, such as 2018-11-26",
    )


def test_invalid_to_is_problem_400(client):
    result = client.simulate_get("/users/alice/checkins", query_string="to=26.11.2018")

    assert_problem(
        result,
        400,
        "Bad Request",
        "invalid query parameter to='26.11.2018': "
        "expected a date as YYYY-MM-DD from 1900 to 2999, such as 2018-11-26",
    )


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("0", "expected at least 1"),
        ("-1", "expected at least 1"),
        ("1001", "expected at most 1000"),
        ("ten", "expected an integer from 1 to 1000"),
        ("", "expected an integer from 1 to 1000"),
    ],
)
def test_invalid_limit_is_problem_400(client, limit, expected):
    result = client.simulate_get("/users/alice/checkins", params={"limit": limit})

    assert_problem(
        result,
        400,
        "Bad Request",
        f"invalid query parameter limit={limit!r}: {expected}",
    )


def test_largest_limit_is_accepted(client):
    result = client.simulate_get("/users/alice/checkins", query_string="limit=1000")

    assert result.status_code == 200
    assert len(result.json["checkins"]) == 7


def test_tampered_cursor_is_problem_400(client):
    first = client.simulate_get("/users/alice/checkins", query_string="limit=3")
    cursor = first.json["next_cursor"]
    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")

    result = client.simulate_get(
        "/users/alice/checkins", params={"limit": "3", "cursor": tampered}
    )

    assert_problem(
        result,
        400,
        "Bad Request",
        f"invalid query parameter cursor={tampered!r}: "
        "expected the next_cursor of a previous page, unchanged, with the same "
        "user, from, to and project",
    )


def test_cursor_of_another_user_is_problem_400(client):
    first = client.simulate_get("/users/alice/checkins", query_string="limit=1")
    cursor = first.json["next_cursor"]

    result = client.simulate_get("/users/bob/checkins", params={"cursor": cursor})

    assert_problem(
        result,
        400,
        "Bad Request",
        f"invalid query parameter cursor={cursor!r}: "
        "expected the next_cursor of a previous page, unchanged, with the same "
        "user, from, to and project",
    )


def test_garbled_cursor_is_problem_400(client):
    result = client.simulate_get(
        "/users/alice/checkins", query_string="cursor=not-a-cursor"
    )

    assert_problem(
        result,
        400,
        "Bad Request",
        "invalid query parameter cursor='not-a-cursor': "
        "expected the next_cursor of a previous page, unchanged, with the same "
        "user, from, to and project",
    )


def test_from_after_to_is_problem_400(client):
    result = client.simulate_get(
        "/users/alice/checkins", query_string="from=2018-11-28&to=2018-11-26"
    )

    assert_problem(
        result,
        400,
        "Bad Request",
        "invalid query parameters: from=2018-11-28 is after to=2018-11-26; "
        "expected from on or before to",
    )


@pytest.mark.parametrize("name", ["from", "to", "project", "limit", "cursor"])
def test_repeated_parameter_is_problem_400(client, name):
    result = client.simulate_get(
        "/users/alice/checkins", query_string=f"{name}=a&{name}=b"
    )

    assert_problem(
        result,
        400,
        "Bad Request",
        f"query parameter {name} is given 2 times; expected it at most once",
    )


def test_parameter_error_precedes_unknown_user(client):
    result = client.simulate_get("/users/dave/checkins", query_string="limit=0")

    assert result.status_code == 400


@pytest.mark.parametrize(
    "path", ["/", "/user", "/users/alice", "/users/alice/checkins/1", "/health/x"]
)
def test_unknown_route_is_problem_404(client, path):
    result = client.simulate_get(path)

    assert_problem(
        result,
        404,
        "Not Found",
        f"no resource at path {path!r}; the resources are {ROUTES}",
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_method_is_problem_405(client, method):
    result = client.simulate_request(method, "/users/alice/checkins")

    assert_problem(
        result,
        405,
        "Method Not Allowed",
        f"method {method!r} is not allowed on path '/users/alice/checkins'; "
        "the allowed methods are GET, HEAD, OPTIONS",
    )
    assert result.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    "path",
    [
        "/users",
        "/projects",
        "/users/alice/checkins?limit=1",
        "/users/alice/checkins?format=csv",
        "/users/alice/summary?by=week",
        "/users/dave/checkins",
        "/health",
    ],
)
def test_head_has_headers_of_get(client, path):
    got = client.simulate_get(path)
    head = client.simulate_head(path)

    assert head.status_code == got.status_code
    assert head.content == b""
    assert {**head.headers, "x-request-id": ""} == {**got.headers, "x-request-id": ""}


def test_options_lists_methods_of_405(client):
    result = client.simulate_options("/users/alice/summary")

    assert result.status_code == 200
    assert result.headers["allow"] == "GET, HEAD, OPTIONS"
    assert result.content == b""


@pytest.mark.parametrize(
    "value", [value for value in HOSTILE_VALUES if value != "\u202ealice"]
)
def test_hostile_user_is_problem_404(client, value):
    result = client.simulate_get(checkins_path(value))

    assert result.status_code == 404
    assert result.headers["content-type"] == PROBLEM_JSON
    assert result.json["detail"].startswith("user ")
    assert result.json["detail"].endswith(" not found; GET /users lists the users")
    assert len(result.json["detail"]) < 200


def test_invisible_characters_in_user_are_dropped(client):
    # U+202E, the right-to-left override, is a format character, which names
    # lose when they are stored and when they are looked up.
    result = client.simulate_get(checkins_path("\u202ealice"))

    assert result.status_code == 200
    assert result.json["user"] == "alice"
    assert len(result.json["checkins"]) == len(ALICE)


@pytest.mark.parametrize("value", ["a/b", "../..", "/"])
def test_unknown_user_with_slash_is_problem_404(client, value):
    result = client.simulate_get(checkins_path(value))

    assert_problem(
        result,
        404,
        "Not Found",
        f"user {value!r} not found; GET /users lists the users",
    )


def test_unencoded_slash_in_user_is_problem_404(client):
    result = client.simulate_get("/users/a/b/checkins")

    assert_problem(
        result,
        404,
        "Not Found",
        f"no resource at path '/users/a/b/checkins'; the resources are {ROUTES}",
    )


@pytest.mark.parametrize(
    "path",
    ["/users/alice%2Fcheckins", "/users%2Falice%2Fcheckins", "/users/alice%2fsummary"],
)
def test_encoded_slash_outside_user_is_problem_404(client, path):
    result = client.simulate_get(path, query_string="by=day")

    assert_problem(
        result,
        404,
        "Not Found",
        f"no resource at path {path!r}; the resources are {ROUTES}",
    )


def test_encoded_slash_in_query_leaves_path_decoded(client):
    result = client.simulate_get(
        "/users/%20Alice%20/checkins", query_string="project=a%2Fb"
    )

    assert result.status_code == 200
    assert result.json["user"] == "alice"
    assert result.json["checkins"] == []


def test_user_with_slash_is_served(tmp_path, database_url):
    path = tmp_path / "slash.csv"
    path.write_text(
        "user,timestamp,hours,project\nOps/Team,2018-11-26 10:00:00 UTC,2,hiring\n",
        encoding="utf-8",
    )
    ingest(CsvFileSource(path), PostgresCheckinRepository(database_url))
    queries = PostgresCheckinQueries(database_url)
    client = testing.TestClient(create_app(queries))
    try:
        # %2F in either case reaches the user; the WSGI server decodes both.
        page = client.simulate_get("/users/ops%2Fteam/checkins")
        summary = client.simulate_get("/users/ops%2fteam/summary?by=project")
    finally:
        queries.close()

    assert page.status_code == 200
    assert page.json == {
        "user": "ops/team",
        "checkins": [checkin(1, "2018-11-26T10:00:00Z", 2, "hiring", user="ops/team")],
        "next_cursor": None,
    }
    assert summary.status_code == 200
    assert summary.json["groups"] == [{"group": "hiring", "checkins": 1, "hours": 2}]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_dates_are_problem_400(client, value):
    for name in ("from", "to"):
        result = client.simulate_get("/users/alice/checkins", params={name: value})

        assert result.status_code == 400
        assert result.headers["content-type"] == PROBLEM_JSON
        assert result.json["detail"].startswith(f"invalid query parameter {name}=")


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_limit_and_cursor_are_problem_400(client, value):
    for name in ("limit", "cursor"):
        result = client.simulate_get("/users/alice/checkins", params={name: value})

        assert result.status_code == 400
        assert result.headers["content-type"] == PROBLEM_JSON
        assert result.json["detail"].startswith(f"invalid query parameter {name}=")


@pytest.mark.parametrize("value", [v for v in HOSTILE_VALUES if "\x00" not in v])
def test_hostile_project_matches_nothing(client, value):
    result = client.simulate_get("/users/alice/checkins", params={"project": value})

    assert result.status_code == 200
    assert result.json == {"user": "alice", "checkins": [], "next_cursor": None}


@pytest.mark.parametrize("value", ["\x00", "a\x00b"])
def test_project_with_nul_is_problem_400(client, value):
    result = client.simulate_get("/users/alice/checkins", params={"project": value})

    assert result.status_code == 400
    assert result.headers["content-type"] == PROBLEM_JSON
    assert result.json["detail"] == (
        f"invalid query parameter project={value!r}: "
        "expected a project name without NUL characters"
    )


# Falcon decodes bytes that are not UTF-8 to U+FFFD.
@pytest.mark.parametrize(
    ("path", "user"),
    [
        ("/users/%FF/checkins", "\ufffd"),
        ("/users/%ED%A0%80/checkins", "\ufffd" * 3),
        ("/users/%C0%AE%C0%AE/checkins", "\ufffd" * 4),
    ],
)
def test_undecodable_user_is_problem_404(client, path, user):
    result = client.simulate_get(path)

    assert_problem(
        result, 404, "Not Found", f"user {user!r} not found; GET /users lists the users"
    )


@pytest.mark.parametrize(
    ("query_string", "detail"),
    [
        (
            "from=%FF",
            "invalid query parameter from='\ufffd': "
            "expected a date as YYYY-MM-DD from 1900 to 2999, such as 2018-11-26",
        ),
        (
            "limit=%ED%A0%80",
            "invalid query parameter limit='\ufffd\ufffd\ufffd': "
            "expected an integer from 1 to 1000",
        ),
        (
            "cursor=%C0%AE",
            "invalid query parameter cursor='\ufffd\ufffd': "
            "expected the next_cursor of a previous page, unchanged, with the "
            "same user, from, to and project",
        ),
    ],
)
def test_undecodable_parameter_is_problem_400(client, query_string, detail):
    result = client.simulate_get("/users/alice/checkins", query_string=query_string)

    assert_problem(result, 400, "Bad Request", detail)


def test_undecodable_project_matches_nothing(client):
    result = client.simulate_get("/users/alice/checkins", query_string="project=%FF%FE")

    assert result.status_code == 200
    assert result.json == {"user": "alice", "checkins": [], "next_cursor": None}


def test_undecodable_parameter_name_is_ignored(client):
    result = client.simulate_get("/users/bob/checkins", query_string="%FF=1")

    assert result.status_code == 200
    assert [row["id"] for row in result.json["checkins"]] == [8, 9]


def test_far_future_day_is_problem_400(client):
    """A `to` day past the supported years is a 400, not a server error."""
    result = client.simulate_get("/users/alice/checkins", params={"to": "9999-12-31"})

    assert result.status_code == 400
    assert result.headers["content-type"] == PROBLEM_JSON
    assert "to='9999-12-31'" in result.json["detail"]
