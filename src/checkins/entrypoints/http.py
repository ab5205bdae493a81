"""The HTTP API: a Falcon WSGI app that serves stored check-ins as JSON.

Routes:

- ``GET /health``: ``{"status": "ok"}``;
- ``GET /users``: every user's totals;
- ``GET /users/{user}/checkins``: one page of a user's check-ins, filtered by
  ``from`` and ``to`` (inclusive UTC dates), ``project``, ``limit`` and
  ``cursor``.

Every error is an RFC 9457 problem document (``application/problem+json``).
"""

import datetime as dt
import json
import logging
from decimal import Decimal
from http import HTTPStatus

import falcon
import falcon.media

from checkins import services
from checkins.domain.queries import StoredCheckin, UnknownUserError, UserTotals
from checkins.entrypoints.http_params import (
    ParameterError,
    encode_cursor,
    parse_checkin_query,
    show,
)
from checkins.ports import CheckinQueries


logger = logging.getLogger(__name__)

MEDIA_PROBLEM_JSON = "application/problem+json"

_ROUTES = "/health, /users and /users/{user}/checkins"


def create_app(queries: CheckinQueries) -> falcon.App:
    """Build the WSGI app that serves the check-ins that `queries` read."""
    app = falcon.App(media_type=falcon.MEDIA_JSON)

    json_handler = falcon.media.JSONHandler(dumps=dumps_json, loads=json.loads)
    app.resp_options.media_handlers.update(
        {falcon.MEDIA_JSON: json_handler, MEDIA_PROBLEM_JSON: json_handler}
    )

    app.add_route("/health", Health())
    app.add_route("/users", Users(queries))
    app.add_route("/users/{user}/checkins", UserCheckins(queries))

    app.add_error_handler(Exception, _handle_unexpected_error)
    app.add_error_handler(UnknownUserError, _handle_unknown_user)
    app.add_error_handler(ParameterError, _handle_invalid_parameter)
    app.set_error_serializer(_serialize_problem)
    return app


class Health:
    """Liveness check, which reads nothing from the database."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond that the app is running."""
        resp.media = {"status": "ok"}


class Users:
    """Every user with stored check-ins, with their totals."""

    def __init__(self, queries: CheckinQueries) -> None:
        self._queries = queries

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Respond with every user's totals, ordered by user name."""
        totals = services.list_users(self._queries)
        resp.media = {"users": [_user_totals_document(t) for t in totals]}


class UserCheckins:
    """One user's check-ins, a page at a time, ordered by stamp and then id."""

    def __init__(self, queries: CheckinQueries) -> None:
        self._queries = queries

    def on_get(self, req: falcon.Request, resp: falcon.Response, user: str) -> None:
        """Respond with the page of check-ins that the query parameters select."""
        query = parse_checkin_query(user, req.params)
        # PostgreSQL text cannot contain NUL, so no stored user name has one.
        if "\x00" in query.user:
            raise UnknownUserError(query.user)
        page = services.user_checkins(self._queries, query)
        next_position = page.next_position
        resp.media = {
            "user": query.user,
            "checkins": [_checkin_document(checkin) for checkin in page.checkins],
            "next_cursor": (
                None if next_position is None else encode_cursor(next_position)
            ),
        }


def dumps_json(value: object) -> str:
    """Serialise `value` as JSON, with Decimal and datetime values included.

    A Decimal is written as a JSON number with all its digits, never as a
    string. A timezone-aware datetime is written in UTC as ISO 8601 with a Z
    suffix. Raises TypeError for types that JSON has no form for, and
    ValueError for NaN, infinities and naive datetimes.
    """
    parts: list[str] = []
    _write_json(value, parts)
    return "".join(parts)


def format_utc(stamp: dt.datetime) -> str:
    """Format a timezone-aware `stamp` in UTC as ISO 8601 with a Z suffix."""
    if stamp.tzinfo is None:
        raise ValueError(f"stamp {stamp.isoformat()} has no time zone")
    text = stamp.astimezone(dt.UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def _write_json(value: object, parts: list[str]) -> None:
    if isinstance(value, dict):
        parts.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            if index:
                parts.append(", ")
            parts.append(json.dumps(key, ensure_ascii=False))
            parts.append(": ")
            _write_json(item, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(", ")
            _write_json(item, parts)
        parts.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"JSON has no number for {value}")
        parts.append(format(value, "f"))
    elif isinstance(value, dt.datetime):
        parts.append(json.dumps(format_utc(value)))
    else:
        parts.append(json.dumps(value, ensure_ascii=False, allow_nan=False))


def _user_totals_document(totals: UserTotals) -> dict[str, object]:
    return {
        "user": totals.user,
        "checkins": totals.checkins,
        "hours": totals.hours,
        "first_checkin_at": totals.first_checkin_at,
        "last_checkin_at": totals.last_checkin_at,
    }


def _checkin_document(checkin: StoredCheckin) -> dict[str, object]:
    return {
        "id": checkin.id,
        "user": checkin.user,
        "checkin_at": checkin.checkin_at,
        "hours": checkin.hours,
        "project": checkin.project,
        "flags": list(checkin.flags),
    }


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


def _handle_unexpected_error(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, str]
) -> None:
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
