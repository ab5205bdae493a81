"""The OpenAPI 3.1 document of the HTTP API, served at /openapi.json.

It is a constant rather than a generated document, so the contract changes only
when this file does. A change to the contract raises API_VERSION as docs/api.md
describes.
"""

from typing import Any


API_VERSION = "1.0.0"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": {
            "application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"}
            }
        },
    }


def _json(description: str, schema: str, *, etag: bool = True) -> dict[str, Any]:
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if etag:
        headers["ETag"] = {"$ref": "#/components/headers/ETag"}
    return {
        "description": description,
        "headers": headers,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        },
    }


_NOT_MODIFIED = {
    "description": "The data has not changed since the response whose ETag the "
    "request's If-None-Match gave.",
    "headers": {
        "ETag": {"$ref": "#/components/headers/ETag"},
        "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
    },
}

_COMMON_ERRORS = {
    "401": _problem("A bearer token is required and was missing or invalid."),
    "500": _problem("The server failed; the detail holds no internal information."),
    "503": _problem("The database is unavailable or did not answer in time."),
}

# The characters that normalise_name removes from a name, as the inside of a
# character class: white space, which str.split() splits on, and the format
# characters (Unicode category Cf) below U+10000. That Cf list is the same in
# Unicode 14.0, which Python 3.11 uses, and in Unicode 17.0 (ICU 78.2). The
# class has only \uXXXX escapes and no \s, which matches other characters in
# ECMA-262. So the pattern means the same in Python's `re`, which jsonschema
# uses, and in ECMA-262, which JSON Schema names, with or without the u flag.
# NOTE: the format characters above U+FFFF, such as U+E0001, are left out,
# because ECMA-262 without the u flag matches them as two UTF-16 code units. A
# project made only of them passes the pattern, and the server rejects it.
_REMOVED_CHARACTERS = (
    "\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
    "\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2\\u180e"
    "\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff"
    "\\ufff9-\\ufffb"
)
# A project name with a character that normalisation keeps, and no NUL.
_PROJECT_PATTERN = (
    f"^[{_REMOVED_CHARACTERS}]*[^{_REMOVED_CHARACTERS}\\u0000][^\\u0000]*$"
)

_USER = {
    "name": "user",
    "in": "path",
    "required": True,
    "description": "User name; it is trimmed and lower-cased as stored names are.",
    "schema": {"type": "string"},
    "example": "ned",
}


def _day(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{description} Years 1900 to 2999.",
        # The pattern bounds the year, which format: date cannot.
        "schema": {
            "type": "string",
            "format": "date",
            "pattern": "^(19|2[0-9])[0-9]{2}-",
        },
    }


