"""Read-only queries over the check-ins stored in PostgreSQL."""

import contextlib
import datetime as dt
from collections.abc import Iterator

import psycopg
import psycopg_pool
from psycopg import sql

from checkins.domain.queries import (
    CheckinPage,
    CheckinQuery,
    Position,
    StoredCheckin,
    UnknownUserError,
    UserTotals,
)
from checkins.ports import CheckinQueries


class PostgresCheckinQueries(CheckinQueries):
    """Queries served from a connection pool.

    The pool opens on first use, so queries built before gunicorn forks open
    no connection in the master process.
    """

    def __init__(self, conninfo: str, *, pool_size: int = 4) -> None:
        self.conninfo = conninfo
        self._pool_size = pool_size
        self._pool: psycopg_pool.ConnectionPool | None = None

    def close(self) -> None:
        """Close the pool, if it was opened."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def list_users(self) -> list[UserTotals]:
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT user_name, checkins, hours, first_checkin_at, last_checkin_at"
                " FROM user_totals ORDER BY user_name"
            ).fetchall()
        return [UserTotals(*row) for row in rows]

    def user_checkins(self, query: CheckinQuery) -> CheckinPage:
        conditions = [sql.SQL("user_name = %(user)s AND retired_by IS NULL")]
        parameters: dict[str, object] = {"user": query.user, "limit": query.limit + 1}
        if query.first_day is not None:
            conditions.append(sql.SQL("checkin_at >= %(start)s"))
            parameters["start"] = _midnight(query.first_day)
        if query.last_day is not None:
            conditions.append(sql.SQL("checkin_at < %(end)s"))
            parameters["end"] = _midnight(query.last_day + dt.timedelta(days=1))
        if query.project is not None:
            conditions.append(sql.SQL("project = %(project)s"))
            parameters["project"] = query.project
        if query.after is not None:
            conditions.append(
                sql.SQL("(checkin_at, id) > (%(after_at)s, %(after_id)s)")
            )
            parameters["after_at"] = query.after.checkin_at
            parameters["after_id"] = query.after.id
        statement = sql.SQL(
            "SELECT id, user_name, checkin_at, hours, project, flags FROM checkins"
            " WHERE {} ORDER BY checkin_at, id LIMIT %(limit)s"
        ).format(sql.SQL(" AND ").join(conditions))

        with self._connection() as connection:
            known = connection.execute(
                "SELECT 1 FROM user_totals WHERE user_name = %s", (query.user,)
            ).fetchone()
            if known is None:
                raise UnknownUserError(query.user)
            rows = connection.execute(statement, parameters).fetchall()

        checkins = [
            StoredCheckin(id, user, at, hours, project, tuple(flags))
            for id, user, at, hours, project, flags in rows
        ]
        if len(checkins) <= query.limit:
            return CheckinPage(checkins=checkins, next_position=None)
        checkins = checkins[: query.limit]
        last = checkins[-1]
        return CheckinPage(checkins, Position(last.checkin_at, last.id))

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if self._pool is None:
            self._pool = psycopg_pool.ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self._pool_size,
                open=True,
                name="checkins-queries",
            )
        with self._pool.connection() as connection:
            yield connection


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
