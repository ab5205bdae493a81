import contextlib
import io
import json
import os
from pathlib import Path

import falcon.testing
import pytest

from checkins.adapters.postgres_queries import PostgresCheckinQueries
from checkins.entrypoints import cli
from checkins.entrypoints.http import create_app


# The real export is kept outside the repository, in a folder beside it.
DEFAULT_EXPORT = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "dailycheckins.csv"
)


@pytest.fixture(name="real_export", scope="session")
def fixture_real_export() -> Path:
    """Return the real export's path: CHECKINS_EXPORT, or beside the repository."""
    path = Path(os.environ.get("CHECKINS_EXPORT") or DEFAULT_EXPORT)
    if not path.is_file():
        pytest.fail(
            f"real export not found at {path}; set CHECKINS_EXPORT to its path",
            pytrace=False,
        )
    return path


@pytest.fixture(name="run_cli", scope="session")
def fixture_run_cli():
    """Return a function that runs the CLI on a database and captures its output."""

    def run(database_url: str, *argv: str) -> tuple[int, str, str]:
        output, error = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CHECKINS_DATABASE_URL", database_url)
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(error):
                status = cli.main(list(argv))
        return status, output.getvalue(), error.getvalue()

    return run


@pytest.fixture(name="loaded_export", scope="session")
def fixture_loaded_export(session_database_url, real_export, run_cli):
    """Load the real export once; return the database URL and the JSON report.

    Tests that use it only read, so that they can share one database.
    """
    status, output, error = run_cli(
        session_database_url, "load", str(real_export), "--json"
    )
    assert 0 == status, error
    return session_database_url, json.loads(output)


@pytest.fixture(name="export_client", scope="session")
def fixture_export_client(loaded_export):
    """Return an HTTP test client of the app on the loaded real export."""
    queries = PostgresCheckinQueries(loaded_export[0])
    yield falcon.testing.TestClient(create_app(queries))
    queries.close()
