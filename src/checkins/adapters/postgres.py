"""The PostgreSQL repository: versioned migrations, COPY for bulk writes."""

import contextlib
import datetime as dt
import importlib.resources
import json
import logging
from collections.abc import Iterator

import psycopg
import psycopg_pool
from psycopg import sql

from checkins.domain.model import CheckIn, Outcome
from checkins.domain.queries import (
    CheckinPage,
    CheckinQuery,
    Position,
    StoredCheckin,
    UnknownUserError,
    UserTotals,
)
from checkins.domain.report import LoadReport
from checkins.ports import CheckinRepository, LoadWriter


logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process of the
# product. It serialises migrations and loads.
_LOAD_LOCK = 0x636B696E

_STAGING_COLUMNS = (
    ("ordinal", "int8"),
    ("line", "int4"),
    ("row_key", "bytea"),
    ("user_name", "text"),
    ("checkin_at", "timestamptz"),
    ("hours", "numeric"),
    ("project", "text"),
    ("flags", "text[]"),
    ("fixes", "text[]"),
    ("stamp_format", "text"),
    ("minute_precision", "bool"),
    ("raw_text", "text"),
    ("reason", "text"),
    ("detail", "text"),
)


def migrations() -> list[tuple[str, str]]:
    """Return the shipped migrations as (name, SQL) pairs, in the order to apply."""
    folder = importlib.resources.files(__package__) / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [(entry.name, entry.read_text(encoding="utf-8")) for entry in files]


