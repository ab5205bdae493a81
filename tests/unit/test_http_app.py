import datetime as dt
import json
import logging
import sys
import types
from decimal import Decimal

import pytest
from falcon import testing

import checkins
from checkins.adapters.memory import InMemoryCheckinQueries, InMemoryCheckinRepository
from checkins.domain.queries import CheckinPage, CheckinQuery, UserTotals
from checkins.entrypoints import wsgi
from checkins.entrypoints.http import create_app, dumps_json, format_utc


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


def test_wsgi_app_uses_bootstrap_settings(monkeypatch):
    queries = InMemoryCheckinQueries(InMemoryCheckinRepository())
    calls = []

    class Settings:
        @classmethod
        def from_env(cls):
            calls.append("from_env")
            return "settings"

    def build_queries(settings):
        calls.append(("build_queries", settings))
        return queries

    bootstrap = types.ModuleType("checkins.bootstrap")
    bootstrap.Settings = Settings
    bootstrap.build_queries = build_queries
    # Both, because an earlier import of the real module sets the attribute.
    monkeypatch.setitem(sys.modules, "checkins.bootstrap", bootstrap)
    monkeypatch.setattr(checkins, "bootstrap", bootstrap, raising=False)

    client = testing.TestClient(wsgi.get_app())

    assert calls == ["from_env", ("build_queries", "settings")]
    assert client.simulate_get("/users").json == {"users": []}
