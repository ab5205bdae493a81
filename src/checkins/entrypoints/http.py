"""The HTTP API: a Falcon WSGI app that serves stored check-ins.

docs/api.md describes the contract, and `checkins.entrypoints.openapi`
contains its OpenAPI document. Every error is an RFC 9457 problem document
(``application/problem+json``).
"""

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import urllib.parse
from collections.abc import Iterable, Iterator
from decimal import Decimal
from http import HTTPStatus

import falcon
import falcon.media
import falcon.uri
import orjson
from falcon.util import mediatypes

from checkins import services
from checkins.domain.queries import (
    InvalidTimeZoneError,
    ProjectTotals,
    QueriesUnavailableError,
    StoredCheckin,
    SummaryGroup,
    UnknownUserError,
    UserTotals,
    dumps_json,
    format_utc,
)
from checkins.entrypoints import openapi
from checkins.entrypoints.http_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from checkins.entrypoints.http_metrics import HttpMetrics
from checkins.entrypoints.http_middleware import RequestMiddleware
from checkins.entrypoints.http_params import (
    ParameterError,
    check_csv_parameters,
    encode_cursor,
    parse_checkin_query,
    parse_format,
    parse_summary_query,
    parse_time_zone,
    show,
)
from checkins.entrypoints.spreadsheet import safe_cell
from checkins.ports import CheckinQueries


__all__ = ["create_app", "dumps_fast_json", "dumps_json", "format_utc"]

logger = logging.getLogger(__name__)

MEDIA_PROBLEM_JSON = "application/problem+json"
MEDIA_CSV = "text/csv; charset=utf-8"

# Routes served without a bearer token, for the orchestrator's probes.
OPEN_PATHS = ("/health", "/ready")

# The methods of every route, as the Allow header lists them.
ALLOWED_METHODS = "GET, HEAD, OPTIONS"

# /ready responds within 2 s, because its check waits at most this long for the
# database.
READY_TIMEOUT_SECONDS = 1.0

_ROUTES = (
    "/health, /ready, /metrics, /openapi.json, /projects, /users, "
    "/users/{user}/checkins and /users/{user}/summary"
)

# Responses may differ by token and are revalidated with their ETag each time.
_CACHE_CONTROL = "private, no-cache"
_CSV_COLUMNS = ("id", "user", "checkin_at", "hours", "project", "flags")


def create_app(
    queries: CheckinQueries,
    *,
    time_zone: str = "UTC",
    token_hashes: Iterable[bytes] = (),
    etags: bool = True,
) -> falcon.App:
    """Build the WSGI app that serves the check-ins that `queries` read.

    `time_zone` is the default of the summary's tz parameter. With
    `token_hashes`, every route but /health and /ready needs a bearer token
    whose SHA-256 is among them. With `etags`, responses carry an ETag and
    conditional requests may get 304.
    """
    try:
        parse_time_zone("CHECKINS_TIMEZONE", time_zone)
    except ParameterError:
        raise ValueError(
            f"invalid CHECKINS_TIMEZONE {time_zone!r}: expected an IANA time zone "
            "name, such as UTC or Asia/Manila"
        ) from None
    token_hashes = tuple(token_hashes)
    metrics = HttpMetrics(queries.pool_stats)
    app = falcon.App(
        media_type=falcon.MEDIA_JSON,
        middleware=[
            RequestMiddleware(metrics, token_hashes, OPEN_PATHS),
            EncodedSlashInUser(),
        ],
    )

    json_handler = falcon.media.JSONHandler(dumps=dumps_fast_json, loads=json.loads)
    app.resp_options.media_handlers.update(
        {falcon.MEDIA_JSON: json_handler, MEDIA_PROBLEM_JSON: json_handler}
    )

    cache = _Validator(queries, etags)
    routes = {
        "/health": Health(),
        "/ready": Ready(queries),
        "/metrics": Metrics(metrics),
        "/openapi.json": OpenApi(requires_token=bool(token_hashes)),
        "/projects": Projects(queries, cache),
        "/users": Users(queries, cache),
        "/users/{user}/checkins": UserCheckins(queries, cache),
        "/users/{user}/summary": UserSummary(queries, cache, time_zone),
    }
    for template, resource in routes.items():
        # HEAD is GET without the body (RFC 9110 section 9.3.2), and Falcon
        # leaves the body out of any response to HEAD.
        resource.on_head = resource.on_get
        resource.on_options = _answer_options
        app.add_route(template, resource)

    app.add_error_handler(Exception, _handle_unexpected_error)
    app.add_error_handler(UnknownUserError, _handle_unknown_user)
    app.add_error_handler(ParameterError, _handle_invalid_parameter)
    app.add_error_handler(InvalidTimeZoneError, _handle_invalid_time_zone)
    app.add_error_handler(QueriesUnavailableError, _handle_unavailable)
    app.set_error_serializer(_serialize_problem)
    return app


