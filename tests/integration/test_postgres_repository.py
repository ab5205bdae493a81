import datetime as dt
import json
from decimal import Decimal

import psycopg
import pytest

from checkins import services
from checkins.adapters.csv_source import CsvFileSource
from checkins.adapters.memory import InMemoryCheckinQueries, InMemoryCheckinRepository
from checkins.adapters.postgres import PostgresCheckinRepository, migrations
from checkins.adapters.postgres_queries import PostgresCheckinQueries
from checkins.domain.cleaning import Cleaning
from checkins.domain.queries import CheckinQuery, Position, UnknownUserError
from checkins.ports import AlreadyLoadedError


CSV = """user,timestamp,hours,project
ned,2018-11-26 14:47:36.0429 UTC,8.0,bizdev
ned,11/26/2018 02:47 PM,1.5,hirng
ned,26 ноября 2018 14:47,1.5,hirng
ned,2018-11-27 09:00:00 UTC,2.0,bizdev
arya,2018-11-26 10:00:00 UTC,4.0,learning
,2018-11-26 10:00:00 UTC,4.0,learning
arya,2018-11-26 11:00:00 UTC,0,learning
"""


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@pytest.fixture(name="repository")
def fixture_repository(database_url):
    return PostgresCheckinRepository(database_url)


@pytest.fixture(name="queries")
def fixture_queries(database_url):
    queries = PostgresCheckinQueries(database_url)
    yield queries
    queries.close()


