import json
import logging

import pytest
from falcon import testing

from checkins import bootstrap
from checkins.adapters.memory import InMemoryCheckinQueries, InMemoryCheckinRepository
from checkins.domain.queries import QueriesUnavailableError
from checkins.entrypoints.http import create_app
from checkins.entrypoints.http_middleware import (
    TokenConfigError,
    _access_line,
    hash_token,
    load_token_hashes,
)


TOKEN = "s3cr3t-token_value"
OTHER_TOKEN = "another.token~value"
PROBLEM_JSON = "application/problem+json"


class DownQueries(InMemoryCheckinQueries):
    """Queries whose database is unreachable."""

    def list_users(self):
        raise QueriesUnavailableError("no database connection within 2 s")

    def check(self, timeout=None):
        raise QueriesUnavailableError("no database connection within 1 s")


@pytest.fixture(name="queries")
def fixture_queries():
    return InMemoryCheckinQueries(InMemoryCheckinRepository())


@pytest.fixture(name="secured")
def fixture_secured(queries):
    hashes = [bytes.fromhex(hash_token(TOKEN)), bytes.fromhex(hash_token(OTHER_TOKEN))]
    return testing.TestClient(create_app(queries, token_hashes=hashes))


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("token", [TOKEN, OTHER_TOKEN])
def test_auth_accepts_each_configured_token(secured, token):
    result = secured.simulate_get("/users", headers=bearer(token))

    assert result.status_code == 200
    assert result.json == {"users": []}


def test_auth_scheme_is_case_insensitive(secured):
    result = secured.simulate_get(
        "/users", headers={"Authorization": f"bearer {TOKEN}"}
    )

    assert result.status_code == 200


def test_auth_missing_token_is_401(secured):
    result = secured.simulate_get("/users")

    assert result.status_code == 401
    assert result.headers["content-type"] == PROBLEM_JSON
    assert result.headers["www-authenticate"] == 'Bearer realm="checkins"'
    assert result.json == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "missing bearer token: send the header Authorization: Bearer TOKEN",
    }


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        "Bearer",
        f"Bearer {TOKEN} {TOKEN}",
        "Bearer tökén",
        "Bearer " + "a" * 5000,
    ],
)
def test_auth_invalid_token_is_401(secured, header):
    result = secured.simulate_get("/projects", headers={"Authorization": header})

    assert result.status_code == 401
    assert result.headers["www-authenticate"] == (
        'Bearer realm="checkins", error="invalid_token"'
    )
    assert result.json["detail"] == (
        "invalid bearer token: send a token that the service's operators issued, "
        "as Authorization: Bearer TOKEN"
    )
    assert "wrong-token" not in result.text


@pytest.mark.parametrize("header", [f"Basic {TOKEN}", "Digest x", "token"])
def test_auth_other_scheme_is_401_without_error(secured, header):
    result = secured.simulate_get("/projects", headers={"Authorization": header})

    assert result.status_code == 401
    assert result.headers["www-authenticate"] == 'Bearer realm="checkins"'
    assert result.json["detail"] == (
        "missing bearer token: the Authorization header uses another scheme; "
        "send the header Authorization: Bearer TOKEN"
    )


@pytest.mark.parametrize(
    "path", ["/metrics", "/openapi.json", "/users/ned/checkins", "/nowhere"]
)
def test_auth_covers_other_routes(secured, path):
    assert secured.simulate_get(path).status_code == 401


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_auth_leaves_probes_open(secured, path):
    assert secured.simulate_get(path).status_code == 200


def test_auth_off_without_hashes(queries):
    client = testing.TestClient(create_app(queries))

    assert client.simulate_get("/users").status_code == 200


def test_token_never_logged(secured, caplog):
    with caplog.at_level(logging.DEBUG):
        secured.simulate_get("/users", headers=bearer(TOKEN))
        secured.simulate_get("/users", headers=bearer("wrong-token"))

    assert TOKEN not in caplog.text
    assert "wrong-token" not in caplog.text


def test_token_hashes_read_from_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(
        f"# issued 2026-01-05\n{hash_token(TOKEN)}\n\n"
        f"  {hash_token(OTHER_TOKEN).upper()}\n",
        encoding="ascii",
    )

    assert load_token_hashes(path, None) == (
        bytes.fromhex(hash_token(TOKEN)),
        bytes.fromhex(hash_token(OTHER_TOKEN)),
    )


def test_token_hashes_read_from_text():
    text = f"{hash_token(TOKEN)}, {hash_token(OTHER_TOKEN)}"

    assert load_token_hashes(None, text) == (
        bytes.fromhex(hash_token(TOKEN)),
        bytes.fromhex(hash_token(OTHER_TOKEN)),
    )


