"""The PostgreSQL repository: versioned migrations, COPY for bulk writes."""

import contextlib
import datetime as dt
import importlib.resources
import json
import logging
from collections.abc import Iterator

import psycopg

from checkins.domain.model import CheckIn, Outcome
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
    """Check-ins loaded into PostgreSQL, one connection and transaction a load."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

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


def _wait_for_other_loads(connection: psycopg.Connection) -> None:
    (free,) = connection.execute(
        "SELECT pg_try_advisory_xact_lock(%s)", (_LOAD_LOCK,)
    ).fetchone()
    if not free:
        logger.warning("another load is running; waiting for it to finish")
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))


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
            " WHERE retired_by IS NULL"
            " AND user_name IN (SELECT user_name FROM staged WHERE reason IS NULL)"
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
