"""The one place that reads configuration and wires adapters together."""

import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import attrs
import psycopg
import psycopg.conninfo

from checkins.adapters.postgres import PostgresCheckinRepository
from checkins.adapters.postgres_queries import PostgresCheckinQueries


logger = logging.getLogger(__name__)

T = TypeVar("T", int, float)

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
    # HTTP API: default time zone of summaries, an IANA name.
    time_zone: str = "UTC"
    # HTTP API: files and lists of SHA-256 hex digests of accepted bearer
    # tokens. With neither set, the API needs no token.
    api_tokens_file: Path | None = None
    api_token_hashes: str | None = None
    # HTTP API: whether responses carry ETags and honour If-None-Match.
    etags: bool = True
    # HTTP API: connections per worker process, the seconds a request waits
    # for one, and the milliseconds after which PostgreSQL cancels a query.
    pool_size: int = 4
    pool_timeout: float = 2.0
    statement_timeout_ms: int = 5000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from `environ`, by default the process environment."""
        environ = os.environ if environ is None else environ
        return cls(
            database_url=_database_url(
                _non_blank(environ, "CHECKINS_DATABASE_URL", "use the embedded server")
            ),
            data_dir=Path(environ.get("CHECKINS_DATA_DIR") or DEFAULT_DATA_DIR),
            log_level=_log_level(environ.get("CHECKINS_LOG_LEVEL") or "INFO"),
            time_zone=environ.get("CHECKINS_TIMEZONE") or "UTC",
            api_tokens_file=_optional_path(
                _non_blank(environ, "CHECKINS_API_TOKENS_FILE", _NO_AUTHENTICATION)
            ),
            api_token_hashes=_non_blank(
                environ, "CHECKINS_API_TOKEN_HASHES", _NO_AUTHENTICATION
            ),
            etags=_flag(environ, "CHECKINS_ETAGS", default=True),
            pool_size=_number(environ, "CHECKINS_POOL_SIZE", int, 4),
            pool_timeout=_number(environ, "CHECKINS_POOL_TIMEOUT", float, 2.0),
            statement_timeout_ms=_number(
                environ, "CHECKINS_STATEMENT_TIMEOUT_MS", int, 5000
            ),
        )


def _database_url(text: str | None) -> str | None:
    """Return `text` when libpq can parse it, None when it is unset."""
    if not text:
        return None
    try:
        psycopg.conninfo.conninfo_to_dict(text)
    except psycopg.ProgrammingError as error:
        # The URL is not repeated, because it can contain a password.
        raise SettingsError(
            f"invalid CHECKINS_DATABASE_URL: {str(error).strip()}; expected a "
            "URL such as "
            "postgresql://user@127.0.0.1:5432/checkins, or unset it to use the "
            "embedded server"
        ) from None
    return text


_NO_AUTHENTICATION = "serve without authentication"


def _non_blank(environ: Mapping[str, str], name: str, when_unset: str) -> str | None:
    """Return the setting `name`, or None when it is unset.

    A setting that is present but blank raises, because a deployment that
    meant to set it would otherwise fall back silently to `when_unset`, such
    as serving without authentication.
    """
    text = environ.get(name)
    if text is not None and not text.strip():
        raise SettingsError(
            f"{name} is set but empty; give it a value, or unset it to {when_unset}"
        )
    return text


def _optional_path(text: str | None) -> Path | None:
    return Path(text) if text else None


def _flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    text = (environ.get(name) or "").strip().lower()
    if not text:
        return default
    if text in ("1", "on", "true", "yes"):
        return True
    if text in ("0", "off", "false", "no"):
        return False
    raise SettingsError(f"invalid {name}={text!r}: expected on or off")


def _number(
    environ: Mapping[str, str], name: str, kind: Callable[[str], T], default: T
) -> T:
    text = (environ.get(name) or "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    # float() also reads "nan" and "inf", which no setting can use.
    if value is None or not math.isfinite(value) or value <= 0:
        expected = "integer" if kind is int else "number"
        raise SettingsError(f"invalid {name}={text!r}: expected a positive {expected}")
    return value


class SettingsError(ValueError):
    """Raised when a CHECKINS_* setting has an invalid value."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(
            f"invalid CHECKINS_LOG_LEVEL {text!r}: expected one of "
            f"{', '.join(_LOG_LEVELS)}"
        )
    return level


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
    return PostgresCheckinQueries(
        resolve_database_url(settings),
        pool_size=settings.pool_size,
        timeout=settings.pool_timeout,
        statement_timeout_ms=settings.statement_timeout_ms,
    )


def configure_logging(settings: Settings) -> None:
    """Send log lines to standard error at the configured level."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pgserver logs every command it runs at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