def apply_migrations(connection: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied, inside the caller's transaction."""
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name text PRIMARY KEY,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {
        name for (name,) in connection.execute("SELECT name FROM schema_migrations")
    }
    done = []
    for name, text in migrations():
        if name in applied:
            continue
        logger.info("applying migration %s", name)
        connection.execute(text)
        connection.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
        done.append(name)
    return done


class PostgresCheckinRepository(CheckinRepository):
    """Check-ins stored in PostgreSQL.

    Loads use one connection each; queries share a pool opened on first use,
    so a repository built before gunicorn forks opens no connection early.
    """

    def __init__(self, conninfo: str, *, pool_size: int = 4) -> None:
        self.conninfo = conninfo
        self._pool_size = pool_size
        self._pool: psycopg_pool.ConnectionPool | None = None

    def close(self) -> None:
        """Close the query pool, if it was opened."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def migrate(self) -> list[str]:
        with psycopg.connect(self.conninfo) as connection:
            return apply_migrations(connection)

    @contextlib.contextmanager
    def load(
        self, source: str, sha256: str, started_at: dt.datetime
    ) -> Iterator[LoadWriter]:
        with (
            psycopg.connect(self.conninfo) as connection,
            connection.transaction(),
        ):
            _wait_for_other_loads(connection)
            apply_migrations(connection)
            writer = _PostgresLoadWriter(connection, source, sha256, started_at)
            try:
                yield writer
            except BaseException as error:
                writer.abort(error)
                raise
            if not writer.finished:
                raise RuntimeError("a load block ended without calling finish()")

    def list_users(self) -> list[UserTotals]:
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT user_name, checkins, hours, first_checkin_at, last_checkin_at"
                " FROM user_totals ORDER BY user_name"
            ).fetchall()
        return [UserTotals(*row) for row in rows]

    def user_checkins(self, query: CheckinQuery) -> CheckinPage:
        conditions = [sql.SQL("user_name = %(user)s")]
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


def _wait_for_other_loads(connection: psycopg.Connection) -> None:
    (free,) = connection.execute(
        "SELECT pg_try_advisory_xact_lock(%s)", (_LOAD_LOCK,)
    ).fetchone()
    if not free:
        logger.warning("another load is running; waiting for it to finish")
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


class _PostgresLoadWriter(LoadWriter):
    """Streams outcomes with binary COPY into a temporary table, then files them."""

    def __init__(
        self,
        connection: psycopg.Connection,
        source: str,
        sha256: str,
        started_at: dt.datetime,
    ) -> None:
        self.connection = connection
        self.source = source
        self.sha256 = sha256
        self.started_at = started_at
        self.finished = False
        self._ordinal = 0
        self._cursor = connection.cursor()
        columns = ", ".join(f"{name} {kind}" for name, kind in _STAGING_COLUMNS)
        self._cursor.execute(f"CREATE TEMP TABLE staged ({columns}) ON COMMIT DROP")
        names = ", ".join(name for name, _ in _STAGING_COLUMNS)
        self._copy_block = self._cursor.copy(
            f"COPY staged ({names}) FROM STDIN (FORMAT BINARY)"
        )
        self._copy = self._copy_block.__enter__()
        self._copy.set_types([kind for _, kind in _STAGING_COLUMNS])

    def add(self, outcome: Outcome) -> None:
        self._ordinal += 1
        if isinstance(outcome, CheckIn):
            self._copy.write_row(
                (
                    self._ordinal,
                    outcome.line,
                    outcome.row_key,
                    outcome.user,
                    outcome.checkin_at,
                    outcome.hours,
                    outcome.project,
                    sorted(flag.value for flag in outcome.flags),
                    sorted(fix.value for fix in outcome.fixes),
                    outcome.stamp_format.value,
                    outcome.minute_precision,
                    None,
                    None,
                    None,
                )
            )
        else:
            self._copy.write_row(
                (self._ordinal, outcome.line)
                + (None,) * 9
                + (outcome.text, outcome.reason.value, outcome.detail)
            )

    def abort(self, error: BaseException) -> None:
        """End the COPY with `error`, so that the server discards what it received."""
        if not self.finished:
            self._copy_block.__exit__(type(error), error, error.__traceback__)

    def finish(self, report: LoadReport, finished_at: dt.datetime) -> tuple[int, int]:
        self._copy_block.__exit__(None, None, None)
        cursor = self._cursor
        (load_id,) = cursor.execute(
            "INSERT INTO loads (source, sha256, started_at, finished_at, rows_read,"
            " rows_loaded, rows_quarantined, rows_inserted, report)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s) RETURNING id",
            (
                self.source,
                self.sha256,
                self.started_at,
                finished_at,
                report.rows_read,
                report.rows_loaded,
                report.rows_quarantined,
                json.dumps(report.to_dict()),
            ),
        ).fetchone()
        cursor.execute(
            "INSERT INTO checkins (row_key, user_name, checkin_at, hours, project,"
            " flags, fixes, stamp_format, minute_precision, source_line, load_id)"
            " SELECT row_key, user_name, checkin_at, hours, project, flags, fixes,"
            " stamp_format, minute_precision, line, %s"
            " FROM staged WHERE reason IS NULL ORDER BY ordinal"
            " ON CONFLICT (row_key) DO NOTHING",
            (load_id,),
        )
        inserted = cursor.rowcount
        cursor.execute(
            "INSERT INTO quarantined_rows (load_id, line, raw_text, reason, detail)"
            " SELECT %s, line, raw_text, reason, detail"
            " FROM staged WHERE reason IS NOT NULL ORDER BY ordinal",
            (load_id,),
        )
        cursor.execute(
            "INSERT INTO user_totals"
            " SELECT user_name, count(*), sum(hours), min(checkin_at), max(checkin_at)"
            " FROM checkins"
            " WHERE user_name IN (SELECT user_name FROM staged WHERE reason IS NULL)"
            " GROUP BY user_name"
            " ON CONFLICT (user_name) DO UPDATE SET"
            " checkins = excluded.checkins, hours = excluded.hours,"
            " first_checkin_at = excluded.first_checkin_at,"
            " last_checkin_at = excluded.last_checkin_at"
        )
        report.rows_inserted = inserted
        report.load_id = load_id
        cursor.execute(
            "UPDATE loads SET rows_inserted = %s, report = %s WHERE id = %s",
            (inserted, json.dumps(report.to_dict()), load_id),
        )
        self.finished = True
        return load_id, inserted
