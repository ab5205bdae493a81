"""The PostgreSQL repository: versioned migrations, COPY for bulk writes."""

import contextlib
import dataclasses
import datetime as dt
import decimal
import functools
import importlib.resources
import json
import logging
import queue
import threading
from collections.abc import Iterator
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.copy import LibpqWriter

from checkins.domain.cleaning import (
    DAY_LIMIT,
    ISOLATION_GAP,
    ISOLATION_SHARE,
    Record,
)
from checkins.domain.model import Flag, Quarantined
from checkins.domain.report import LoadReport, StoredLoad
from checkins.ports import AlreadyLoadedError, CheckinRepository, LoadWriter


logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process of the
# product. It serialises migrations and loads.
_LOAD_LOCK = 0x636B696E

_CHECKIN_COLUMNS = (
    "user_name, checkin_at, hours, project, occurrence, flags, fixes,"
    " stamp_format, minute_precision, source_line, load_id, checkin_minute"
)

_WRITER_ROLE = "checkins_writer"

# The statement trigger of migration 0002 that refreshes user_project_totals
# after an INSERT into checkins. A first load disables it and computes the
# totals once instead.
_INSERT_TOTALS_TRIGGER = "checkins_insert_refreshes_user_project_totals"

# A load that inserts, retires or revives more than this share of the rows the
# table held before it runs ANALYZE, so that the planner does not plan the
# API's queries with statistics of a much smaller table.
_ANALYZE_SHARE = 0.1

# Sums of hours that raise instead of rounding, however many digits they need.
_EXACT_SUMS = decimal.Context(prec=decimal.MAX_PREC, traps=[decimal.Inexact])

# COPY text format escapes; names rarely need them, so escaped names are cached.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_CACHE_LIMIT = 100_000


# The flags of `flag_stored_rows` in the domain, for the current rows of some
# users, given every row that the load inserted, saw or retired. Days are UTC
# days. Only days with such rows can change their repeated and over-24-hours
# flags. A person's new rows can move any day in or out of an isolated run,
# though, so every current row of the users is checked for that flag alone.
# Only rows whose flags change are written. The rows the load saw are joined,
# not tested with OR id IN (...): once seen_checkins outgrows work_mem, such a
# test can run as a subplan that reads the whole table for each row.
_REFLAG_SQL = """
WITH touched_days AS (
    SELECT user_name, (checkin_at AT TIME ZONE 'UTC')::date AS day
    FROM checkins
    WHERE load_id = %(load)s OR retired_by = %(load)s
    UNION
    SELECT c.user_name, (c.checkin_at AT TIME ZONE 'UTC')::date
    FROM seen_checkins s
    JOIN checkins c ON c.id = s.id
), days AS (
    SELECT user_name, (checkin_at AT TIME ZONE 'UTC')::date AS day,
        count(*) AS day_rows, sum(hours) AS day_hours
    FROM checkins
    WHERE user_name = ANY(%(users)s) AND retired_by IS NULL
    GROUP BY 1, 2
), runs AS (
    SELECT user_name, day, day_rows, day_hours,
        CASE WHEN day - lag(day) OVER (PARTITION BY user_name ORDER BY day)
            > %(gap_days)s THEN 1 ELSE 0 END AS starts_run
    FROM days
), numbered_runs AS (
    SELECT user_name, day, day_rows, day_hours,
        sum(starts_run) OVER (PARTITION BY user_name ORDER BY day) AS run
    FROM runs
), day_flags AS (
    SELECT user_name, day, day_hours > %(day_limit)s AS over_24h,
        max(run) OVER (PARTITION BY user_name) > 0
            AND sum(day_rows) OVER (PARTITION BY user_name, run)
                < %(share)s * sum(day_rows) OVER (PARTITION BY user_name)
            AS isolated
    FROM numbered_runs
), candidates AS (
    SELECT c.id, c.user_name, c.checkin_at, c.hours, c.project, c.flags,
        d.over_24h, d.isolated, t.day IS NOT NULL AS touched
    FROM checkins c
    JOIN day_flags d ON d.user_name = c.user_name
        AND d.day = (c.checkin_at AT TIME ZONE 'UTC')::date
    LEFT JOIN touched_days t ON t.user_name = d.user_name AND t.day = d.day
    WHERE c.user_name = ANY(%(users)s) AND c.retired_by IS NULL
        AND (t.day IS NOT NULL OR (%(isolated)s = ANY(c.flags)) <> d.isolated)
), computed AS (
    SELECT id, array_remove(ARRAY[
        CASE WHEN touched AND row_number() OVER (
                PARTITION BY user_name, checkin_at, hours, project ORDER BY id
            ) > 1
            OR NOT touched AND %(repeated)s = ANY(flags)
            THEN %(repeated)s END,
        CASE WHEN over_24h THEN %(day_over)s END,
        CASE WHEN isolated THEN %(isolated)s END
    ]::text[], NULL) AS flags
    FROM candidates
)
UPDATE checkins c SET flags = computed.flags
FROM computed
WHERE c.id = computed.id AND c.flags IS DISTINCT FROM computed.flags
"""


