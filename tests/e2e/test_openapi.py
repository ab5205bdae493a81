"""The OpenAPI document against the app's routes and its real responses."""

import json
import re
import shutil
import subprocess
import sys
import unicodedata
import urllib.parse

import falcon.inspect
import jsonschema
import pytest
import referencing
import referencing.jsonschema
import schemathesis
from falcon import testing
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from checkins.adapters.csv_source import CsvFileSource
from checkins.adapters.postgres import PostgresCheckinRepository
from checkins.adapters.postgres_queries import PostgresCheckinQueries
from checkins.domain.model import Flag
from checkins.entrypoints.http import create_app
from checkins.entrypoints.http_middleware import hash_token
from checkins.entrypoints.http_params import ParameterError, parse_project
from checkins.entrypoints.openapi import API_VERSION, DOCUMENT
from checkins.services import ingest


CSV = """\
user,timestamp,hours,project
ned,2018-11-12 16:30:52.0284 UTC,2,bizdev
ned,2018-11-12 16:30:52.0284 UTC,1,bizdev
ned,2018-11-13 09:00:00 UTC,4,hiring
ned,2018-11-13 09:00:00 UTC,4,hiring
alice,2018-11-26 14:47:36.0429 UTC,2,Hiring
"""

DOCUMENT_URI = "urn:checkins:openapi"
REGISTRY = referencing.Registry().with_resource(
    DOCUMENT_URI, referencing.jsonschema.DRAFT202012.create_resource(DOCUMENT)
)
UNREACHABLE_URL = "postgresql://postgres@/checkins?host=/nonexistent-socket-dir"