_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETag of an earlier response; 304 when the data is unchanged.",
    "schema": {"type": "string"},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "checkins",
        "version": API_VERSION,
        "description": "Each person's check-ins from a cleaned time-tracking "
        "export. Errors are RFC 9457 problem documents, except for malformed "
        "requests that the HTTP server rejects before the API reads them, "
        "which get an HTML page with status 400, 414 or 431. Every route also "
        "serves HEAD, with the headers of GET and no body, and OPTIONS, with "
        "an Allow header.",
    },
    "security": [{"bearerAuth": []}],
    "paths": {
        "/health": {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness: the process answers; reads no database.",
                "security": [],
                "responses": {
                    "200": _json("The process is running.", "Status", etag=False),
                    "500": _COMMON_ERRORS["500"],
                },
            }
        },
        "/ready": {
            "get": {
                "operationId": "getReady",
                "summary": "Readiness: the database answers a query within 1 s.",
                "security": [],
                "responses": {
                    "200": _json("The database answers.", "Status", etag=False),
                    "500": _COMMON_ERRORS["500"],
                    "503": _COMMON_ERRORS["503"],
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": "Metrics of the answering worker process, for Prometheus.",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _COMMON_ERRORS["401"],
                    "500": _COMMON_ERRORS["500"],
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document.",
                "parameters": [_IF_NONE_MATCH],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "304": _NOT_MODIFIED,
                    "401": _COMMON_ERRORS["401"],
                    "500": _COMMON_ERRORS["500"],
                },
            }
        },
        "/projects": {
            "get": {
                "operationId": "listProjects",
                "summary": "Every project with its check-ins, hours and users.",
                "parameters": [_IF_NONE_MATCH],
                "responses": {
                    "200": _json("Projects ordered by name.", "ProjectList"),
                    "304": _NOT_MODIFIED,
                    **_COMMON_ERRORS,
                },
            }
        },
        "/users": {
            "get": {
                "operationId": "listUsers",
                "summary": "Every user with their check-ins, hours, first and last "
                "stamps.",
                "parameters": [_IF_NONE_MATCH],
                "responses": {
                    "200": _json("Users ordered by name.", "UserList"),
                    "304": _NOT_MODIFIED,
                    **_COMMON_ERRORS,
                },
            }
        },
        "/users/{user}/checkins": {
            "get": {
                "operationId": "listUserCheckins",
                "summary": "A user's check-ins, oldest first: JSON a page at a time, "
                "or every selected row as CSV.",
                "parameters": [
                    _USER,
                    _day("from", "First UTC day to include, YYYY-MM-DD."),
                    _day("to", "Last UTC day to include, YYYY-MM-DD."),
                    {
                        "name": "project",
                        "in": "query",
                        "required": False,
                        "description": "Project name, trimmed and lower-cased. A "
                        "name with NUL, or with nothing but white space and "
                        "invisible format characters, gets a 400. The pattern "
                        "lists only the format characters below U+10000, so a "
                        "name made only of format characters above U+FFFF, such "
                        "as U+E0001, passes it and still gets a 400.",
                        "schema": {"type": "string", "pattern": _PROJECT_PATTERN},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "Page size of JSON pages; not with CSV.",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "next_cursor of the previous JSON page, "
                        "with the same user, from, to and project; not with CSV.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "json or csv; overrides the Accept header.",
                        "schema": {"type": "string", "enum": ["json", "csv"]},
                    },
                    _IF_NONE_MATCH,
                ],
                "responses": {
                    "200": {
                        "description": "A JSON page, or the CSV export with a header "
                        "row and the columns id, user, checkin_at, hours, project "
                        "and flags (separated by ';').",
                        "headers": {
                            "ETag": {"$ref": "#/components/headers/ETag"},
                            "X-Request-ID": {
                                "$ref": "#/components/headers/X-Request-ID"
                            },
                        },
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CheckinPage"}
                            },
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "304": _NOT_MODIFIED,
                    "400": _problem("A query parameter is invalid; detail names it."),
                    "404": _problem("No such user, or no such path."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/users/{user}/summary": {
            "get": {
                "operationId": "summarizeUser",
                "summary": "A user's check-ins and hours per local day, ISO week, "
                "month or project.",
                "parameters": [
                    _USER,
                    {
                        "name": "by",
                        "in": "query",
                        "required": True,
                        "description": "How to group the check-ins.",
                        "schema": {
                            "type": "string",
                            "enum": ["day", "week", "month", "project"],
                        },
                    },
                    {
                        "name": "tz",
                        "in": "query",
                        "required": False,
                        "description": "IANA time zone of days, weeks and months, "
                        "and of from and to; defaults to the server's "
                        "CHECKINS_TIMEZONE, itself UTC by default.",
                        "schema": {"type": "string"},
                        "example": "Asia/Manila",
                    },
                    _day("from", "First local day to include, YYYY-MM-DD."),
                    _day("to", "Last local day to include, YYYY-MM-DD."),
                    _IF_NONE_MATCH,
                ],
                "responses": {
                    "200": _json("Groups with check-ins, ordered by key.", "Summary"),
                    "304": _NOT_MODIFIED,
                    "400": _problem("A query parameter is invalid; detail names it."),
                    "404": _problem("No such user, or no such path."),
                    **_COMMON_ERRORS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "Required only when the server is configured with "
                "token hashes (CHECKINS_API_TOKENS_FILE or "
                "CHECKINS_API_TOKEN_HASHES).",
            }
        },
        "headers": {
            "ETag": {
                "description": "Changes whenever a load changes the data; absent "
                "when the server runs with CHECKINS_ETAGS=off.",
                "schema": {"type": "string"},
            },
            "X-Request-ID": {
                "description": "The request's X-Request-ID when it is 1 to 128 of "
                "A-Z a-z 0-9 . _ : -, else a new id; also in the access log.",
                "schema": {"type": "string"},
            },
        },
        "schemas": {
            "Status": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["ok", "ready"]}},
                "additionalProperties": False,
            },
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string", "const": "about:blank"},
                    "title": {"type": "string"},
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "detail": {"type": "string"},
                },
                "additionalProperties": False,
            },
            "UserTotals": {
                "type": "object",
                "required": [
                    "user",
                    "checkins",
                    "hours",
                    "first_checkin_at",
                    "last_checkin_at",
                ],
                "properties": {
                    "user": {"type": "string"},
                    "checkins": {"type": "integer", "minimum": 1},
                    "hours": {"type": "number", "exclusiveMinimum": 0},
                    "first_checkin_at": {"type": "string", "format": "date-time"},
                    "last_checkin_at": {"type": "string", "format": "date-time"},
                },
                "additionalProperties": False,
            },
            "UserList": {
                "type": "object",
                "required": ["users"],
                "properties": {
                    "users": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/UserTotals"},
                    }
                },
                "additionalProperties": False,
            },
            "ProjectTotals": {
                "type": "object",
                "required": ["project", "checkins", "hours", "users"],
                "properties": {
                    "project": {"type": "string"},
                    "checkins": {"type": "integer", "minimum": 1},
                    "hours": {"type": "number", "exclusiveMinimum": 0},
                    "users": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
            },
            "ProjectList": {
                "type": "object",
                "required": ["projects"],
                "properties": {
                    "projects": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ProjectTotals"},
                    }
                },
                "additionalProperties": False,
            },
            "Checkin": {
                "type": "object",
                "required": ["id", "user", "checkin_at", "hours", "project", "flags"],
                "properties": {
                    "id": {"type": "integer"},
                    "user": {"type": "string"},
                    "checkin_at": {"type": "string", "format": "date-time"},
                    "hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 24},
                    "project": {"type": "string"},
                    "flags": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "enum": [
                                "repeated_entry",
                                "day_over_24h",
                                "isolated_timestamp",
                            ],
                        },
                    },
                },
                "additionalProperties": False,
            },
            "CheckinPage": {
                "type": "object",
                "required": ["user", "checkins", "next_cursor"],
                "properties": {
                    "user": {"type": "string"},
                    "checkins": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Checkin"},
                    },
                    "next_cursor": {"type": ["string", "null"]},
                },
                "additionalProperties": False,
            },
            "SummaryGroup": {
                "type": "object",
                "required": ["group", "checkins", "hours"],
                "properties": {
                    "group": {
                        "type": "string",
                        "description": "YYYY-MM-DD, YYYY-Www (ISO week), YYYY-MM, "
                        "or the project name.",
                    },
                    "checkins": {"type": "integer", "minimum": 1},
                    "hours": {"type": "number", "exclusiveMinimum": 0},
                },
                "additionalProperties": False,
            },
            "Summary": {
                "type": "object",
                "required": ["user", "by", "tz", "from", "to", "groups"],
                "properties": {
                    "user": {"type": "string"},
                    "by": {
                        "type": "string",
                        "enum": ["day", "week", "month", "project"],
                    },
                    "tz": {"type": "string"},
                    "from": {"type": ["string", "null"], "format": "date"},
                    "to": {"type": ["string", "null"], "format": "date"},
                    "groups": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/SummaryGroup"},
                    },
                },
                "additionalProperties": False,
            },
        },
    },
}