def _answer_options(req: falcon.Request, resp: falcon.Response, **params: str) -> None:
    """Respond to OPTIONS with the methods that every route allows.

    Falcon's own OPTIONS responder leaves OPTIONS out of its Allow header, which
    would then differ from the Allow header of a 405.
    """
    resp.set_header("Allow", ALLOWED_METHODS)


class EncodedSlashInUser:
    """Middleware that routes /users/{user}/... for user names with "/" in them.

    The WSGI server decodes %2F to "/" in PATH_INFO, so the route would see an
    extra path segment. The undecoded path is read from RAW_URI, which
    gunicorn and Falcon's test client set. Under a server that does not set
    it, such a user cannot be reached.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Route a path that contains %2F with its segments still encoded."""
        raw_uri = req.env.get("RAW_URI")
        # Every request passes here, so the common case costs no copy.
        if not raw_uri or ("%2F" not in raw_uri and "%2f" not in raw_uri):
            return
        raw_path = urllib.parse.urlsplit(raw_uri).path
        if "%2f" not in raw_path.lower():
            return
        segments = raw_path.split("/")
        if (
            len(segments) == 4
            and segments[0] == ""
            and segments[1] == "users"
            and segments[3] in ("checkins", "summary")
            and "%2f" in segments[2].lower()
        ):
            # The segment stays encoded in the path, so that the access log
            # and the ETag, which both read the path, tell such users apart.
            req.context.user = falcon.uri.decode(segments[2], unquote_plus=False)
        # Any other %2F stays encoded too, so that /users/ned%2Fcheckins is not
        # routed as /users/ned/checkins.
        req.path = "/".join(segments)

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        """Pass the decoded user name to the resource."""
        user = req.context.get("user")
        if user is not None and "user" in params:
            params["user"] = user


class _Validator:
    """ETags for responses, built from the data version and the request.

    The data version is the id of the latest load, so a tag changes whenever a
    load commits, and a conditional request costs one index lookup.
    """

    def __init__(self, queries: CheckinQueries, enabled: bool) -> None:
        self._queries = queries
        self.enabled = enabled

    def not_modified(
        self, req: falcon.Request, resp: falcon.Response, representation: str
    ) -> bool:
        """Set 304 and return True when If-None-Match has the current tag.

        The version read for the check is kept in `req.context.data_version`,
        or None when tags are off or the request has no If-None-Match.
        """
        req.context.data_version = None
        if not self.enabled or not req.if_none_match:
            return False
        version = self._queries.data_version()
        req.context.data_version = version
        tag = self.tag(req, representation, version)
        # "*" is not honoured here, because it would return 304 for a user that
        # does not exist, before the query that finds out.
        if tag in req.if_none_match:
            resp.status = falcon.HTTP_304
            self.label(req, resp, representation, version)
            return True
        return False

    def label(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        representation: str,
        version: int | None = None,
    ) -> None:
        """Set the response's ETag and caching headers.

        The version is `version`, else the one `not_modified` read, else the
        current one.
        """
        if not self.enabled:
            return
        if version is None:
            version = req.context.data_version
        if version is None:
            version = self._queries.data_version()
        resp.etag = self.tag(req, representation, version)
        resp.cache_control = (_CACHE_CONTROL,)

    @staticmethod
    def tag(req: falcon.Request, representation: str, version: int) -> str:
        """Return the entity tag of `representation` of the request's URL."""
        digest = hashlib.blake2b(
            f"{representation} {req.relative_uri}".encode(), digest_size=8
        ).hexdigest()
        return f"v{version}-{digest}"


class Health:
    """Liveness check, which reads nothing from the database."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond that the app is running."""
        resp.media = {"status": "ok"}


class Ready:
    """Readiness check: whether the database runs a query now."""

    def __init__(self, queries: CheckinQueries) -> None:
        self._queries = queries

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond 200 when a database query succeeds within 1 s, else 503."""
        self._queries.check(timeout=READY_TIMEOUT_SECONDS)
        resp.media = {"status": "ready"}


class Metrics:
    """The process's metrics in the Prometheus text format."""

    def __init__(self, metrics: HttpMetrics) -> None:
        self._metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond with the current request counts, latencies and pool figures."""
        resp.content_type = METRICS_CONTENT_TYPE
        resp.data = self._metrics.render()


class OpenApi:
    """The API's OpenAPI 3.1 document.

    Without `requires_token`, the document's routes need no bearer token.
    """

    def __init__(self, *, requires_token: bool) -> None:
        document = openapi.DOCUMENT
        if not requires_token:
            document = {**document, "security": []}
        self._body = json.dumps(document, ensure_ascii=False).encode()
        self._tag = hashlib.blake2b(self._body, digest_size=8).hexdigest()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond with the document, or 304 when If-None-Match has its tag."""
        resp.etag = self._tag
        if req.if_none_match and any(
            given in ("*", self._tag) for given in req.if_none_match
        ):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._body


