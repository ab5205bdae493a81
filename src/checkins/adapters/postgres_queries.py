"""Read-only queries over the check-ins stored in PostgreSQL."""

import datetime as dt
import logging
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any, TypeVar

import orjson
import psycopg
import psycopg_pool

from checkins.domain.queries import (
    CheckinPage,
    CheckinQuery,
    Grouping,
    InvalidTimeZoneError,
    Position,
    ProjectTotals,
    QueriesUnavailableError,
    RenderedPage,
    StoredCheckin,
    SummaryGroup,
    SummaryQuery,
    UnknownUserError,
    UserTotals,
)
from checkins.ports import CheckinQueries


logger = logging.getLogger(__name__)

T = TypeVar("T")

# Created by migration 0002_api_roles.sql with SELECT on the tables the API reads.
READER_ROLE = "checkins_reader"

# A page reads one row more than its limit, to tell whether another page
# follows. Only an empty page needs the check that the user exists, because a
# row of the user is proof enough. Stamps come as UTC wall-clock time, because
# psycopg loads and orjson writes those faster than aware datetimes. With
# _VERSION_COLUMN, each row also carries the data version of the same snapshot.
_PAGE_SQL = """
SELECT id, checkin_at AT TIME ZONE 'UTC', hours::text, project, flags{version}
FROM checkins
WHERE user_name = %(user)s AND retired_by IS NULL{filters}
ORDER BY checkin_at, id
LIMIT %(fetch)s
"""

_USER_EXISTS_SQL = "SELECT EXISTS (SELECT FROM user_totals WHERE user_name = %s)"

_PAGE_FILTERS = (
    ("first_day", " AND checkin_at >= %(start)s"),
    ("last_day", " AND checkin_at < %(end)s"),
    ("project", " AND project = %(project)s"),
    ("after", " AND (checkin_at, id) > (%(after_at)s, %(after_id)s)"),
)

# The summary groups rows by their stamp in the requested zone. The day bounds
# are local midnights converted to stamps, so the scan stays a range of the
# index on (user_name, checkin_at). Rows are grouped by a date or timestamp,
# and only each group's key is formatted, because to_char per row costs more
# than the grouping.
_SUMMARY_SQL = """
SELECT known.value, groups.key, groups.checkins, groups.hours
FROM (
    SELECT EXISTS (SELECT FROM user_totals WHERE user_name = %(user)s) AS value
) AS known
LEFT JOIN (
    SELECT {key} AS key, checkins, hours
    FROM (
        SELECT {bucket} AS bucket, count(*) AS checkins, sum(hours) AS hours
        FROM checkins
        WHERE user_name = %(user)s AND retired_by IS NULL{filters}
        GROUP BY 1
    ) AS buckets
) AS groups ON true
ORDER BY groups.key COLLATE "C"
"""

_LOCAL_STAMP = "(checkin_at AT TIME ZONE %(tz)s)"

# The bucket expression and the key made from it, for each grouping. An ISO
# week's key comes from its Monday, which belongs to that week.
_SUMMARY_KEYS = {
    Grouping.DAY: (f"{_LOCAL_STAMP}::date", "to_char(bucket, 'YYYY-MM-DD')"),
    Grouping.WEEK: (
        f"date_trunc('week', {_LOCAL_STAMP})",
        "to_char(bucket, 'IYYY-\"W\"IW')",
    ),
    Grouping.MONTH: (
        f"date_trunc('month', {_LOCAL_STAMP})",
        "to_char(bucket, 'YYYY-MM')",
    ),
    Grouping.PROJECT: ("project", "bucket"),
}

_SUMMARY_FILTERS = (
    ("first_day", " AND checkin_at >= (%(first_day)s::timestamp AT TIME ZONE %(tz)s)"),
    (
        "last_day",
        " AND checkin_at < ((%(last_day)s + 1)::timestamp AT TIME ZONE %(tz)s)",
    ),
)

# user_project_totals is a small table kept current by triggers on checkins, so
# listing projects reads no check-in.
_PROJECTS_SQL = """
SELECT project, sum(checkins)::bigint, sum(hours), count(*)
FROM user_project_totals
GROUP BY project
ORDER BY project COLLATE "C"
"""

_USERS_SQL = """
SELECT user_name, checkins, hours, first_checkin_at, last_checkin_at
FROM user_totals
ORDER BY user_name COLLATE "C"
"""

_VERSION_SQL = "SELECT coalesce(max(id), 0) FROM loads"
_VERSION_COLUMN = f", ({_VERSION_SQL})"


