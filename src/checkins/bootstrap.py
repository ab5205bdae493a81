"""The one place that reads configuration and wires adapters together."""

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from checkins.adapters.postgres import PostgresCheckinRepository
from checkins.adapters.postgres_queries import PostgresCheckinQueries


logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".checkins") / "postgres"


@attrs.frozen
class Settings:
    """Configuration read from `CHECKINS_*` environment variables.

    `database_url` is a libpq URL; when it is None the embedded PostgreSQL
    server is started with its data in `data_dir`.
    """

    database_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from `environ`, by default the process environment."""
        environ = os.environ if environ is None else environ
        return cls(
            database_url=environ.get("CHECKINS_DATABASE_URL") or None,
            data_dir=Path(environ.get("CHECKINS_DATA_DIR") or DEFAULT_DATA_DIR),
            log_level=(environ.get("CHECKINS_LOG_LEVEL") or "INFO").upper(),
        )


# Embedded servers started by this process, kept referenced so that they stay
# up for as long as the process runs.
_embedded_servers: dict[Path, object] = {}


def resolve_database_url(settings: Settings) -> str:
    """Return the database URL, starting the embedded server when none is set."""
    if settings.database_url:
        return settings.database_url
    from checkins.adapters.embedded_postgres import EmbeddedPostgres

    data_dir = settings.data_dir.resolve()
    server = _embedded_servers.get(data_dir)
    if server is None:
        server = EmbeddedPostgres(data_dir)
        _embedded_servers[data_dir] = server
    return server.start()


def build_repository(settings: Settings) -> PostgresCheckinRepository:
    """Build the PostgreSQL repository that loads write to."""
    return PostgresCheckinRepository(resolve_database_url(settings))


def build_queries(settings: Settings) -> PostgresCheckinQueries:
    """Build the read-only PostgreSQL queries that the HTTP API serves."""
    return PostgresCheckinQueries(resolve_database_url(settings))


def configure_logging(settings: Settings) -> None:
    """Send log lines to standard error at the configured level."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pgserver logs every command it runs at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