@functools.cache
def migrations() -> tuple[tuple[str, str], ...]:
    """Return the shipped migrations as (name, SQL) pairs, in the order to apply.

    The files are read once a process, because every load checks them.
    """
    folder = importlib.resources.files(__package__) / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return tuple((entry.name, entry.read_text(encoding="utf-8")) for entry in files)


def apply_migrations(connection: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied, inside the caller's transaction.

    When none is pending, this returns at once instead of waiting for a load
    that is running.
    """
    if not _migrations_pending(connection):
        return []
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


def _migrations_pending(connection: psycopg.Connection) -> bool:
    (recorded,) = connection.execute(
        "SELECT to_regclass('schema_migrations') IS NOT NULL"
    ).fetchone()
    if not recorded:
        return True
    applied = {
        name for (name,) in connection.execute("SELECT name FROM schema_migrations")
    }
    return any(name not in applied for name, _ in migrations())


class PostgresCheckinRepository(CheckinRepository):
    """Check-ins loaded into PostgreSQL, one connection and transaction a load."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    def migrate(self) -> list[str]:
        with psycopg.connect(self.conninfo) as connection:
            return apply_migrations(connection)

    def loaded_sha256s(self) -> set[str]:
        with psycopg.connect(self.conninfo) as connection:
            apply_migrations(connection)
            return {sha for (sha,) in connection.execute("SELECT sha256 FROM loads")}

    def list_loads(self) -> list[StoredLoad]:
        with psycopg.connect(self.conninfo) as connection:
            apply_migrations(connection)
            rows = connection.execute(
                "SELECT id, source, sha256, mode, started_at, finished_at,"
                " rows_read, rows_loaded, rows_quarantined, rows_inserted,"
                " rows_retired,"
                # The report of every load records revived rows, so the table
                # has no column for them.
                " coalesce((report ->> 'rows_revived')::integer, 0)"
                " FROM loads ORDER BY id"
            ).fetchall()
        return [StoredLoad(*row) for row in rows]

    def load_report(self, load_id: int | None = None) -> dict | None:
        with psycopg.connect(self.conninfo) as connection:
            apply_migrations(connection)
            if load_id is None:
                row = connection.execute(
                    "SELECT report FROM loads ORDER BY id DESC LIMIT 1"
                ).fetchone()
            else:
                row = connection.execute(
                    "SELECT report FROM loads WHERE id = %s", (load_id,)
                ).fetchone()
        return None if row is None else row[0]

    @contextlib.contextmanager
    def load(
        self,
        source: str,
        sha256: str,
        started_at: dt.datetime,
        *,
        mode: str = "append",
        window: tuple[dt.datetime, dt.datetime] | None = None,
        skip_loaded: bool = False,
    ) -> Iterator[LoadWriter]:
        # Migrations commit before the load begins. The load looks up stored
        # rows on a second connection, which a migration's locks would block.
        self.migrate()
        with (
            psycopg.connect(self.conninfo) as connection,
            connection.transaction(),
        ):
            _wait_for_other_loads(connection)
            if skip_loaded:
                (loaded,) = connection.execute(
                    "SELECT EXISTS (SELECT 1 FROM loads WHERE sha256 = %s)", (sha256,)
                ).fetchone()
                if loaded:
                    raise AlreadyLoadedError(source, sha256)
            table = _TableState.read(connection)
            if table.first_load:
                _drop_secondary_indexes(connection, table)
            # Migrations need the owner's rights; the rows are written with
            # only the rights a load needs.
            connection.execute(f"SET LOCAL ROLE {_WRITER_ROLE}")
            writer = _PostgresLoadWriter(
                connection,
                self.conninfo,
                source,
                sha256,
                started_at,
                mode,
                window,
                table,
            )
            try:
                yield writer
            except BaseException as error:
                writer.abort(error)
                raise
            finally:
                writer.close_lookups()
            if not writer.finished:
                raise RuntimeError("a load block ended without calling finish()")


class _BackgroundWriter(LibpqWriter):
    """Sends COPY data from a thread while the caller prepares the next rows.

    At most MAX_CHUNKS chunks of CHUNK_BYTES wait to be sent, so that memory
    stays bounded when the server is slower than the cleaning.
    """

    CHUNK_BYTES = 128 * 1024
    MAX_CHUNKS = 32

    def __init__(self, cursor: psycopg.Cursor) -> None:
        super().__init__(cursor)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(self.MAX_CHUNKS)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, data) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._send, name="checkins-copy", daemon=True
            )
            self._thread.start()
        if self._error is not None:
            raise self._error
        view = memoryview(data)
        for start in range(0, len(view), self.CHUNK_BYTES):
            self._chunks.put(view[start : start + self.CHUNK_BYTES])

    def finish(self, exc: BaseException | None = None) -> None:
        if self._thread is not None:
            self._chunks.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None and exc is None:
            raise self._error
        super().finish(exc)

    def _send(self) -> None:
        try:
            while (chunk := self._chunks.get()) is not None:
                super().write(chunk)
        except BaseException as error:
            self._error = error
            # Keep taking chunks after a failure, so that write() does not
            # block on a full queue and sees the error on its next call.
            while self._chunks.get() is not None:
                pass


