"""The WSGI app for gunicorn: ``gunicorn 'checkins.entrypoints.wsgi:get_app()'``."""

import falcon

from checkins.entrypoints.http import create_app


__all__ = ["get_app"]


def get_app() -> falcon.App:
    """Build the app on the database that the environment's settings name."""
    # Imported here so that importing this module reads no settings and needs
    # no database driver.
    from checkins import bootstrap

    return create_app(bootstrap.build_queries(bootstrap.Settings.from_env()))
