"""Tests of the embedded PostgreSQL server that start real servers."""

import getpass
import os
import pwd
import subprocess
import sys
import tempfile
import textwrap
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from checkins.adapters.embedded_postgres import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    default_data_dir,
    find_postgres_bin_dir,
)


# NOTE: the pg_ctl tests expect Debian's postgresql-15 package, which installs its
# server binaries here and not on PATH.
DEBIAN_POSTGRES_15_BIN_DIR = Path("/usr/lib/postgresql/15/bin")

# A data dir under a 120-byte name, so the socket path in it exceeds the
# 107-byte limit on Linux.
LONG_FOLDER_NAME = "long-data-dir-" + "d" * 106

# Starts EmbeddedPostgres(argv[1]) and prints its URL. With argv[2], it hides
# pgserver and uses the initdb and pg_ctl in that folder.
CHILD_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from checkins.adapters.embedded_postgres import EmbeddedPostgres

    options = {}
    if len(sys.argv) > 2:
        bin_dir = Path(sys.argv[2])
        options = {"load_pgserver": lambda: None, "find_bin_dir": lambda: bin_dir}
    print(EmbeddedPostgres(Path(sys.argv[1]), **options).start())
    """
)

requires_pgserver = pytest.mark.skipif(
    sys.version_info >= (3, 13),
    reason="pgserver 0.1.4 has wheels for CPython 3.9 to 3.12 only",
)


def pg_ctl_only(bin_dir: Path | None) -> dict[str, Any]:
    """Return constructor arguments that hide pgserver and find bin_dir."""
    return {"load_pgserver": lambda: None, "find_bin_dir": lambda: bin_dir}


def fetch_one(url: str, query: str) -> tuple[object, ...]:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return row


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def socket_host(url: str) -> str:
    return str(conninfo_to_dict(url)["host"])


@requires_pgserver
def test_pgserver_long_data_dir_answers_query(tmp_path):
    data_dir = tmp_path / LONG_FOLDER_NAME

    with EmbeddedPostgres(data_dir) as url:
        row = fetch_one(
            url,
            "SELECT current_user, current_database(),"
            " current_setting('server_version_num')::int / 10000",
        )
        host = socket_host(url)

    assert row == ("postgres", "postgres", 16)
    assert host != str(data_dir)
    assert len(os.fsencode(Path(host) / ".s.PGSQL.5432")) <= 107
    assert not (data_dir / "postmaster.pid").exists()


def test_second_start_reuses_server(tmp_path):
    data_dir = tmp_path / "data"
    first = EmbeddedPostgres(data_dir)
    second = EmbeddedPostgres(data_dir)

    url = first.start()
    pid = postmaster_pid(data_dir)
    try:
        assert first.start() == url
        assert second.start() == url
        assert postmaster_pid(data_dir) == pid

        first.stop()
        assert fetch_one(url, "SELECT 6 * 7") == (42,)
    finally:
        first.stop()
        second.stop()

    assert not (data_dir / "postmaster.pid").exists()


@pytest.mark.parametrize(
    "bin_dir", [None, DEBIAN_POSTGRES_15_BIN_DIR], ids=["default", "pg_ctl"]
)
def test_other_process_reuses_server(tmp_path, bin_dir):
    data_dir = tmp_path / "data"
    options: dict[str, Any] = {}
    child_arguments = [str(data_dir)]
    if bin_dir is not None:
        options = pg_ctl_only(bin_dir)
        child_arguments.append(str(bin_dir))

    with EmbeddedPostgres(data_dir, **options) as url:
        pid = postmaster_pid(data_dir)
        # The child exits without stop(), and its exit must not stop the server
        # that this process still uses.
        child = subprocess.run(
            [sys.executable, "-c", CHILD_SCRIPT, *child_arguments],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert child.returncode == 0, child.stderr
        assert child.stdout == f"{url}\n"
        assert postmaster_pid(data_dir) == pid
        assert fetch_one(url, "SELECT 6 * 7") == (42,)

    assert not (data_dir / "postmaster.pid").exists()


def test_start_without_backends_raises(tmp_path):
    data_dir = tmp_path / "data"
    server = EmbeddedPostgres(data_dir, **pg_ctl_only(None))

    with pytest.raises(EmbeddedPostgresError) as raised:
        server.start()

    assert str(raised.value) == (
        "Cannot start the embedded PostgreSQL server: the pgserver package is not "
        "installed (it has wheels for CPython 3.9 to 3.12 only), and initdb and "
        "pg_ctl were not found on PATH or in /usr/lib/postgresql/*/bin. Set "
        "CHECKINS_DATABASE_URL to the URL of a PostgreSQL server, or install "
        "PostgreSQL so that initdb and pg_ctl are on PATH."
    )
    assert not data_dir.exists()


def test_start_rejects_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not a cluster\n")

    with pytest.raises(EmbeddedPostgresError) as raised:
        EmbeddedPostgres(tmp_path).start()

    assert str(raised.value) == (
        f"Data dir {tmp_path} is not empty and has no PG_VERSION file, so it is not "
        "a PostgreSQL data directory. Pass a new or empty folder."
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_pg_ctl_fallback_runs_unprivileged(tmp_path):
    data_dir = tmp_path / "data"
    # PostgreSQL rejects root, so root runs the server as the OS user postgres.
    expected_user = "postgres" if os.geteuid() == 0 else getpass.getuser()
    expected_uid = pwd.getpwnam(expected_user).pw_uid

    with EmbeddedPostgres(data_dir, **pg_ctl_only(DEBIAN_POSTGRES_15_BIN_DIR)) as url:
        row = fetch_one(
            url,
            "SELECT current_user, current_setting('server_version_num')::int / 10000",
        )
        server_uid = Path(f"/proc/{postmaster_pid(data_dir)}").stat().st_uid

    assert url == f"postgresql://postgres@/postgres?host={data_dir}&port=5432"
    assert row == ("postgres", 15)
    assert server_uid == expected_uid
    assert data_dir.stat().st_uid == expected_uid
    assert not (data_dir / "postmaster.pid").exists()


def test_pg_ctl_long_data_dir_uses_temp_socket(tmp_path):
    data_dir = tmp_path / LONG_FOLDER_NAME

    with EmbeddedPostgres(data_dir, **pg_ctl_only(DEBIAN_POSTGRES_15_BIN_DIR)) as url:
        row = fetch_one(url, "SELECT 6 * 7")
        socket_dir = Path(socket_host(url))
        socket_mode = socket_dir.stat().st_mode & 0o777

    assert row == (42,)
    assert socket_dir.parent == Path(tempfile.gettempdir())
    assert socket_dir.name.startswith("checkins-postgres-")
    assert socket_mode == 0o700
    assert not socket_dir.exists()
    assert not (data_dir / "postmaster.pid").exists()


def test_pg_ctl_rejects_other_major_version(tmp_path):
    (tmp_path / "PG_VERSION").write_text("16\n")
    server = EmbeddedPostgres(tmp_path, **pg_ctl_only(DEBIAN_POSTGRES_15_BIN_DIR))

    with pytest.raises(EmbeddedPostgresError) as raised:
        server.start()

    assert str(raised.value) == (
        f"Data dir {tmp_path} was created by PostgreSQL 16, but "
        f"{DEBIAN_POSTGRES_15_BIN_DIR} has PostgreSQL 15. Put the PostgreSQL 16 "
        "binaries on PATH, or move the data dir away to start with an empty database."
    )
    assert not (tmp_path / "postmaster.pid").exists()


def test_find_bin_dir_searches_usr_lib(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    assert find_postgres_bin_dir() == DEBIAN_POSTGRES_15_BIN_DIR


def test_default_data_dir_under_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    assert default_data_dir() == tmp_path / ".checkins" / "postgres"


def test_database_url_fixture_starts_empty(database_url):
    database = urllib.parse.urlsplit(database_url).path.lstrip("/")

    row = fetch_one(
        database_url,
        "SELECT current_database(), (SELECT count(*) FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema'))",
    )

    assert database.startswith("checkins_test_")
    assert row == (database, 0)


def test_pgserver_import_is_quiet_without_runtime_dir():
    """Importing pgserver without XDG_RUNTIME_DIR prints no platformdirs warning."""
    environment = {
        name: value for name, value in os.environ.items() if name != "XDG_RUNTIME_DIR"
    }
    script = (
        "from checkins.adapters.embedded_postgres import import_pgserver\n"
        "assert import_pgserver() is not None\n"
    )

    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )

    assert (0, "") == (result.returncode, result.stderr)