@pytest.fixture(name="export")
def fixture_export(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_migrate_applies_each_once(repository):
    """Migrations apply once and are recorded by name."""
    first = repository.migrate()
    second = repository.migrate()

    assert [name for name, _ in migrations()] == first
    assert [] == second


def test_load_stores_rows_and_load(repository, export, database_url):
    """A load stores its check-ins, its quarantined rows and its record."""
    report = services.ingest(CsvFileSource(export), repository)

    assert 7 == report.rows_read
    assert 5 == report.rows_inserted
    assert 5 == count(database_url, "checkins")
    assert 2 == count(database_url, "quarantined_rows")
    with psycopg.connect(database_url) as connection:
        load = connection.execute(
            "SELECT source, sha256, rows_read, rows_loaded, rows_quarantined,"
            " rows_inserted, report->>'rows_read' FROM loads"
        ).fetchone()
        quarantined = connection.execute(
            "SELECT line, raw_text, reason FROM quarantined_rows ORDER BY line"
        ).fetchall()
    assert (str(export), CsvFileSource(export).sha256(), 7, 5, 2, 5, "7") == load
    assert [
        (7, ",2018-11-26 10:00:00 UTC,4.0,learning", "missing_user"),
        (8, "arya,2018-11-26 11:00:00 UTC,0,learning", "hours_not_positive"),
    ] == quarantined


def test_second_load_adds_no_rows(repository, export, database_url):
    """Loading the same file twice records two loads and stores rows once."""
    services.ingest(CsvFileSource(export), repository)

    report = services.ingest(CsvFileSource(export), repository)

    assert 0 == report.rows_inserted
    assert 2 == report.load_id
    assert 5 == count(database_url, "checkins")
    assert 2 == count(database_url, "loads")


def write_csv(path, lines: list[str]):
    path.write_text("user,timestamp,hours,project\n" + "\n".join(lines) + "\n")
    return path


def test_stamp_in_another_form_adds_no_rows(repository, queries, tmp_path):
    """A row written to the minute in a later export is the row stored before."""
    first = write_csv(
        tmp_path / "first.csv",
        ["ned,2018-11-26 10:00:30.5 UTC,2,a", "ned,2018-11-26 10:00:30.5 UTC,3,b"],
    )
    later = write_csv(
        tmp_path / "later.csv",
        ["ned,2018-11-26 10:00:30.5 UTC,2,a", "ned,11/26/2018 10:00 AM,3,b"],
    )
    services.ingest(CsvFileSource(first), repository)

    report = services.ingest(CsvFileSource(later), repository)

    assert 0 == report.rows_inserted
    (ned,) = queries.list_users()
    assert (2, Decimal(5)) == (ned.checkins, ned.hours)


def apply_first_migrations(connection: psycopg.Connection, count: int) -> None:
    """Give the database the schema of a release that had `count` migrations."""
    connection.execute(
        "CREATE TABLE schema_migrations"
        " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for name, text in migrations()[:count]:
        connection.execute(text)
        connection.execute("INSERT INTO schema_migrations VALUES (%s)", (name,))


def test_migration_numbers_stored_rows_by_minute(repository, database_url, tmp_path):
    """Rows stored under the identity by written stamp get one by minute."""
    with psycopg.connect(database_url) as connection:
        apply_first_migrations(connection, 2)
        # The same check-in stored twice, once per stamp form, and another row
        # of the same minute, as the identity by written stamp allowed.
        connection.execute(
            "INSERT INTO checkins (user_name, checkin_at, hours, project,"
            " written_at, occurrence, stamp_format, source_line, load_id) VALUES"
            " ('ned', '2018-11-26 10:00:30.5Z', 3, 'b', '2018-11-26 10:00:30.5Z',"
            "  0, 'iso', 2, 1),"
            " ('ned', '2018-11-26 10:00:30.5Z', 3, 'b', '2018-11-26 10:00Z',"
            "  0, 'us', 3, 2),"
            " ('ned', '2018-11-26 10:00:45Z', 2, 'a', '2018-11-26 10:00:45Z',"
            "  0, 'iso', 4, 2)"
        )

    assert ["0003_identity_by_minute.sql"] == repository.migrate()

    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT source_line, checkin_minute, occurrence FROM checkins"
            " ORDER BY source_line"
        ).fetchall()
    assert [
        (2, utc(2018, 11, 26, 10, 0), 1),
        (3, utc(2018, 11, 26, 10, 0), 0),
        (4, utc(2018, 11, 26, 10, 0), 0),
    ] == rows
    later = write_csv(tmp_path / "later.csv", ["ned,11/26/2018 10:00 AM,2,a"])
    assert 0 == services.ingest(CsvFileSource(later), repository).rows_inserted


def test_load_after_upgrade_keeps_current_rows(
    repository, queries, database_url, tmp_path, monkeypatch
):
    """A load migrates a database of stored rows and revives no retired row."""
    # A lock that the load waits for fails the test instead of hanging it.
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=10s")
    with psycopg.connect(database_url) as connection:
        apply_first_migrations(connection, 2)
        # ann's 2 hours, stored in the US form, then retired by a snapshot that
        # wrote them in ISO form, which the identity by written stamp took for
        # another row.
        connection.execute(
            "INSERT INTO checkins (user_name, checkin_at, hours, project,"
            " written_at, occurrence, stamp_format, source_line, load_id,"
            " retired_by) VALUES"
            " ('ann', '2018-11-26 10:00:36Z', 1, 'alpha', '2018-11-26 10:00:36Z',"
            "  0, 'iso', 2, 1, NULL),"
            " ('ann', '2018-11-26 10:00:36Z', 2, 'alpha', '2018-11-26 10:00Z',"
            "  0, 'us', 3, 1, 2),"
            " ('ann', '2018-11-26 10:00:36Z', 2, 'alpha', '2018-11-26 10:00:36Z',"
            "  0, 'iso', 3, 2, NULL)"
        )
        connection.execute(
            "INSERT INTO user_totals VALUES"
            " ('ann', 2, 3, '2018-11-26 10:00:36Z', '2018-11-26 10:00:36Z')"
        )
    later = write_csv(
        tmp_path / "later.csv",
        ["ann,2018-11-26 10:00:36 UTC,1,alpha", "ann,2018-11-26 10:00:36 UTC,2,alpha"],
    )

    report = services.ingest(CsvFileSource(later), repository)

    assert (0, 0) == (report.rows_inserted, report.rows_revived)
    (ann,) = queries.list_users()
    assert (2, Decimal(3)) == (ann.checkins, ann.hours)


def test_skip_loaded_raises_for_loaded_file(repository, export, database_url):
    """A run that read the loaded files before another run loaded this one."""
    loaded_before = repository.loaded_sha256s()
    services.ingest(CsvFileSource(export), repository)

    with pytest.raises(AlreadyLoadedError) as raised:
        services.ingest(CsvFileSource(export), repository, skip_loaded=True)

    assert set() == loaded_before
    assert raised.value.sha256 == CsvFileSource(export).sha256()
    assert 1 == count(database_url, "loads")
    assert 5 == count(database_url, "checkins")


def test_failed_load_leaves_database_unchanged(repository, export, database_url):
    """A load that fails midway stores nothing of itself."""
    services.ingest(CsvFileSource(export), repository)
    broken = export.parent / "broken.csv"
    broken.write_bytes(
        b"user,timestamp,hours,project\narya,2018-12-01 10:00:00 UTC,1,x\n" + b"\xff\n"
    )

    with pytest.raises(Exception, match="line 3 is not valid UTF-8"):
        services.ingest(CsvFileSource(broken), repository)

    assert 5 == count(database_url, "checkins")
    assert 1 == count(database_url, "loads")
    assert 2 == count(database_url, "quarantined_rows")


def test_list_users_totals(repository, queries, export):
    """User totals count and sum each user's stored rows."""
    services.ingest(CsvFileSource(export), repository)

    users = queries.list_users()

    assert ["arya", "ned"] == [u.user for u in users]
    assert [1, 4] == [u.checkins for u in users]
    assert [Decimal("4.0"), Decimal("13.0")] == [u.hours for u in users]
    assert utc(2018, 11, 26, 14, 47, 36, 42900) == users[1].first_checkin_at
    assert utc(2018, 11, 27, 9) == users[1].last_checkin_at


def test_user_checkins_recovered_and_aliased(repository, queries, export):
    """Stored rows carry recovered stamps, canonical projects and flags."""
    services.ingest(CsvFileSource(export), repository)

    page = queries.user_checkins(CheckinQuery("ned"))

    assert [
        (utc(2018, 11, 26, 14, 47, 36, 42900), Decimal("8.0"), "bizdev", ()),
        (utc(2018, 11, 26, 14, 47, 36, 42900), Decimal("1.5"), "hiring", ()),
        (
            utc(2018, 11, 26, 14, 47, 36, 42900),
            Decimal("1.5"),
            "hiring",
            ("repeated_entry",),
        ),
        (utc(2018, 11, 27, 9), Decimal("2.0"), "bizdev", ()),
    ] == [(c.checkin_at, c.hours, c.project, c.flags) for c in page.checkins]
    assert page.next_position is None


def test_rendered_page_writes_utc_stamps(repository, queries, export):
    """The JSON page writes UTC stamps ending in Z, and positions keep the zone."""
    services.ingest(CsvFileSource(export), repository)

    page = queries.render_user_checkins(CheckinQuery("ned", limit=3))

    documents = json.loads(page.checkins_json)
    assert [
        ("2018-11-26T14:47:36.042900Z", 8.0, "bizdev", []),
        ("2018-11-26T14:47:36.042900Z", 1.5, "hiring", []),
        ("2018-11-26T14:47:36.042900Z", 1.5, "hiring", ["repeated_entry"]),
    ] == [(d["checkin_at"], d["hours"], d["project"], d["flags"]) for d in documents]
    assert Position(utc(2018, 11, 26, 14, 47, 36, 42900), documents[2]["id"]) == (
        page.next_position
    )
    last = queries.render_user_checkins(CheckinQuery("ned", after=page.next_position))
    assert ["2018-11-27T09:00:00Z"] == [
        d["checkin_at"] for d in json.loads(last.checkins_json)
    ]
    assert last.next_position is None


def test_rendered_page_carries_data_version(repository, queries, export):
    services.ingest(CsvFileSource(export), repository)
    services.ingest(CsvFileSource(export), repository)
    query = CheckinQuery(user="ned", limit=2)
    empty = CheckinQuery(user="ned", first_day=dt.date(2019, 1, 1))

    plain = queries.render_user_checkins(query)
    tagged = queries.render_user_checkins(query, with_version=True)
    tagged_empty = queries.render_user_checkins(empty, with_version=True)

    assert plain.data_version is None
    assert tagged.data_version == 2
    assert tagged.checkins_json == plain.checkins_json
    assert tagged.next_position == plain.next_position
    assert tagged_empty.data_version == 2
    assert tagged_empty.checkins_json == b"[]"
    with pytest.raises(UnknownUserError):
        queries.render_user_checkins(CheckinQuery(user="nobody"), with_version=True)


def test_user_checkins_pages_without_gaps(repository, queries, export):
    """Following positions visits every row once, in order."""
    services.ingest(CsvFileSource(export), repository)
    seen = []
    query = CheckinQuery("ned", limit=1)

    while True:
        page = queries.user_checkins(query)
        seen.extend(c.id for c in page.checkins)
        if page.next_position is None:
            break
        query = CheckinQuery("ned", limit=1, after=page.next_position)

    assert sorted(seen) == seen
    assert 4 == len(set(seen))


def test_user_checkins_filters(repository, queries, export):
    """Inclusive day bounds and the project filter select rows."""
    services.ingest(CsvFileSource(export), repository)

    by_day = queries.user_checkins(
        CheckinQuery(
            "ned", first_day=dt.date(2018, 11, 27), last_day=dt.date(2018, 11, 27)
        )
    )
    by_project = queries.user_checkins(CheckinQuery("ned", project="hiring"))
    before = queries.user_checkins(CheckinQuery("ned", last_day=dt.date(2018, 11, 25)))

    assert [utc(2018, 11, 27, 9)] == [c.checkin_at for c in by_day.checkins]
    assert 2 == len(by_project.checkins)
    assert [] == before.checkins


def test_user_checkins_unknown_user(repository, queries, export):
    """A user with no rows raises UnknownUserError."""
    services.ingest(CsvFileSource(export), repository)

    with pytest.raises(UnknownUserError):
        queries.user_checkins(CheckinQuery("nobody"))


def test_list_users_empty_database(repository, queries):
    """A migrated empty database lists no users."""
    repository.migrate()

    assert [] == queries.list_users()


def test_nul_in_rejected_row_is_stored(repository, tmp_path, database_url):
    """A quarantined row's NUL byte is stored as the text \\x00."""
    path = tmp_path / "nul.csv"
    path.write_bytes(
        b"user,timestamp,hours,project\n"
        b"ned,2018-11-26 14:47:36 UTC,8,biz\x00dev\n"
        b"arya,2018-11-26 14:48:00 UTC,2,hiring\n"
    )

    report = services.ingest(CsvFileSource(path), repository)

    assert 1 == report.rows_quarantined
    with psycopg.connect(database_url) as connection:
        stored = connection.execute(
            "SELECT line, raw_text, reason FROM quarantined_rows"
        ).fetchall()
    assert [
        (2, "ned,2018-11-26 14:47:36 UTC,8,biz\\x00dev", "malformed_record")
    ] == stored


def test_names_with_backslashes_round_trip(repository, queries, tmp_path):
    """Backslashes, which COPY's text format escapes, survive in names."""
    path = tmp_path / "escapes.csv"
    path.write_text(
        'user,timestamp,hours,project\na\\\\b,2018-11-26 14:47:36 UTC,8,"x\\ty"\n',
        encoding="utf-8",
    )

    services.ingest(CsvFileSource(path), repository)

    (checkin,) = queries.user_checkins(CheckinQuery("a\\\\b")).checkins
    assert "a\\\\b" == checkin.user
    assert "x\\ty" == checkin.project


CHECKINS_INDEXES = [
    (
        "checkins_identity",
        "CREATE UNIQUE INDEX checkins_identity ON public.checkins USING btree"
        " (user_name, checkin_minute, project, hours, occurrence)",
    ),
    (
        "checkins_pkey",
        "CREATE UNIQUE INDEX checkins_pkey ON public.checkins USING btree (id)",
    ),
    (
        "checkins_user_time",
        "CREATE INDEX checkins_user_time ON public.checkins USING btree"
        " (user_name, checkin_at, id) WHERE (retired_by IS NULL)",
    ),
]


def checkins_indexes(database_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)"
            " FROM pg_index WHERE indrelid = 'checkins'::regclass ORDER BY 1"
        ).fetchall()