def test_plaintext_token_in_file_is_rejected_unshown(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"{hash_token(TOKEN)}\n{TOKEN}\n", encoding="ascii")

    with pytest.raises(TokenConfigError) as raised:
        load_token_hashes(path, None)

    assert str(raised.value) == (
        f"line 2 of {path} is not a SHA-256 digest in hex (64 characters 0-9 and "
        "a-f); store `sha256sum` of each token, never the token"
    )
    assert TOKEN not in str(raised.value)


def test_plaintext_token_in_text_is_rejected_unshown():
    with pytest.raises(TokenConfigError) as raised:
        load_token_hashes(None, f"{hash_token(TOKEN)} {TOKEN}")

    assert str(raised.value) == (
        "value 2 of CHECKINS_API_TOKEN_HASHES is not a SHA-256 digest in hex "
        "(64 characters 0-9 and a-f); list the sha256 of each token, never the token"
    )


def test_missing_tokens_file_is_reported(tmp_path):
    path = tmp_path / "absent"

    with pytest.raises(TokenConfigError, match="cannot read the API token hashes file"):
        load_token_hashes(path, None)


@pytest.mark.parametrize("content", ["", "# every token revoked\n\n"])
def test_tokens_file_without_digest_is_rejected(tmp_path, content):
    path = tmp_path / "tokens"
    path.write_text(content, encoding="ascii")

    with pytest.raises(TokenConfigError) as raised:
        load_token_hashes(path, None)

    assert str(raised.value) == (
        f"the API token hashes file {path} contains no SHA-256 digest; add the "
        "sha256 of each accepted token, or unset CHECKINS_API_TOKENS_FILE to "
        "serve without authentication"
    )


def test_tokens_file_with_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "tokens"
    path.write_bytes(b"\xef\xbb\xbf" + hash_token(TOKEN).encode() + b"\r\n")

    assert load_token_hashes(path, None) == (bytes.fromhex(hash_token(TOKEN)),)


def test_tokens_file_not_utf8_is_rejected(tmp_path):
    path = tmp_path / "tokens"
    path.write_bytes(b"\xff\xfe\n")

    with pytest.raises(TokenConfigError) as raised:
        load_token_hashes(path, None)

    assert str(raised.value) == (
        f"the API token hashes file {path} is not UTF-8 text; store one SHA-256 "
        "hex digest a line"
    )


@pytest.mark.parametrize(
    "name", ["CHECKINS_API_TOKENS_FILE", "CHECKINS_API_TOKEN_HASHES"]
)
@pytest.mark.parametrize("value", ["", "  "])
def test_blank_token_setting_is_rejected(name, value):
    with pytest.raises(bootstrap.SettingsError) as raised:
        bootstrap.Settings.from_env({name: value})

    assert str(raised.value) == (
        f"{name} is set but empty; give it a value, or unset it to serve without "
        "authentication"
    )


