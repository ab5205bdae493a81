"""Shared fixtures: one PostgreSQL server per session, empty databases per test."""

import contextlib
import os
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from checkins.adapters.embedded_postgres import EmbeddedPostgres


TEST_DATABASE_URL_VARIABLE = "CHECKINS_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server that lasts the whole session.

    The server is the one at CHECKINS_TEST_DATABASE_URL when that is set. Otherwise
    it is an embedded server with its data in a temporary folder, stopped at the end.
    """
    url = os.environ.get(TEST_DATABASE_URL_VARIABLE)
    if url:
        _check_url_scheme(url)
        yield url
        return

    # The data folder lies outside pytest's base temporary folder, because a
    # pytest run removes the older base folders, even those of a run that is
    # still going on the same machine.
    with (
        tempfile.TemporaryDirectory(prefix="checkins-test-postgres-") as folder,
        EmbeddedPostgres(Path(folder)) as embedded_url,
    ):
        yield embedded_url


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """Yield the URL of an empty database that exists for one test."""
    with create_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def other_database_url(postgres_server_url: str) -> Iterator[str]:
    """Yield the URL of a second empty database for one test."""
    with create_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def session_database_url(postgres_server_url: str) -> Iterator[str]:
    """Yield the URL of an empty database shared by the whole session."""
    with create_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(postgres_server_url: str) -> Iterator[str]:
    """Yield the URL of an empty database shared by the tests of one module."""
    with create_database(postgres_server_url) as url:
        yield url


@contextlib.contextmanager
def create_database(server_url: str) -> Iterator[str]:
    """Create an empty database with a unique name, yield its URL, then drop it.

    The copy of template0 has no tables or extensions, even when template1 of the
    server at CHECKINS_TEST_DATABASE_URL has some.
    """
    name = f"checkins_test_{uuid.uuid4().hex[:16]}"
    create = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'")
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(create.format(sql.Identifier(name)))

    try:
        yield replace_database(server_url, name)
    finally:
        # FORCE ends the connections that tests left open, such as a pool's.
        drop = sql.SQL("DROP DATABASE {} WITH (FORCE)")
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(drop.format(sql.Identifier(name)))


def replace_database(url: str, database: str) -> str:
    """Return the PostgreSQL URL with its database name replaced by database."""
    parts = urllib.parse.urlsplit(url)
    query = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if key != "dbname"
    ]
    # libpq decodes %XX in a URL but reads "+" as a plus sign, so spaces become %20.
    encoded_query = urllib.parse.urlencode(
        query, safe="/", quote_via=urllib.parse.quote
    )
    path = "/" + urllib.parse.quote(database, safe="")
    return urllib.parse.urlunsplit(parts._replace(path=path, query=encoded_query))


def _check_url_scheme(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("postgresql", "postgres"):
        # The URL itself is left out of the message because it can contain a password.
        raise ValueError(
            f"{TEST_DATABASE_URL_VARIABLE} must be a postgresql:// URL, but its "
            f"scheme is {scheme!r}. Set it like "
            "postgresql://postgres@127.0.0.1:5432/postgres."
        )