def trigger_states(database_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT tgname, tgenabled FROM pg_trigger"
            " WHERE tgrelid = 'checkins'::regclass AND NOT tgisinternal ORDER BY 1"
        ).fetchall()


def estimated_rows(database_url: str, table: str) -> float:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,)
        ).fetchone()[0]


ENABLED_TRIGGERS = [
    ("checkins_delete_refreshes_user_project_totals", "O"),
    ("checkins_insert_refreshes_user_project_totals", "O"),
    ("checkins_update_refreshes_user_project_totals", "O"),
]


def test_first_load_rebuilds_indexes(repository, export, database_url):
    """A load into the empty table ends with the indexes and trigger of the schema."""
    repository.migrate()
    assert CHECKINS_INDEXES == checkins_indexes(database_url)

    services.ingest(CsvFileSource(export), repository)

    assert CHECKINS_INDEXES == checkins_indexes(database_url)
    assert ENABLED_TRIGGERS == trigger_states(database_url)
    with psycopg.connect(database_url) as connection:
        totals = connection.execute(
            "SELECT user_name, project, checkins, hours FROM user_project_totals"
            " ORDER BY 1, 2"
        ).fetchall()
    assert [
        ("arya", "learning", 1, Decimal("4.0")),
        ("ned", "bizdev", 2, Decimal("10.0")),
        ("ned", "hiring", 2, Decimal("3.0")),
    ] == totals


