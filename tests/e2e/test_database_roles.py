"""The API's read-only database role and the loader's writing role."""

import psycopg
import pytest

from checkins.adapters.postgres import PostgresCheckinRepository
from checkins.adapters.postgres_queries import PostgresCheckinQueries


@pytest.fixture(name="queries", scope="module")
def fixture_queries(module_database_url):
    PostgresCheckinRepository(module_database_url).migrate()
    queries = PostgresCheckinQueries(module_database_url)
    yield queries
    queries.close()


def test_app_connects_as_reader(queries):
    with queries.connection() as connection:
        row = connection.execute(
            "SELECT current_user, current_setting('default_transaction_read_only')"
        ).fetchone()

    assert row == ("checkins_reader", "on")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO user_totals VALUES ('mallory', 1, 1, now(), now())",
        "UPDATE checkins SET hours = 1",
        "DELETE FROM loads",
        "CREATE TABLE stolen (id int)",
    ],
)
def test_app_role_cannot_write_in_read_only_session(queries, statement):
    with (
        queries.connection() as connection,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        connection.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO user_totals VALUES ('mallory', 1, 1, now(), now())",
        "UPDATE checkins SET hours = 1",
        "DELETE FROM loads",
        "TRUNCATE user_project_totals",
        "SELECT raw_text FROM quarantined_rows",
    ],
)
def test_app_role_lacks_write_privileges(queries, statement):
    # A read-write transaction gets past default_transaction_read_only, so the
    # role's privileges alone stop the statement.
    with (
        queries.connection() as connection,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        connection.transaction(),
    ):
        connection.execute("SET TRANSACTION READ WRITE")
        connection.execute(statement)


def test_writer_role_can_load_but_not_delete(module_database_url):
    with psycopg.connect(module_database_url) as connection:
        connection.execute("SET ROLE checkins_writer")
        connection.execute("CREATE TEMP TABLE staged (id int)")
        (total,) = connection.execute("SELECT count(*) FROM user_totals").fetchone()
        connection.execute(
            "INSERT INTO user_totals VALUES ('writer', 1, 2, now(), now())"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("DELETE FROM checkins")
        connection.rollback()

    assert total == 0


def test_migration_is_idempotent_across_databases(queries, database_url):
    # `queries` migrated the module's database, so the roles exist already.
    applied = PostgresCheckinRepository(database_url).migrate()

    with psycopg.connect(database_url) as connection:
        names = connection.execute(
            "SELECT rolname FROM pg_roles"
            " WHERE rolname IN ('checkins_reader', 'checkins_writer')"
            " ORDER BY rolname"
        ).fetchall()

    assert "0002_api_roles.sql" in applied
    assert names == [("checkins_reader",), ("checkins_writer",)]