def _array_text(values: tuple[str, ...]) -> str:
    """Write fixes or flags as a COPY text array. Their names need no quoting."""
    return "{" + ",".join(values) + "}"


def _storable(text: str) -> str:
    """Write NUL as the four characters \\x00, which PostgreSQL text can hold."""
    return text.replace("\x00", "\\x00")


@dataclasses.dataclass
class _TableState:
    """The state of `checkins` that a load needs before it writes.

    `first_load` is true when the table is empty and the connecting role owns
    it, so that the load may drop and rebuild its secondary indexes.
    `dropped_indexes` contains the definitions of the indexes a first load
    dropped, to run again after its COPY.
    """

    has_rows: bool
    owned: bool
    estimated_rows: float
    dropped_indexes: list[str] = dataclasses.field(default_factory=list)

    @property
    def first_load(self) -> bool:
        return self.owned and not self.has_rows

    @classmethod
    def read(cls, connection: psycopg.Connection) -> "_TableState":
        # reltuples is -1 for a table never analyzed or vacuumed, which counts
        # as 0 rows, so that any load analyzes it.
        has_rows, owned, estimated_rows = connection.execute(
            "SELECT EXISTS (SELECT 1 FROM checkins),"
            " pg_has_role(c.relowner, 'USAGE'), greatest(c.reltuples, 0)"
            " FROM pg_class c WHERE c.oid = 'checkins'::regclass"
        ).fetchone()
        return cls(has_rows, owned, estimated_rows)