@pytest.fixture(name="queries", scope="module")
def fixture_queries(module_database_url, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "checkins.csv"
    path.write_text(CSV, encoding="utf-8")
    ingest(CsvFileSource(path), PostgresCheckinRepository(module_database_url))
    queries = PostgresCheckinQueries(module_database_url)
    yield queries
    queries.close()


@pytest.fixture(name="app", scope="module")
def fixture_app(queries):
    return create_app(queries)


@pytest.fixture(name="client", scope="module")
def fixture_client(app):
    return testing.TestClient(app)


def operation_of(path):
    """Return the document's GET operation of the route that serves `path`."""
    parts = path.split("?")[0].strip("/").split("/")
    for template, item in DOCUMENT["paths"].items():
        pattern = template.strip("/").split("/")
        if len(pattern) == len(parts) and all(
            p == q or p.startswith("{") for p, q in zip(pattern, parts, strict=True)
        ):
            return item["get"]
    raise AssertionError(f"no operation in the document serves {path}")


def check_response(path, result):
    """Validate `result` against the document's response for its status."""
    responses = operation_of(path)["responses"]
    assert str(result.status_code) in responses, (path, result.status_code)
    response = responses[str(result.status_code)]
    for name in response.get("headers", {}):
        if name == "ETag" and result.status_code >= 400:
            continue
        assert name.lower() in result.headers, (path, name)
    if result.status_code == 304:
        assert result.text == ""
        return
    media_type = result.headers["content-type"].split(";")[0]
    content = response["content"]
    assert media_type in content, (path, media_type)
    schema = content[media_type]["schema"]
    if media_type.endswith("json"):
        body = json.loads(result.text)
        if "$ref" in schema:
            schema = {"$ref": DOCUMENT_URI + schema["$ref"]}
        validator = jsonschema.Draft202012Validator(
            schema,
            registry=REGISTRY,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        validator.validate(body)


def test_document_is_openapi_3_1_version_1():
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["info"]["version"] == API_VERSION == "1.0.0"
    jsonschema.Draft202012Validator.check_schema(
        DOCUMENT["components"]["schemas"]["CheckinPage"]
    )


def test_document_lists_every_flag():
    checkin = DOCUMENT["components"]["schemas"]["Checkin"]

    assert checkin["properties"]["flags"]["items"]["enum"] == [
        flag.value for flag in Flag
    ]


def test_document_lists_every_route(app):
    served = {
        (route.path, method.method)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }
    documented = {
        (path, method.upper())
        for path, item in DOCUMENT["paths"].items()
        for method in item
    }

    # The document describes GET, and its description states that every
    # route also serves HEAD and OPTIONS.
    assert {(path, "GET") for path, _ in documented} == documented
    assert {
        (path, method)
        for path, _ in documented
        for method in ("GET", "HEAD", "OPTIONS")
    } == served
    assert "HEAD" in DOCUMENT["info"]["description"]


def parameter_schema(path, name):
    """Return the schema of the GET parameter `name` of `path` in the document."""
    (schema,) = [
        parameter["schema"]
        for parameter in DOCUMENT["paths"][path]["get"]["parameters"]
        if parameter["name"] == name
    ]
    return schema


PROJECT_SCHEMA = parameter_schema("/users/{user}/checkins", "project")


@pytest.mark.parametrize(
    "project",
    [
        "",
        " ",
        "\u200b",
        "\ufeff",
        " \u200b\t\ufeff ",
        "\xad",
        "\x00",
        "ned\x00",
        "\u200b\x00",
    ],
)
def test_blank_project_fails_schema_and_server(client, project):
    """A project that is blank once normalised, or contains NUL, fails both."""
    query = urllib.parse.urlencode({"project": project})

    result = client.simulate_get("/users/ned/checkins", query_string=query)

    assert not jsonschema.Draft202012Validator(PROJECT_SCHEMA).is_valid(project)
    assert result.status_code == 400
    assert result.json["detail"].startswith(
        f"invalid query parameter project={project!r}: expected a project name"
    )


def test_document_accepts_project_with_invisible_characters(client):
    project = "\ufeff Bizdev\u200b"
    query = urllib.parse.urlencode({"project": project})

    result = client.simulate_get("/users/ned/checkins", query_string=query)

    assert jsonschema.Draft202012Validator(PROJECT_SCHEMA).is_valid(project)
    assert result.status_code == 200
    assert [row["project"] for row in result.json["checkins"]] == ["bizdev", "bizdev"]


def test_astral_format_project_fails_server_only(client):
    """A project of format characters above U+FFFF passes the schema, not the server.

    The pattern leaves those characters out, as its description states.
    """
    project = "\U000e0001\U000110bd"
    query = urllib.parse.urlencode({"project": project})

    result = client.simulate_get("/users/ned/checkins", query_string=query)

    assert jsonschema.Draft202012Validator(PROJECT_SCHEMA).is_valid(project)
    assert result.status_code == 400


def test_project_pattern_matches_server_on_every_character():
    """The pattern accepts a one-character project exactly when the server does.

    jsonschema checks a pattern with re.search, as here. The format characters
    above U+FFFF are left out, because the pattern accepts them and the server
    rejects them.
    """
    pattern = re.compile(PROJECT_SCHEMA["pattern"])
    differing = []
    for code_point in range(sys.maxunicode + 1):
        character = chr(code_point)
        category = unicodedata.category(character)
        if category in ("Cs", "Cn"):
            continue
        if category == "Cf" and code_point > 0xFFFF:
            continue
        try:
            parse_project(character)
            accepted = True
        except ParameterError:
            accepted = False
        if accepted != bool(pattern.search(character)):
            differing.append(f"U+{code_point:04X}")

    assert differing == []


# Reads [pattern, names] as JSON from standard input and prints, for the flags
# "" and "u", whether RegExp.prototype.test matches each name.
NODE_SCRIPT = """
const [pattern, names] = JSON.parse(require("fs").readFileSync(0, "utf8"));
const verdicts = {};
for (const flags of ["", "u"]) {
  const expression = new RegExp(pattern, flags);
  verdicts[flags] = names.map((name) => expression.test(name));
}
console.log(JSON.stringify(verdicts));
"""

# Python's verdict on each project name: True when the pattern matches.
PATTERN_VERDICTS = {
    "abc": True,
    "Dec": True,
    "2019": True,
    "café": True,
    "\u200b": False,
    "\ufeff": False,
    "a\u200b": True,
    " \x1c\x85\xa0\u3000": False,
    "ned\x00": False,
    "\U0001f600": True,
    "\U000e0001": True,
}


@pytest.mark.skipif(
    shutil.which("node") is None,
    reason="node is not on PATH, so the pattern cannot be checked as ECMA-262",
)
def test_served_project_pattern_is_ecma_262(client):
    """node compiles the served pattern, with and without the u flag, and agrees.

    JSON Schema, and so OpenAPI 3.1, gives patterns ECMA-262 syntax.
    """
    served = client.simulate_get("/openapi.json").json
    (parameter,) = [
        parameter
        for parameter in served["paths"]["/users/{user}/checkins"]["get"]["parameters"]
        if parameter["name"] == "project"
    ]
    pattern = parameter["schema"]["pattern"]
    names = list(PATTERN_VERDICTS)

    node = subprocess.run(
        ["node", "-e", NODE_SCRIPT],
        input=json.dumps([pattern, names]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    python_verdicts = [bool(re.search(pattern, name)) for name in names]

    assert node.returncode == 0, node.stderr
    verdicts = json.loads(node.stdout)
    assert python_verdicts == list(PATTERN_VERDICTS.values())
    assert verdicts[""] == python_verdicts
    assert verdicts["u"] == python_verdicts


def test_document_served_as_json(client):
    result = client.simulate_get("/openapi.json")

    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    # Authentication is off, so the served document requires no token.
    assert result.json == {**DOCUMENT, "security": []}


@pytest.mark.parametrize(
    "path",
    [
        "/health",
        "/ready",
        "/openapi.json",
        "/projects",
        "/users",
        "/users/ned/checkins",
        "/users/ned/checkins?limit=1",
        "/users/ned/checkins?format=csv",
        "/users/ned/checkins?limit=0",
        "/users/ned/checkins?from=2018-13-01",
        "/users/nobody/checkins",
        "/users/ned/summary?by=day&tz=Asia/Manila",
        "/users/ned/summary?by=week",
        "/users/ned/summary?by=month&from=2018-11-13",
        "/users/ned/summary?by=project",
        "/users/ned/summary?by=decade",
        "/users/ned/summary?by=day&tz=Nowhere/Land",
        "/users/nobody/summary?by=day",
    ],
)
def test_real_responses_match_document(client, path):
    path_only, _, query = path.partition("?")

    result = client.simulate_get(path_only, query_string=query)

    check_response(path, result)


def test_metrics_response_matches_document(client):
    result = client.simulate_get("/metrics")

    check_response("/metrics", result)


@pytest.mark.parametrize(
    "path", ["/users", "/projects", "/users/ned/checkins", "/openapi.json"]
)
def test_not_modified_matches_document(client, path):
    tag = client.simulate_get(path).headers["etag"]

    result = client.simulate_get(path, headers={"If-None-Match": tag})

    assert result.status_code == 304
    check_response(path, result)


def test_served_document_lists_bearer_auth_with_tokens(queries):
    app = create_app(queries, token_hashes=[bytes.fromhex(hash_token("t"))])
    client = testing.TestClient(app)
    headers = {"Authorization": "Bearer t"}

    served = client.simulate_get("/openapi.json", headers=headers).json

    assert served["security"] == [{"bearerAuth": []}]
    assert served == DOCUMENT


@pytest.mark.parametrize("path", ["/users", "/metrics", "/users/ned/summary"])
def test_unauthorized_matches_document(queries, path):
    app = create_app(queries, token_hashes=[bytes.fromhex(hash_token("t"))])

    result = testing.TestClient(app).simulate_get(path)

    assert result.status_code == 401
    check_response(path, result)


@pytest.mark.parametrize(
    "path", ["/ready", "/users", "/projects", "/users/ned/summary?by=day"]
)
def test_unavailable_matches_document(path):
    queries = PostgresCheckinQueries(UNREACHABLE_URL, timeout=0.2)
    path_only, _, query = path.partition("?")
    try:
        result = testing.TestClient(create_app(queries)).simulate_get(
            path_only, query_string=query
        )
    finally:
        queries.close()

    assert result.status_code == 503
    check_response(path, result)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# schemathesis 4.32's lazy pytest schema (schemathesis.pytest.from_fixture)
# fails on pytest 9 with "'Function' object has no attribute '_nodeid'", so
# each operation's Hypothesis strategy runs inside one plain test instead.
# schemathesis leaves out the operation that serves the document itself.
@pytest.mark.parametrize(
    "operation_id",
    [
        item["get"]["operationId"]
        for path, item in DOCUMENT["paths"].items()
        if path != "/openapi.json"
    ],
)
def test_api_conforms_to_document(app, operation_id):
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    (operation,) = [
        result.ok()
        for result in api.get_all_operations()
        if result.ok().definition.raw["operationId"] == operation_id
    ]

    # The examples are bounded so that the run over all operations stays short.
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy())
    def call_and_validate(case):
        case.call_and_validate(checks=CHECKS)

    call_and_validate()
