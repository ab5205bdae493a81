"""Run the HTTP app under gunicorn from the command line."""

import logging

import gunicorn.app.base

from checkins.bootstrap import Settings
from checkins.entrypoints import gunicorn_config


logger = logging.getLogger(__name__)


class _CheckinsApplication(gunicorn.app.base.BaseApplication):
    """A gunicorn application whose workers each open their own connection pool."""

    def __init__(
        self, settings: Settings, database_url: str, options: dict[str, object]
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            # Settings that this gunicorn version lacks are left out.
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        from checkins.entrypoints.wsgi import build_app

        return build_app(self.settings, self.database_url)


def run_gunicorn(
    settings: Settings,
    database_url: str,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
) -> int:
    """Serve the app on `host`:`port` until stopped; return the exit status.

    The options are those of `checkins.entrypoints.gunicorn_config`, with the
    address, workers and threads given here.
    """
    options = gunicorn_config.options() | {
        "bind": [f"{host}:{port}"],
        "workers": workers,
        "threads": threads,
    }
    from checkins.entrypoints.wsgi import authentication_mode

    logger.info(
        "serving on http://%s:%d, gunicorn workers x threads: %d x %d, %s",
        host,
        port,
        workers,
        threads,
        authentication_mode(settings),
    )
    _CheckinsApplication(settings, database_url, options).run()
    return 0