class Users:
    """Every user with stored check-ins, with their totals."""

    def __init__(self, queries: CheckinQueries, cache: _Validator) -> None:
        self._queries = queries
        self._cache = cache

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond with every user's totals, ordered by user name."""
        if self._cache.not_modified(req, resp, "json"):
            return
        self._cache.label(req, resp, "json")
        totals = services.list_users(self._queries)
        resp.media = {"users": [_user_totals_document(t) for t in totals]}


class Projects:
    """Every project with current check-ins, with its totals."""

    def __init__(self, queries: CheckinQueries, cache: _Validator) -> None:
        self._queries = queries
        self._cache = cache

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond with every project's check-ins, hours and number of users."""
        if self._cache.not_modified(req, resp, "json"):
            return
        self._cache.label(req, resp, "json")
        totals = services.list_projects(self._queries)
        resp.media = {"projects": [_project_document(t) for t in totals]}


class UserCheckins:
    """One user's check-ins, ordered by stamp and then id.

    JSON comes a page at a time; CSV, with `Accept: text/csv` or `format=csv`,
    has every selected row in one streamed response.
    """

    def __init__(self, queries: CheckinQueries, cache: _Validator) -> None:
        self._queries = queries
        self._cache = cache

    def on_get(self, req: falcon.Request, resp: falcon.Response, user: str) -> None:
        """Respond with the check-ins that the query parameters select."""
        representation = _representation(req)
        if representation == "csv":
            check_csv_parameters(req.params)
        query = parse_checkin_query(user, req.params)
        # PostgreSQL text cannot contain NUL, so no stored user name has one.
        if "\x00" in query.user:
            raise UnknownUserError(query.user)
        resp.vary = ("Accept",)
        if self._cache.not_modified(req, resp, representation):
            return

        if representation == "csv":
            # The version is read before the rows, so a load in between leaves
            # an older tag on newer rows, which only costs a full response.
            self._cache.label(req, resp, representation)
            pages = services.export_checkins(self._queries, query)
            resp.content_type = MEDIA_CSV
            resp.stream = _csv_lines(pages)
            return

        # Unless the If-None-Match check read the version already, the page's
        # query reads it with the rows, which saves a round trip.
        page = services.render_user_checkins(
            self._queries,
            query,
            with_version=self._cache.enabled and req.context.data_version is None,
        )
        self._cache.label(req, resp, representation, page.data_version)
        next_position = page.next_position
        cursor = None if next_position is None else encode_cursor(next_position, query)
        # The rows arrive as JSON from the query layer; only the envelope is
        # written here.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(
            {
                "user": query.user,
                "checkins": orjson.Fragment(page.checkins_json),
                "next_cursor": cursor,
            }
        )


class UserSummary:
    """One user's check-ins and hours per day, ISO week, month or project."""

    def __init__(
        self, queries: CheckinQueries, cache: _Validator, time_zone: str
    ) -> None:
        self._queries = queries
        self._cache = cache
        self._time_zone = time_zone

    def on_get(self, req: falcon.Request, resp: falcon.Response, user: str) -> None:
        """Respond with the groups of the user's check-ins that the parameters set."""
        query = parse_summary_query(user, req.params, self._time_zone)
        if "\x00" in query.user:
            raise UnknownUserError(query.user)
        # The zone is part of the tag, because without tz the server's default
        # zone decides the groups.
        representation = f"json {query.time_zone}"
        if self._cache.not_modified(req, resp, representation):
            return
        self._cache.label(req, resp, representation)
        groups = services.summarize(self._queries, query)
        resp.media = {
            "user": query.user,
            "by": query.by.value,
            "tz": query.time_zone,
            "from": None if query.first_day is None else query.first_day.isoformat(),
            "to": None if query.last_day is None else query.last_day.isoformat(),
            "groups": [_group_document(group) for group in groups],
        }


def dumps_fast_json(value: object) -> bytes:
    """Serialise `value` as compact UTF-8 JSON, as `dumps_json` does, with orjson.

    Decimals keep every digit and stamps are written in UTC with a Z suffix.
    Raises TypeError (orjson.JSONEncodeError) for values that JSON has no form
    for, non-finite Decimals included.
    """
    return orjson.dumps(
        value, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME
    )


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"JSON has no number for {value}")
        return orjson.Fragment(format(value, "f"))
    if isinstance(value, dt.datetime):
        return format_utc(value)
    raise TypeError(f"cannot serialise {type(value).__name__} value {value!r} as JSON")