def test_failed_first_load_keeps_indexes(repository, export, database_url):
    """A first load that fails after its COPY began leaves indexes and trigger."""
    repository.migrate()
    cleaning = Cleaning()
    list(cleaning.read(CsvFileSource(export).rows()))
    records = next(cleaning.people())

    with (
        pytest.raises(RuntimeError, match="stop"),
        repository.load("x.csv", "0" * 64, utc(2024, 1, 1)) as writer,
    ):
        writer.add_records(records)
        raise RuntimeError("stop")

    assert CHECKINS_INDEXES == checkins_indexes(database_url)
    assert ENABLED_TRIGGERS == trigger_states(database_url)
    assert 0 == count(database_url, "checkins")
    assert 0 == count(database_url, "loads")


def test_large_loads_analyze_tables(repository, tmp_path, database_url):
    """ANALYZE runs after loads that change over a tenth of the rows."""
    rows = "".join(
        f"user{number},2018-11-26 10:{number:02d}:00 UTC,1,bizdev\n"
        for number in range(20)
    )
    first = tmp_path / "first.csv"
    first.write_text("user,timestamp,hours,project\n" + rows, encoding="utf-8")
    second = tmp_path / "second.csv"
    second.write_text(
        "user,timestamp,hours,project\n" + rows + "extra,2018-11-27 10:00:00 UTC,1,x\n",
        encoding="utf-8",
    )
    third = tmp_path / "third.csv"
    third.write_text(
        "user,timestamp,hours,project\n"
        + "".join(
            f"more{number},2018-11-28 10:{number:02d}:00 UTC,1,x\n"
            for number in range(3)
        ),
        encoding="utf-8",
    )

    services.ingest(CsvFileSource(first), repository)
    after_first = estimated_rows(database_url, "checkins")
    totals_after_first = estimated_rows(database_url, "user_project_totals")
    services.ingest(CsvFileSource(second), repository)
    after_second = estimated_rows(database_url, "checkins")
    services.ingest(CsvFileSource(third), repository)
    after_third = estimated_rows(database_url, "checkins")

    assert 20 == after_first
    assert 20 == totals_after_first
    # One new row of 20 stored is under a tenth, so the estimate stays.
    assert 20 == after_second
    # Three new rows of 21 stored are over a tenth.
    assert 24 == after_third


