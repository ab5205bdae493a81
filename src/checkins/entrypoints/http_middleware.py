"""Falcon middleware: request ids, access log, metrics and bearer-token checks."""

import hashlib
import hmac
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import falcon
import falcon.constants
import orjson

from checkins.entrypoints.http_metrics import HttpMetrics


access_logger = logging.getLogger("checkins.access")

REQUEST_ID_HEADER = "X-Request-ID"

# Request ids from clients are kept when they are short and printable, such as
# UUIDs, so that they cannot forge log lines or bloat them.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Paths in access log lines are cut to this many characters.
_MAX_LOGGED_PATH = 1000
# RFC 6750 section 2.1: the scheme is case-insensitive; the token is b64token.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *")
_CHALLENGE = 'Bearer realm="checkins"'
_METRIC_METHODS = frozenset(falcon.constants.COMBINED_METHODS)


class TokenConfigError(ValueError):
    """Raised when the configured token hashes are not SHA-256 hex digests."""


def load_token_hashes(
    tokens_file: Path | None, hashes_text: str | None
) -> tuple[bytes, ...]:
    """Read the SHA-256 digests of the accepted API tokens.

    `tokens_file` has one hex digest a line, with blank lines and lines starting
    with # ignored. `hashes_text` has hex digests separated by commas or
    whitespace. No token is ever stored, only its digest. Raises
    TokenConfigError naming the file and line, or the position, of a value that
    is not a digest. The message leaves the value out, because it may be a token.
    """
    digests: list[bytes] = []
    if tokens_file is not None:
        try:
            # utf-8-sig drops a byte order mark that some editors add.
            lines = tokens_file.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise TokenConfigError(
                f"the API token hashes file {tokens_file} is not UTF-8 text; store "
                "one SHA-256 hex digest a line"
            ) from None
        except OSError as error:
            raise TokenConfigError(
                f"cannot read the API token hashes file {tokens_file}: {error}"
            ) from error
        for number, line in enumerate(lines, start=1):
            text = line.strip().lower()
            if not text or text.startswith("#"):
                continue
            if not _SHA256_HEX.fullmatch(text):
                raise TokenConfigError(
                    f"line {number} of {tokens_file} is not a SHA-256 digest in hex "
                    "(64 characters 0-9 and a-f); store `sha256sum` of each token, "
                    "never the token"
                )
            digests.append(bytes.fromhex(text))
    if hashes_text:
        for position, text in enumerate(re.split(r"[\s,]+", hashes_text.strip()), 1):
            if not _SHA256_HEX.fullmatch(text.lower()):
                raise TokenConfigError(
                    f"value {position} of CHECKINS_API_TOKEN_HASHES is not a SHA-256 "
                    "digest in hex (64 characters 0-9 and a-f); list the sha256 of "
                    "each token, never the token"
                )
            digests.append(bytes.fromhex(text.lower()))
    # Emptying the file to revoke every token must not open the API instead.
    if tokens_file is not None and not digests:
        raise TokenConfigError(
            f"the API token hashes file {tokens_file} contains no SHA-256 digest; "
            "add the sha256 of each accepted token, or unset "
            "CHECKINS_API_TOKENS_FILE to serve without authentication"
        )
    return tuple(digests)