class PostgresCheckinQueries(CheckinQueries):
    """Queries served from a connection pool, as the read-only role checkins_reader.

    The pool opens on first use, so queries built before gunicorn forks open
    no connection in the master process. A query waits at most `timeout`
    seconds for a connection, then raises QueriesUnavailableError. A query that
    fails because its pooled connection broke, as after a database restart, is
    retried on another connection within the same time, because reads are safe
    to repeat.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        pool_size: int = 4,
        timeout: float = 2.0,
        statement_timeout_ms: int = 5000,
        reconnect_timeout: float = 2.0,
    ) -> None:
        self.conninfo = conninfo
        self.timeout = timeout
        self._pool_size = pool_size
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._reconnect_timeout = reconnect_timeout
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._statements: dict[tuple[object, ...], str] = {}
        self._cursors: weakref.WeakKeyDictionary[psycopg.Connection, psycopg.Cursor] = (
            weakref.WeakKeyDictionary()
        )
        self._failures = _RateLimitedLog(interval=10.0)

    def close(self) -> None:
        """Close the pool, if it was opened."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def list_users(self) -> list[UserTotals]:
        rows = self._run(lambda connection: connection.execute(_USERS_SQL).fetchall())
        return [UserTotals(*row) for row in rows]

    def user_checkins(self, query: CheckinQuery) -> CheckinPage:
        rows, _ = self._page_rows(query, with_version=False)
        checkins = [
            StoredCheckin(
                row_id,
                query.user,
                at.replace(tzinfo=dt.UTC),
                Decimal(hours),
                project,
                tuple(flags),
            )
            for row_id, at, hours, project, flags in rows[: query.limit]
        ]
        return CheckinPage(checkins, _next_position(rows, query.limit))

    def render_user_checkins(
        self, query: CheckinQuery, *, with_version: bool = False
    ) -> RenderedPage:
        rows, version = self._page_rows(query, with_version=with_version)
        page_rows = rows[: query.limit]
        if with_version:
            page_rows = [row[:5] for row in page_rows]
        fragment = orjson.Fragment
        documents = [
            {
                "id": row_id,
                "user": query.user,
                "checkin_at": at,
                # Numeric text from PostgreSQL, so every digit is kept.
                "hours": fragment(hours),
                "project": project,
                "flags": flags,
            }
            for row_id, at, hours, project, flags in page_rows
        ]
        return RenderedPage(
            checkins_json=orjson.dumps(
                documents, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
            ),
            next_position=_next_position(rows, query.limit),
            data_version=version,
        )

    def _page_rows(
        self, query: CheckinQuery, *, with_version: bool
    ) -> tuple[list[tuple[Any, ...]], int | None]:
        """Return up to limit + 1 rows of the page and, when asked, the data version.

        Raises UnknownUserError. The version is never newer than the rows:
        it comes with them, or for an empty page it is read before the rows
        are read again.
        """
        statement, parameters = self.page_statement(query, with_version=with_version)

        def work(
            connection: psycopg.Connection,
        ) -> tuple[list[tuple[Any, ...]], int | None]:
            cursor = self._binary_cursor(connection)
            rows = cursor.execute(statement, parameters).fetchall()
            version = None
            if rows:
                return rows, rows[0][5] if with_version else None
            if with_version:
                (version,) = cursor.execute(_VERSION_SQL).fetchone()
                rows = cursor.execute(statement, parameters).fetchall()
                if rows:
                    return rows, rows[0][5]
            (exists,) = cursor.execute(_USER_EXISTS_SQL, (query.user,)).fetchone()
            if not exists:
                raise UnknownUserError(query.user)
            return rows, version

        return self._run(work)

    def summarize(self, query: SummaryQuery) -> list[SummaryGroup]:
        statement, parameters = self.summary_statement(query)

        def work(connection: psycopg.Connection) -> list[tuple[Any, ...]]:
            try:
                return connection.execute(statement, parameters).fetchall()
            except psycopg.errors.InvalidParameterValue as error:
                # PostgreSQL has its own copy of the time zone database, which
                # can lack a name that Python's zoneinfo contains.
                raise InvalidTimeZoneError(query.time_zone) from error

        rows = self._run(work)
        if not rows[0][0]:
            raise UnknownUserError(query.user)
        return [
            SummaryGroup(key, checkins, hours)
            for _, key, checkins, hours in rows
            if key is not None
        ]

    def page_statement(
        self, query: CheckinQuery, *, with_version: bool = False
    ) -> tuple[str, dict[str, object]]:
        """Return the SQL and parameters of `render_user_checkins`, for benchmarks."""
        template = _PAGE_SQL.replace(
            "{version}", _VERSION_COLUMN if with_version else ""
        )
        name = "page with version" if with_version else "page"
        statement = self._statement(name, template, _PAGE_FILTERS, query)
        return statement, _page_parameters(query)

    def summary_statement(self, query: SummaryQuery) -> tuple[str, dict[str, object]]:
        """Return the SQL and parameters of `summarize`, for benchmarks."""
        bucket, key = _SUMMARY_KEYS[query.by]
        statement = self._statement(
            query.by,
            _SUMMARY_SQL.replace("{bucket}", bucket).replace("{key}", key),
            _SUMMARY_FILTERS,
            query,
        )
        parameters = {
            "user": query.user,
            "tz": query.time_zone,
            "first_day": query.first_day,
            "last_day": query.last_day,
        }
        return statement, parameters

    def list_projects(self) -> list[ProjectTotals]:
        rows = self._run(
            lambda connection: connection.execute(_PROJECTS_SQL).fetchall()
        )
        return [ProjectTotals(*row) for row in rows]

    def data_version(self) -> int:
        (version,) = self._run(
            lambda connection: connection.execute(_VERSION_SQL).fetchone()
        )
        return version

    def check(self, timeout: float | None = None) -> None:
        self._run(
            lambda connection: connection.execute("SELECT 1").fetchone(),
            timeout=timeout,
        )

    def pool_stats(self) -> dict[str, int]:
        pool = self._pool
        if pool is None:
            return {}
        stats = pool.get_stats()
        names = ("pool_max", "pool_size", "pool_available", "requests_waiting")
        return {name: stats.get(name, 0) for name in names}

    def connection(
        self, timeout: float | None = None
    ) -> AbstractContextManager[psycopg.Connection]:
        """Lend a pooled connection, as the reader role, for checks and tests."""
        return self._get_pool().connection(timeout=timeout or self.timeout)

    def _run(
        self,
        work: Callable[[psycopg.Connection], T],
        *,
        timeout: float | None = None,
    ) -> T:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pool = self._get_pool()
        while True:
            try:
                with pool.connection(
                    timeout=max(deadline - time.monotonic(), 0.0)
                ) as connection:
                    try:
                        return work(connection)
                    except psycopg.OperationalError:
                        if not connection.broken or time.monotonic() >= deadline:
                            raise
                # The pool discards the broken connection when it comes back.
                logger.info("retrying a query on another connection")
            except psycopg_pool.PoolTimeout as error:
                self._failures.warning(
                    "no database connection within %.1f s: %s", timeout, error
                )
                raise QueriesUnavailableError(
                    f"no database connection within {timeout:g} s"
                ) from error
            except psycopg.errors.QueryCanceled as error:
                self._failures.warning("query cancelled: %s", error)
                raise QueriesUnavailableError("the database query timed out") from error
            except psycopg.OperationalError as error:
                self._failures.warning("database query failed: %s", error)
                raise QueriesUnavailableError("the database is unavailable") from error

    def _get_pool(self) -> psycopg_pool.ConnectionPool:
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._pool is None:
                self._pool = psycopg_pool.ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self._pool_size,
                    kwargs={
                        "autocommit": True,
                        # Prepare every statement on its first use: the API runs
                        # a few statements many times.
                        "prepare_threshold": 0,
                        "connect_timeout": max(2, round(self.timeout)),
                        "application_name": "checkins-api",
                    },
                    configure=self._configure,
                    timeout=self.timeout,
                    reconnect_timeout=self._reconnect_timeout,
                    open=True,
                    name="checkins-queries",
                )
            return self._pool

    def _binary_cursor(self, connection: psycopg.Connection) -> psycopg.Cursor:
        """Return the connection's cursor for binary results, made on first use.

        Binary results spare PostgreSQL formatting stamps as text, and reusing
        one cursor keeps the loaders it has looked up, which a new cursor per
        query would look up again. A pooled connection serves one thread at a
        time, so its cursor does too.
        """
        cursor = self._cursors.get(connection)
        if cursor is None:
            cursor = connection.cursor(binary=True)
            self._cursors[connection] = cursor
        return cursor

    def _configure(self, connection: psycopg.Connection) -> None:
        # One simple-protocol round trip. The values are constants and an int.
        connection.execute(
            f"SET ROLE {READER_ROLE}; SET default_transaction_read_only = on;"
            f" SET statement_timeout = {self._statement_timeout_ms};"
            " SET TIME ZONE 'UTC'",
            prepare=False,
        )

    def _statement(
        self,
        name: object,
        template: str,
        filters: tuple[tuple[str, str], ...],
        query: object,
    ) -> str:
        """Return `template` with the conditions of the filters `query` sets."""
        present = tuple(getattr(query, field) is not None for field, _ in filters)
        key = (name, present)
        statement = self._statements.get(key)
        if statement is None:
            conditions = "".join(
                condition
                for (_, condition), used in zip(filters, present, strict=True)
                if used
            )
            statement = template.replace("{filters}", conditions)
            self._statements[key] = statement
        return statement


def _page_parameters(query: CheckinQuery) -> dict[str, object]:
    parameters: dict[str, object] = {
        "user": query.user,
        "limit": query.limit,
        "fetch": query.limit + 1,
    }
    if query.first_day is not None:
        parameters["start"] = _midnight(query.first_day)
    if query.last_day is not None:
        parameters["end"] = _midnight(query.last_day + dt.timedelta(days=1))
    if query.project is not None:
        parameters["project"] = query.project
    if query.after is not None:
        parameters["after_at"] = query.after.checkin_at
        parameters["after_id"] = query.after.id
    return parameters


def _next_position(rows: list[tuple[Any, ...]], limit: int) -> Position | None:
    """Return the position after the page when a row beyond `limit` was read."""
    if len(rows) <= limit:
        return None
    row_id, at = rows[limit - 1][:2]
    return Position(at.replace(tzinfo=dt.UTC), row_id)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


class _RateLimitedLog:
    """Warnings logged at most once per `interval` seconds, counting the rest."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last = -interval
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._last = now
        if suppressed:
            message += " (%d similar failures not logged)"
            args = (*args, suppressed)
        logger.warning(message, *args)