@pytest.fixture(name="store", params=["postgres", "memory"])
def fixture_store(request, database_url):
    """A repository and its queries: PostgreSQL, or the in-memory pair to compare."""
    if request.param == "memory":
        repository = InMemoryCheckinRepository()
        yield repository, InMemoryCheckinQueries(repository)
        return
    queries = PostgresCheckinQueries(database_url)
    yield PostgresCheckinRepository(database_url), queries
    queries.close()


def load_lines(store, path, lines, **options):
    path.write_text("user,timestamp,hours,project\n" + "".join(lines), encoding="utf-8")
    services.ingest(CsvFileSource(path), store[0], **options)


def stored_flags(store, user):
    page = store[1].user_checkins(CheckinQuery(user=user, limit=1000))
    return [(row.checkin_at.hour, row.flags) for row in page.checkins]


def test_later_loads_update_stored_flags(store, tmp_path):
    """Flags cover the rows of every load, and follow rows that a snapshot retires."""
    morning = "zz,2018-11-26 08:00:00 UTC,16,p\n"
    evening = "zz,2018-11-26 18:00:00 UTC,16,p\n"
    day_over = ("day_over_24h",)

    load_lines(store, tmp_path / "1.csv", [morning])
    first = stored_flags(store, "zz")
    load_lines(store, tmp_path / "2.csv", [evening])
    second = stored_flags(store, "zz")
    load_lines(store, tmp_path / "3.csv", [morning, morning])
    third = stored_flags(store, "zz")
    load_lines(
        store,
        tmp_path / "4.csv",
        [evening],
        mode="snapshot",
        window=(utc(2018, 11, 26), utc(2018, 11, 26, 23, 59)),
    )
    fourth = stored_flags(store, "zz")

    assert [(8, ())] == first
    assert [(8, day_over), (18, day_over)] == second
    assert [
        (8, day_over),
        (8, ("repeated_entry", "day_over_24h")),
        (18, day_over),
    ] == third
    assert [(18, ())] == fourth
