"""The WSGI app for gunicorn.

    gunicorn -c python:checkins.entrypoints.gunicorn_config \
        'checkins.entrypoints.wsgi:get_app()'
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import falcon

from checkins.entrypoints.http import create_app


if TYPE_CHECKING:
    from checkins.bootstrap import Settings
    from checkins.ports import CheckinQueries


__all__ = ["authentication_mode", "build_app", "close_apps", "get_app"]

# Queries of the apps built in this process, closed when a worker exits.
_built_queries: list[CheckinQueries] = []


def get_app() -> falcon.App:
    """Build the app on the database and options that the environment sets."""
    # Imported here so that importing this module reads no settings and needs
    # no database driver.
    from checkins import bootstrap

    settings = bootstrap.Settings.from_env()
    app = build_app(settings)
    # Each worker builds its own app. gunicorn's error log is where its own
    # start-up lines go, so this line goes there too.
    logging.getLogger("gunicorn.error").info(
        "checkins API: %s", authentication_mode(settings)
    )
    return app


def authentication_mode(settings: Settings) -> str:
    """Return whether `settings` make the API require bearer tokens, in words."""
    if settings.api_tokens_file or settings.api_token_hashes:
        return "bearer tokens required"
    return "no authentication"


def build_app(settings: Settings, database_url: str | None = None) -> falcon.App:
    """Build the app with `settings`, on `database_url` when given."""
    from checkins import bootstrap
    from checkins.entrypoints.http_middleware import (
        configure_access_log,
        load_token_hashes,
    )

    if database_url is not None:
        settings = _with_database(settings, database_url)
    configure_access_log()
    token_hashes = load_token_hashes(
        settings.api_tokens_file, settings.api_token_hashes
    )
    queries = bootstrap.build_queries(settings)
    _built_queries.append(queries)
    return create_app(
        queries,
        time_zone=settings.time_zone,
        token_hashes=token_hashes,
        etags=settings.etags,
    )


def close_apps() -> None:
    """Close the connection pools of the apps built in this process."""
    while _built_queries:
        queries = _built_queries.pop()
        close = getattr(queries, "close", None)
        if close is not None:
            close()


def _with_database(settings: Settings, database_url: str) -> Settings:
    import attrs

    return attrs.evolve(settings, database_url=database_url)
