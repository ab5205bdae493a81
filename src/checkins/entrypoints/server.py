"""Run the HTTP app under gunicorn from the command line."""

import logging

import gunicorn.app.base

from checkins.adapters.postgres_queries import PostgresCheckinQueries


logger = logging.getLogger(__name__)


class _CheckinsApplication(gunicorn.app.base.BaseApplication):
    """A gunicorn application whose workers each open their own connection pool."""

    def __init__(self, database_url: str, options: dict[str, object]) -> None:
        self.database_url = database_url
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from checkins.entrypoints.http import create_app

        return create_app(PostgresCheckinQueries(self.database_url))


def run_gunicorn(database_url: str, *, host: str, port: int, workers: int) -> int:
    """Serve the app on `host`:`port` until stopped; return the exit status."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "timeout": 30,
        "graceful_timeout": 30,
        "accesslog": "-",
    }
    logger.info("serving on http://%s:%d with %d workers", host, port, workers)
    _CheckinsApplication(database_url, options).run()
    return 0