def _representation(req: falcon.Request) -> str:
    """Return csv or json: the format parameter, else the Accept header."""
    chosen = parse_format(req.params)
    if chosen is not None:
        return chosen
    # Media types are case-insensitive (RFC 9110 section 8.3.1), and Falcon's
    # matching is not, so the header is lower-cased first.
    accept = req.accept.lower()
    if "text/csv" not in accept:
        return "json"
    try:
        preferred = mediatypes.best_match((falcon.MEDIA_JSON, "text/csv"), accept)
    except ValueError:
        return "json"
    return "csv" if preferred == "text/csv" else "json"


def _csv_lines(pages: Iterator[list[StoredCheckin]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CSV_COLUMNS)
    try:
        for page in pages:
            for checkin in page:
                writer.writerow(
                    (
                        checkin.id,
                        safe_cell(checkin.user),
                        format_utc(checkin.checkin_at),
                        format(checkin.hours, "f"),
                        safe_cell(checkin.project),
                        ";".join(checkin.flags),
                    )
                )
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    except QueriesUnavailableError:
        # The status line is sent already: ending the stream early is the only
        # signal left, and the client sees an incomplete chunked body.
        logger.warning("CSV export stopped: the database became unavailable")
        raise
    if buffer.tell():
        yield buffer.getvalue().encode()


def _user_totals_document(totals: UserTotals) -> dict[str, object]:
    return {
        "user": totals.user,
        "checkins": totals.checkins,
        "hours": totals.hours,
        "first_checkin_at": totals.first_checkin_at,
        "last_checkin_at": totals.last_checkin_at,
    }


def _project_document(totals: ProjectTotals) -> dict[str, object]:
    return {
        "project": totals.project,
        "checkins": totals.checkins,
        "hours": totals.hours,
        "users": totals.users,
    }


def _group_document(group: SummaryGroup) -> dict[str, object]:
    return {"group": group.key, "checkins": group.checkins, "hours": group.hours}


def _handle_unknown_user(
    req: falcon.Request,
    resp: falcon.Response,
    error: UnknownUserError,
    params: dict[str, str],
) -> None:
    raise falcon.HTTPNotFound(
        description=f"user {show(error.user)} not found; GET /users lists the users"
    )


def _handle_invalid_parameter(
    req: falcon.Request,
    resp: falcon.Response,
    error: ParameterError,
    params: dict[str, str],
) -> None:
    raise falcon.HTTPBadRequest(description=str(error))


def _handle_invalid_time_zone(
    req: falcon.Request,
    resp: falcon.Response,
    error: InvalidTimeZoneError,
    params: dict[str, str],
) -> None:
    raise falcon.HTTPBadRequest(
        description=f"invalid query parameter tz={show(error.name)}: the database "
        "does not know this time zone; expected an IANA time zone name, such as "
        "UTC or Asia/Manila"
    )


def _handle_unavailable(
    req: falcon.Request,
    resp: falcon.Response,
    error: QueriesUnavailableError,
    params: dict[str, str],
) -> None:
    raise falcon.HTTPServiceUnavailable(
        description=f"{error}; try again later", retry_after=1
    )


def _handle_unexpected_error(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, str]
) -> None:
    if isinstance(error, falcon.HTTPError):
        raise error
    logger.exception(
        "unexpected error in %s %s", req.method, show(req.path), exc_info=error
    )
    raise falcon.HTTPInternalServerError(
        description="the server failed to handle the request and logged the "
        "error; try again later or report it to the service's operators"
    )


def _serialize_problem(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError
) -> None:
    """Write `error` as an RFC 9457 problem document."""
    status = error.status_code
    try:
        # RFC 9457 section 4.2.1: with type about:blank, the title SHOULD be the
        # status phrase.
        title = HTTPStatus(status).phrase
    except ValueError:
        title = error.title
    # A tag set before the error belongs to the data, not to this problem.
    resp.delete_header("ETag")
    resp.delete_header("Cache-Control")
    resp.content_type = MEDIA_PROBLEM_JSON
    resp.media = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": error.description or _describe_framework_error(req, error),
    }


def _describe_framework_error(req: falcon.Request, error: falcon.HTTPError) -> str:
    """Describe an error that Falcon raised itself, which comes without detail."""
    if isinstance(error, falcon.HTTPRouteNotFound):
        return f"no resource at path {show(req.path)}; the resources are {_ROUTES}"
    if isinstance(error, falcon.HTTPMethodNotAllowed):
        allowed = (error.headers or {}).get("Allow", "")
        return (
            f"method {show(req.method)} is not allowed on path {show(req.path)}; "
            f"the allowed methods are {allowed}"
        )
    return f"the request failed: {error.title}"