def hash_token(token: str) -> str:
    """Return the hex SHA-256 of `token`, the form that the configuration stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RequestMiddleware:
    """Tags each request with an id, checks its token, then logs and counts it.

    With no token hashes configured every request is let through. Otherwise
    each request outside `open_paths` needs `Authorization: Bearer TOKEN` with
    a token whose SHA-256 is configured.
    """

    def __init__(
        self,
        metrics: HttpMetrics,
        token_hashes: Iterable[bytes] = (),
        open_paths: Iterable[str] = (),
    ) -> None:
        self._metrics = metrics
        self._token_hashes = tuple(token_hashes)
        self._open_paths = frozenset(open_paths)
        self._id_pid = 0
        self._id_ids = ("", itertools.count(1))
        self._id_lock = threading.Lock()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Start the request's clock and id, then check its bearer token."""
        req.context.started = time.perf_counter()
        given = req.get_header(REQUEST_ID_HEADER)
        if given is not None and _REQUEST_ID.fullmatch(given):
            req.context.request_id = given
        else:
            req.context.request_id = self._new_request_id()
        if self._token_hashes and req.path not in self._open_paths:
            self._authenticate(req)

    def process_response(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        """Return the request id, then log and count the response."""
        request_id = req.context.request_id
        resp.set_header(REQUEST_ID_HEADER, request_id)
        seconds = time.perf_counter() - req.context.started
        status = falcon.http_status_to_code(resp.status)
        route = req.uri_template or "unmatched"
        # Clients choose the method, so only known ones become label values.
        method = req.method if req.method in _METRIC_METHODS else "other"
        self._metrics.observe(route, method, status, seconds)
        if access_logger.isEnabledFor(logging.INFO):
            line = _access_line(
                {
                    "method": req.method,
                    "path": req.path[:_MAX_LOGGED_PATH],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "request_id": request_id,
                }
            )
            # makeRecord skips the stack walk that info() does to find the
            # caller, which access log lines do not show.
            access_logger.handle(
                access_logger.makeRecord(
                    access_logger.name, logging.INFO, __file__, 0, line, (), None
                )
            )

    def _new_request_id(self) -> str:
        """Return 32 hex digits: a random prefix per process, then a counter."""
        # A counter costs less than reading 16 random bytes per request. The
        # prefix is renewed after a fork, so gunicorn workers never share one.
        pid = os.getpid()
        if pid != self._id_pid:
            with self._id_lock:
                if pid != self._id_pid:
                    self._id_ids = (os.urandom(8).hex(), itertools.count(1))
                    self._id_pid = pid
        prefix, counter = self._id_ids
        return f"{prefix}{next(counter):016x}"

    def _authenticate(self, req: falcon.Request) -> None:
        header = req.get_header("Authorization")
        if header is None:
            raise falcon.HTTPUnauthorized(
                description="missing bearer token: send the header "
                "Authorization: Bearer TOKEN",
                challenges=[_CHALLENGE],
            )
        # RFC 6750 section 3.1: credentials of another scheme get the challenge
        # without an error code, as a request without credentials does.
        if header.split(" ", 1)[0].lower() != "bearer":
            raise falcon.HTTPUnauthorized(
                description="missing bearer token: the Authorization header uses "
                "another scheme; send the header Authorization: Bearer TOKEN",
                challenges=[_CHALLENGE],
            )
        match = _BEARER.fullmatch(header)
        if match is None or not self._accepts(match[1]):
            raise falcon.HTTPUnauthorized(
                description="invalid bearer token: send a token that the "
                "service's operators issued, as Authorization: Bearer TOKEN",
                challenges=[f'{_CHALLENGE}, error="invalid_token"'],
            )

    def _accepts(self, token: str) -> bool:
        digest = hashlib.sha256(token.encode("ascii")).digest()
        accepted = False
        # Every hash is compared, so the time taken reveals nothing about which
        # hash, if any, matched.
        for expected in self._token_hashes:
            accepted |= hmac.compare_digest(digest, expected)
        return accepted


def _access_line(fields: dict[str, object]) -> str:
    """Return `fields` as one line of JSON, with non-ASCII characters kept."""
    try:
        return orjson.dumps(fields).decode()
    except orjson.JSONEncodeError:
        # orjson rejects lone surrogates. Escaped as \uXXXX by json, they
        # cannot break the log's UTF-8.
        return json.dumps(fields)


def configure_access_log() -> None:
    """Write access log lines as bare JSON to standard error, once per process."""
    if access_logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(handler)
    access_logger.setLevel(logging.INFO)
    access_logger.propagate = False