def _drop_secondary_indexes(connection: psycopg.Connection, table: _TableState) -> None:
    """Drop the indexes of the empty `checkins` table except its primary key.

    Building an index once over a million rows takes a fraction of the time
    of updating it row by row during the COPY, as pg_restore does. The DDL is
    part of the load's transaction, so a failed load gets the indexes back on
    rollback. Dropping takes an ACCESS EXCLUSIVE lock, so queries of
    `checkins` wait for the first load to commit instead of reading an empty
    table.
    """
    rows = connection.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
        " FROM pg_index i WHERE i.indrelid = 'checkins'::regclass"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k"
        "   WHERE k.conindid = i.indexrelid)"
        " ORDER BY 1"
    ).fetchall()
    for name, definition in rows:
        connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        table.dropped_indexes.append(definition)
    connection.execute(
        sql.SQL("ALTER TABLE checkins DISABLE TRIGGER {}").format(
            sql.Identifier(_INSERT_TOTALS_TRIGGER)
        )
    )
    logger.info("first load: rebuilding %d indexes after the COPY", len(rows))


def _wait_for_other_loads(connection: psycopg.Connection) -> None:
    (free,) = connection.execute(
        "SELECT pg_try_advisory_xact_lock(%s)", (_LOAD_LOCK,)
    ).fetchone()
    if not free:
        logger.warning("another load is running; waiting for it to finish")
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))