def test_blank_database_url_is_rejected():
    with pytest.raises(bootstrap.SettingsError) as raised:
        bootstrap.Settings.from_env({"CHECKINS_DATABASE_URL": ""})

    assert str(raised.value) == (
        "CHECKINS_DATABASE_URL is set but empty; give it a value, or unset it to "
        "use the embedded server"
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_pool_timeout_is_rejected(value):
    with pytest.raises(bootstrap.SettingsError) as raised:
        bootstrap.Settings.from_env({"CHECKINS_POOL_TIMEOUT": value})

    assert str(raised.value) == (
        f"invalid CHECKINS_POOL_TIMEOUT={value!r}: expected a positive number"
    )


def test_request_id_is_kept_when_valid(queries):
    client = testing.TestClient(create_app(queries))

    result = client.simulate_get("/health", headers={"X-Request-ID": "abc-123.x:y_z"})

    assert result.headers["x-request-id"] == "abc-123.x:y_z"


@pytest.mark.parametrize(
    "given", ["", "a b", "line\nbreak", "x" * 129, "ünï", '{"json": 1}']
)
def test_request_id_is_replaced_when_invalid(queries, given):
    client = testing.TestClient(create_app(queries))

    result = client.simulate_get("/health", headers={"X-Request-ID": given})

    generated = result.headers["x-request-id"]
    assert generated != given
    assert len(generated) == 32
    assert set(generated) <= set("0123456789abcdef")


def test_request_id_is_new_per_request(queries):
    client = testing.TestClient(create_app(queries))

    ids = {client.simulate_get("/health").headers["x-request-id"] for _ in range(3)}

    assert len(ids) == 3


def test_access_log_line_per_request(queries, caplog):
    client = testing.TestClient(create_app(queries))

    with caplog.at_level(logging.INFO, logger="checkins.access"):
        client.simulate_get("/users", headers={"X-Request-ID": "req-1"})
        client.simulate_get("/users/nobody/checkins", headers={"X-Request-ID": "req-2"})

    records = [r for r in caplog.records if r.name == "checkins.access"]
    lines = [json.loads(record.getMessage()) for record in records]
    assert [
        {key: line[key] for key in ("method", "path", "status", "request_id")}
        for line in lines
    ] == [
        {"method": "GET", "path": "/users", "status": 200, "request_id": "req-1"},
        {
            "method": "GET",
            "path": "/users/nobody/checkins",
            "status": 404,
            "request_id": "req-2",
        },
    ]
    assert all(isinstance(line["duration_ms"], float) for line in lines)
    assert all(0 <= line["duration_ms"] < 5000 for line in lines)
    assert sorted(lines[0]) == ["duration_ms", "method", "path", "request_id", "status"]


def test_access_log_keeps_non_ascii_characters(queries, caplog):
    client = testing.TestClient(create_app(queries))

    with caplog.at_level(logging.INFO, logger="checkins.access"):
        client.simulate_get("/users/jos%C3%A9/checkins")
        # %ED%A0%80 is not UTF-8, so Falcon decodes it to U+FFFD.
        client.simulate_get("/users/%ED%A0%80/checkins")

    messages = [r.getMessage() for r in caplog.records if r.name == "checkins.access"]
    assert '"path":"/users/josé/checkins"' in messages[0]
    assert json.loads(messages[1])["path"] == "/users/\ufffd\ufffd\ufffd/checkins"


def test_access_line_escapes_lone_surrogates():
    line = _access_line({"path": "/users/\ud800/checkins", "status": 404})

    assert line == '{"path": "/users/\\ud800/checkins", "status": 404}'


# Falcon's test client checks requests with wsgiref, which warns of such methods.
@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")
def test_metrics_count_unknown_methods_as_other(queries):
    client = testing.TestClient(create_app(queries))
    client.simulate_request("M67181", "/users")
    client.simulate_request("X-INVENTED", "/users")

    lines = client.simulate_get("/metrics").text.splitlines()

    assert [line for line in lines if "M67181" in line or "INVENTED" in line] == []
    assert (
        'checkins_http_requests_total{method="other",route="/users",status="400"} 2.0'
        in lines
    )


def test_metrics_count_requests_by_route(queries):
    client = testing.TestClient(create_app(queries))
    client.simulate_get("/users")
    client.simulate_get("/users")
    client.simulate_get("/users/nobody/checkins")
    client.simulate_get("/no/such/path")

    result = client.simulate_get("/metrics")

    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/plain")
    lines = result.text.splitlines()
    assert (
        'checkins_http_requests_total{method="GET",route="/users",status="200"} 2.0'
        in lines
    )
    assert (
        "checkins_http_requests_total"
        '{method="GET",route="/users/{user}/checkins",status="404"} 1.0' in lines
    )
    assert (
        'checkins_http_requests_total{method="GET",route="unmatched",status="404"} 1.0'
        in lines
    )
    assert 'checkins_http_request_duration_seconds_count{route="/users"} 2.0' in lines
    assert "checkins_db_pool_size 0.0" in lines


def test_metrics_read_pool_figures(queries, monkeypatch):
    figures = {
        "pool_max": 4,
        "pool_size": 3,
        "pool_available": 2,
        "requests_waiting": 1,
    }
    monkeypatch.setattr(queries, "pool_stats", lambda: figures)
    client = testing.TestClient(create_app(queries))

    lines = client.simulate_get("/metrics").text.splitlines()

    assert "checkins_db_pool_max 4.0" in lines
    assert "checkins_db_pool_size 3.0" in lines
    assert "checkins_db_pool_available 2.0" in lines
    assert "checkins_db_requests_waiting 1.0" in lines


def test_database_down_is_503(caplog):
    client = testing.TestClient(create_app(DownQueries(InMemoryCheckinRepository())))

    users = client.simulate_get("/users")
    ready = client.simulate_get("/ready")

    assert users.status_code == 503
    assert users.headers["content-type"] == PROBLEM_JSON
    assert users.headers["retry-after"] == "1"
    assert users.json == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "no database connection within 2 s; try again later",
    }
    assert ready.status_code == 503
    assert ready.json["detail"] == "no database connection within 1 s; try again later"


def test_ready_when_database_answers(queries):
    client = testing.TestClient(create_app(queries))

    result = client.simulate_get("/ready")

    assert result.status_code == 200
    assert result.json == {"status": "ready"}


def test_invalid_default_zone_is_rejected(queries):
    with pytest.raises(ValueError, match="CHECKINS_TIMEZONE 'Mars/Olympus'"):
        create_app(queries, time_zone="Mars/Olympus")
