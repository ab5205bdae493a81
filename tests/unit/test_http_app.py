import datetime as dt
import json
import logging
from decimal import Decimal

import pytest
from falcon import testing

from checkins import bootstrap
from checkins.adapters.memory import InMemoryCheckinQueries, InMemoryCheckinRepository
from checkins.domain.queries import CheckinPage, CheckinQuery, UserTotals
from checkins.entrypoints import wsgi
from checkins.entrypoints.http import (
    create_app,
    dumps_fast_json,
    dumps_json,
    format_utc,
)
from checkins.entrypoints.http_middleware import hash_token


PLUS_EIGHT = dt.timezone(dt.timedelta(hours=8))


class BrokenQueries(InMemoryCheckinQueries):
    """Queries that fail as a lost database connection would."""

    def list_users(self) -> list[UserTotals]:
        raise ConnectionError("database at 10.0.0.5 is unreachable")

    def user_checkins(self, query: CheckinQuery) -> CheckinPage:
        raise ConnectionError("database at 10.0.0.5 is unreachable")


def test_dumps_json_writes_decimal_number():
    assert dumps_json({"hours": Decimal("7.50")}) == '{"hours": 7.50}'


def test_dumps_json_keeps_every_decimal_digit():
    text = dumps_json([Decimal("0.1000000000000000055511151231257827")])

    assert json.loads(text, parse_float=Decimal) == [
        Decimal("0.1000000000000000055511151231257827")
    ]


def test_dumps_json_expands_decimal_exponent():
    assert dumps_json([Decimal("1E+1"), Decimal("-2.5E-3")]) == "[10, -0.0025]"


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), float("nan")])
def test_dumps_json_rejects_non_finite_numbers(value):
    with pytest.raises(ValueError):
        dumps_json({"hours": value})


def test_dumps_json_writes_utc_stamp():
    stamp = dt.datetime(2018, 11, 26, 14, 47, 36, 42900, tzinfo=dt.UTC)

    assert dumps_json({"at": stamp}) == '{"at": "2018-11-26T14:47:36.042900Z"}'


def test_dumps_json_writes_plain_values():
    value = {"a": [1, "ü", None, True, 2.5], "b": ("x",), "c": {}}

    assert json.loads(dumps_json(value)) == {
        "a": [1, "ü", None, True, 2.5],
        "b": ["x"],
        "c": {},
    }


def test_dumps_json_escapes_strings():
    assert dumps_json(['a"b\\c\n']) == '["a\\"b\\\\c\\n"]'


def test_dumps_json_rejects_unknown_types():
    with pytest.raises(TypeError):
        dumps_json({"day": dt.date(2018, 11, 26)})


def test_dumps_json_rejects_non_string_keys():
    with pytest.raises(TypeError):
        dumps_json({1: "one"})


def test_format_utc_drops_zero_fraction():
    stamp = dt.datetime(2018, 11, 26, 14, 47, tzinfo=dt.UTC)

    assert format_utc(stamp) == "2018-11-26T14:47:00Z"


def test_format_utc_converts_offsets():
    plus_eight = dt.timezone(dt.timedelta(hours=8))
    stamp = dt.datetime(2018, 11, 26, 22, 47, 36, 500000, tzinfo=plus_eight)

    assert format_utc(stamp) == "2018-11-26T14:47:36.500000Z"


def test_format_utc_rejects_naive_stamp():
    with pytest.raises(ValueError, match="has no time zone"):
        format_utc(dt.datetime(2018, 11, 26))  # noqa: DTZ001


@pytest.mark.parametrize("path", ["/users", "/users/alice/checkins"])
def test_unexpected_error_is_problem_500(path, caplog):
    client = testing.TestClient(create_app(BrokenQueries(InMemoryCheckinRepository())))

    with caplog.at_level(logging.ERROR, logger="checkins.entrypoints.http"):
        result = client.simulate_get(path)

    assert result.status_code == 500
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "the server failed to handle the request and logged the error; "
        "try again later or report it to the service's operators",
    }
    assert "10.0.0.5" not in result.text
    assert "Traceback" not in result.text


def test_unexpected_error_is_logged_with_traceback(caplog):
    client = testing.TestClient(create_app(BrokenQueries(InMemoryCheckinRepository())))

    with caplog.at_level(logging.ERROR, logger="checkins.entrypoints.http"):
        client.simulate_get("/users")

    (record,) = caplog.records
    assert record.getMessage() == "unexpected error in GET '/users'"
    assert record.exc_info[0] is ConnectionError
    assert "database at 10.0.0.5 is unreachable" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text


def test_health_reads_no_database():
    client = testing.TestClient(create_app(BrokenQueries(InMemoryCheckinRepository())))

    result = client.simulate_get("/health")

    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_wsgi_app_uses_environment_settings(monkeypatch):
    repository = InMemoryCheckinRepository()
    queries = InMemoryCheckinQueries(repository)
    built = []

    def build_queries(settings):
        built.append(settings)
        return queries

    monkeypatch.setattr(bootstrap, "build_queries", build_queries)
    monkeypatch.setenv("CHECKINS_DATABASE_URL", "postgresql://db.invalid/checkins")
    monkeypatch.setenv("CHECKINS_TIMEZONE", "Asia/Manila")
    monkeypatch.setenv("CHECKINS_API_TOKEN_HASHES", hash_token("secret-token"))
    monkeypatch.setenv("CHECKINS_ETAGS", "off")

    client = testing.TestClient(wsgi.get_app())
    denied = client.simulate_get("/users")
    allowed = client.simulate_get(
        "/users", headers={"Authorization": "Bearer secret-token"}
    )

    assert [settings.database_url for settings in built] == [
        "postgresql://db.invalid/checkins"
    ]
    assert built[0].time_zone == "Asia/Manila"
    assert denied.status_code == 401
    assert allowed.status_code == 200
    assert allowed.json == {"users": []}
    assert "etag" not in allowed.headers
    wsgi.close_apps()


def test_fast_json_matches_dumps_json():
    value = {
        "hours": [Decimal("7.50"), Decimal("1E+1"), Decimal("0.1000000000000000055")],
        "at": dt.datetime(2018, 11, 26, 22, 47, 36, 500000, tzinfo=PLUS_EIGHT),
        "plain": [1, "ü", None, True, 2.5],
    }

    assert json.loads(dumps_fast_json(value), parse_float=Decimal) == json.loads(
        dumps_json(value), parse_float=Decimal
    )
    assert dumps_fast_json(value).startswith(b'{"hours":[7.50,10,0.1000')


@pytest.mark.parametrize("value", [Decimal("NaN"), dt.date(2018, 11, 26), object()])
def test_fast_json_rejects_values_without_json_form(value):
    with pytest.raises(TypeError):
        dumps_fast_json({"value": value})