class _PostgresLoadWriter(LoadWriter):
    """Streams new check-ins with COPY straight into the table.

    Rows already stored are found before they are written, by reading the
    stored rows of the same people and stamps on a second connection, so that
    COPY never meets a duplicate. When the table is empty at the start of the
    load, there is nothing to look up.
    """

    def __init__(
        self,
        connection: psycopg.Connection,
        conninfo: str,
        source: str,
        sha256: str,
        started_at: dt.datetime,
        mode: str,
        window: tuple[dt.datetime, dt.datetime] | None,
        table: _TableState,
    ) -> None:
        self.connection = connection
        self.table = table
        self.conninfo = conninfo
        self.mode = mode
        self.window = window
        self.finished = False
        self._cursor = connection.cursor()
        (self.load_id,) = self._cursor.execute(
            "INSERT INTO loads (source, sha256, mode, started_at)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (source, sha256, mode, started_at),
        ).fetchone()
        self._lookups = (
            psycopg.connect(conninfo, autocommit=True) if table.has_rows else None
        )
        self._seen_ids: list[int] = []
        self._quarantined: list[Quarantined] = []
        self._totals: dict[str, list] = {}
        self._inserted = 0
        self._load_text = str(self.load_id)
        self._names: dict[str, str] = {}
        self._stamps: dict[dt.datetime, str] = {}
        self._hours: dict[Decimal, str] = {}
        # The COPY text between the occurrence and the source line, by flags,
        # fixes, stamp form and minute precision: at most a few thousand keys.
        self._middles: dict[tuple, str] = {}
        self._project_totals: dict[tuple[str, str], list] | None = (
            {} if table.first_load else None
        )
        self._copy_block = self._cursor.copy(
            f"COPY checkins ({_CHECKIN_COLUMNS}) FROM STDIN",
            writer=_BackgroundWriter(self._cursor),
        )
        self._copy = self._copy_block.__enter__()

    def add_records(self, records: list[Record]) -> None:
        if not records:
            return
        if self._lookups is not None:
            records = self._drop_stored(records)
        self._track(records)
        self._copy.write("".join(self._copy_lines(records)))
        self._inserted += len(records)

    def add_quarantined(self, rows: list[Quarantined]) -> None:
        self._quarantined.extend(rows)

    def abort(self, error: BaseException) -> None:
        """End the COPY with `error`, so that the server discards what it received."""
        if not self.finished:
            self._copy_block.__exit__(type(error), error, error.__traceback__)

    def close_lookups(self) -> None:
        """Close the second connection used to find stored rows."""
        if self._lookups is not None:
            self._lookups.close()
            self._lookups = None

    def finish(self, report: LoadReport, finished_at: dt.datetime) -> None:
        self._copy_block.__exit__(None, None, None)
        self.close_lookups()
        if self.table.first_load:
            self._rebuild_after_first_load()
        cursor = self._cursor
        self._store_quarantined()
        revived, changed_users = self._restore_seen()
        retired = 0
        if self.mode == "snapshot":
            retired, retired_users = self._retire_missing(self.window or report.window)
            changed_users |= retired_users
        self._update_user_totals(changed_users)
        self._analyze_if_changed(self._inserted + retired + revived)
        if not self.table.first_load:
            self._reflag(changed_users | set(self._totals))

        report.load_id = self.load_id
        report.rows_inserted = self._inserted
        report.rows_retired = retired
        report.rows_revived = revived
        cursor.execute(
            "UPDATE loads SET finished_at = %s, rows_read = %s, rows_loaded = %s,"
            " rows_quarantined = %s, rows_inserted = %s, rows_retired = %s,"
            " report = %s WHERE id = %s",
            (
                finished_at,
                report.rows_read,
                report.rows_loaded,
                report.rows_quarantined,
                report.rows_inserted,
                report.rows_retired,
                json.dumps(report.to_dict()),
                self.load_id,
            ),
        )
        self.finished = True

    def _rebuild_after_first_load(self) -> None:
        """Recreate the dropped indexes and write user_project_totals once.

        The insert trigger would compute the same totals from a transition
        table of every loaded row. The table was empty, so every current row
        is one of this load's, and the totals summed while the rows were
        written are those of the whole table.
        """
        cursor = self._cursor
        cursor.execute("SET LOCAL ROLE NONE")
        for definition in self.table.dropped_indexes:
            cursor.execute(definition)
        cursor.execute(
            sql.SQL("ALTER TABLE checkins ENABLE TRIGGER {}").format(
                sql.Identifier(_INSERT_TOTALS_TRIGGER)
            )
        )
        cursor.execute(f"SET LOCAL ROLE {_WRITER_ROLE}")
        cursor.execute(
            "DELETE FROM user_project_totals WHERE user_name = ANY(%s)",
            (list(self._totals),),
        )
        escape = self._escape
        with cursor.copy(
            "COPY user_project_totals (user_name, project, checkins, hours) FROM STDIN"
        ) as copy:
            copy.write(
                "".join(
                    f"{escape(user)}\t{escape(project)}\t{count}\t{hours}\n"
                    for (user, project), (count, hours) in self._project_totals.items()
                )
            )

    def _analyze_if_changed(self, changed_rows: int) -> None:
        """Run ANALYZE after a load that changed a large share of the rows.

        Autovacuum analyzes the tables only some time after the commit, and
        until then the planner plans the API's queries with the statistics of
        a much smaller table, or none. ANALYZE reads a sample of 30,000 rows
        per table at the default statistics target, so it takes under half a
        second on 1,000,000 rows. It needs the table's owner, so when the
        connecting role does not own the table, autovacuum does it.
        """
        if not self.table.owned or not changed_rows:
            return
        if self.table.has_rows and changed_rows <= (
            _ANALYZE_SHARE * self.table.estimated_rows
        ):
            return
        cursor = self._cursor
        cursor.execute("SET LOCAL ROLE NONE")
        cursor.execute("ANALYZE checkins, user_totals, user_project_totals")
        cursor.execute(f"SET LOCAL ROLE {_WRITER_ROLE}")

    def _drop_stored(self, records: list[Record]) -> list[Record]:
        """Remove the records already stored, remembering the stored rows' ids."""
        windows: dict[str, list[dt.datetime]] = {}
        for record in records:
            window = windows.get(record[1])
            if window is None:
                windows[record[1]] = [record[10], record[10]]
            elif record[10] < window[0]:
                window[0] = record[10]
            elif record[10] > window[1]:
                window[1] = record[10]
        users = list(windows)
        stored = self._lookups.execute(
            "SELECT c.id, c.user_name, c.checkin_minute, c.hours, c.project,"
            " c.occurrence"
            " FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])"
            "   AS w(user_name, low, high)"
            " JOIN checkins c ON c.user_name = w.user_name"
            "  AND c.checkin_minute BETWEEN w.low AND w.high",
            (
                users,
                [windows[user][0] for user in users],
                [windows[user][1] for user in users],
            ),
        ).fetchall()
        if not stored:
            return records
        ids = {tuple(key): row_id for row_id, *key in stored}
        new = []
        for record in records:
            row_id = ids.get((record[1], record[10], record[3], record[4], record[9]))
            if row_id is None:
                new.append(record)
            else:
                self._seen_ids.append(row_id)
        return new

    def _track(self, records: list[Record]) -> None:
        """Add the records to the per-user totals, and per project on a first load."""
        totals = self._totals
        for record in records:
            user, at, hours = record[1], record[2], record[3]
            total = totals.get(user)
            if total is None:
                totals[user] = [1, hours, at, at]
                continue
            total[0] += 1
            total[1] += hours
            if at < total[2]:
                total[2] = at
            elif at > total[3]:
                total[3] = at
        project_totals = self._project_totals
        if project_totals is None:
            return
        # PostgreSQL's sum of numeric values is exact, so these sums must be
        # too. The context raises decimal.Inexact rather than round.
        with decimal.localcontext(_EXACT_SUMS):
            for record in records:
                key = (record[1], record[4])
                total = project_totals.get(key)
                if total is None:
                    project_totals[key] = [1, record[3]]
                else:
                    total[0] += 1
                    total[1] += record[3]

    def _copy_lines(self, records: list[Record]) -> Iterator[str]:
        names, stamps, hours_texts, middles = (
            self._names,
            self._stamps,
            self._hours,
            self._middles,
        )
        end = f"\t{self._load_text}\t"
        for (
            line,
            user,
            at,
            hours,
            project,
            form,
            minute,
            fixes,
            flags,
            occ,
            checkin_minute,
        ) in records:
            user_text = names.get(user) or self._escape(user)
            project_text = names.get(project) or self._escape(project)
            stamp = stamps.get(at)
            if stamp is None:
                if len(stamps) >= _CACHE_LIMIT:
                    stamps.clear()
                stamp = stamps[at] = at.isoformat()
            minute_text = stamp if checkin_minute is at else stamps.get(checkin_minute)
            if minute_text is None:
                minute_text = stamps[checkin_minute] = checkin_minute.isoformat()
            hours_text = hours_texts.get(hours)
            if hours_text is None:
                hours_text = hours_texts[hours] = str(hours)
            middle_key = (flags, fixes, form, minute)
            middle = middles.get(middle_key)
            if middle is None:
                middle = middles[middle_key] = (
                    f"\t{_array_text(flags)}\t{_array_text(fixes)}\t{form}\t"
                    f"{'t' if minute else 'f'}\t"
                )
            yield (
                f"{user_text}\t{stamp}\t{hours_text}\t{project_text}\t{occ}"
                f"{middle}{line}{end}{minute_text}\n"
            )

    def _escape(self, name: str) -> str:
        if len(self._names) >= _CACHE_LIMIT:
            self._names.clear()
        escaped = self._names[name] = name.translate(_COPY_ESCAPES)
        return escaped

    def _store_quarantined(self) -> None:
        if not self._quarantined:
            return
        with self._cursor.copy(
            "COPY quarantined_rows (load_id, line, raw_text, reason, detail) FROM STDIN"
        ) as copy:
            for row in self._quarantined:
                copy.write_row(
                    (
                        self.load_id,
                        row.line,
                        _storable(row.text),
                        row.reason.value,
                        _storable(row.detail),
                    )
                )

    def _restore_seen(self) -> tuple[int, set[str]]:
        """Keep the seen rows' ids for this load; return users of revived rows.

        A stored row that a snapshot had retired is current again when a
        later file contains it.
        """
        self._cursor.execute(
            "CREATE TEMP TABLE seen_checkins (id bigint PRIMARY KEY) ON COMMIT DROP"
        )
        if not self._seen_ids:
            return 0, set()
        with self._cursor.copy("COPY seen_checkins (id) FROM STDIN") as copy:
            copy.write("".join(f"{row_id}\n" for row_id in set(self._seen_ids)))
        revived = self._cursor.execute(
            "UPDATE checkins c SET retired_by = NULL FROM seen_checkins s"
            " WHERE c.id = s.id AND c.retired_by IS NOT NULL"
            " RETURNING c.user_name"
        ).fetchall()
        return len(revived), {user for (user,) in revived}

    def _retire_missing(
        self, window: tuple[dt.datetime, dt.datetime] | None
    ) -> tuple[int, set[str]]:
        """Retire current rows in the window that this snapshot does not contain."""
        if window is None:
            return 0, set()
        retired = self._cursor.execute(
            "UPDATE checkins c SET retired_by = %(load)s"
            " WHERE c.checkin_at BETWEEN %(low)s AND %(high)s"
            " AND c.retired_by IS NULL AND c.load_id <> %(load)s"
            " AND NOT EXISTS (SELECT 1 FROM seen_checkins s WHERE s.id = c.id)"
            " RETURNING c.user_name",
            {"load": self.load_id, "low": window[0], "high": window[1]},
        ).fetchall()
        return len(retired), {user for (user,) in retired}

    def _reflag(self, users: set[str]) -> None:
        """Work out again the flags of the current rows of `users`.

        A first load skips this: its rows are all the table has, and cleaning
        flagged them with every row of each person in view.
        """
        if not users:
            return
        # The planner needs the size of the temporary table, which autovacuum
        # never analyzes. Statistics of a table that just grew, when this role
        # may not analyze it, can still make nested loops look cheap.
        self._cursor.execute("ANALYZE seen_checkins")
        self._cursor.execute("SET LOCAL enable_nestloop = off")
        changed = self._cursor.execute(
            _REFLAG_SQL,
            {
                "load": self.load_id,
                "users": sorted(users),
                "gap_days": ISOLATION_GAP.days,
                "day_limit": DAY_LIMIT,
                "share": ISOLATION_SHARE,
                "repeated": Flag.REPEATED_ENTRY.value,
                "day_over": Flag.DAY_OVER_24H.value,
                "isolated": Flag.ISOLATED_TIMESTAMP.value,
            },
        ).rowcount
        self._cursor.execute("SET LOCAL enable_nestloop = on")
        if changed:
            logger.info(
                "flags of %d stored rows changed with this load's rows", changed
            )

    def _update_user_totals(self, changed_users: set[str]) -> None:
        """Add the new rows to `user_totals`; recount users whose rows changed."""
        totals = {
            user: total
            for user, total in self._totals.items()
            if user not in changed_users
        }
        if totals:
            users = list(totals)
            self._cursor.execute(
                "INSERT INTO user_totals AS t"
                " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::numeric[],"
                "   %s::timestamptz[], %s::timestamptz[])"
                " ON CONFLICT (user_name) DO UPDATE SET"
                " checkins = t.checkins + excluded.checkins,"
                " hours = t.hours + excluded.hours,"
                " first_checkin_at ="
                "   least(t.first_checkin_at, excluded.first_checkin_at),"
                " last_checkin_at ="
                "   greatest(t.last_checkin_at, excluded.last_checkin_at)",
                [users] + [[totals[user][i] for user in users] for i in range(4)],
            )
        changed = sorted(changed_users)
        if changed:
            self._cursor.execute(
                "DELETE FROM user_totals WHERE user_name = ANY(%s)", (changed,)
            )
            self._cursor.execute(
                "INSERT INTO user_totals"
                " SELECT user_name, count(*), sum(hours), min(checkin_at),"
                "   max(checkin_at)"
                " FROM checkins WHERE user_name = ANY(%s) AND retired_by IS NULL"
                " GROUP BY user_name",
                (changed,),
            )
