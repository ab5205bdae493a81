"""The `checkins` command line."""

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import psycopg

from checkins import bootstrap
from checkins.adapters.embedded_postgres import EmbeddedPostgresError
from checkins.entrypoints.data_commands import CommandError, add_data_commands
from checkins.ports import SourceError


logger = logging.getLogger(__name__)

# The status a shell reports for a process ended by SIGTERM: 128 + 15.
SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` and return the exit status.

    SIGTERM raises SystemExit with SIGTERM_EXIT_STATUS, so that `finally` blocks
    and atexit handlers still run. They roll back an unfinished load and stop the
    embedded PostgreSQL server. `checkins serve` replaces the handler, because
    gunicorn's arbiter installs its own when it starts.
    """
    previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _run(argv)
    except _Terminated:
        logger.warning(
            "stopped by SIGTERM, exiting with status %d", SIGTERM_EXIT_STATUS
        )
        raise SystemExit(SIGTERM_EXIT_STATUS) from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


class _Terminated(SystemExit):
    """Raised by the SIGTERM handler, to unwind the command before it exits."""


def _exit_on_sigterm(signal_number: int, frame: FrameType | None) -> None:
    # The handler only raises: a log line written here could interrupt a
    # write to standard error, which then fails as a reentrant call and
    # swallows this exit.
    raise _Terminated(SIGTERM_EXIT_STATUS)


def _run(argv: Sequence[str] | None) -> int:
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    try:
        settings = bootstrap.Settings.from_env()
        bootstrap.configure_logging(settings)
        return arguments.command(arguments, settings)
    except (CommandError, SourceError, bootstrap.SettingsError) as error:
        print(f"checkins: error: {error}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as error:
        print(
            f"checkins: error: database unavailable: {_first_line(error)}",
            file=sys.stderr,
        )
        return 1
    except psycopg.Error as error:
        # A failed statement aborts the transaction, so nothing of the command
        # was stored.
        logger.debug("database error", exc_info=error)
        print(
            f"checkins: error: database error, nothing stored: {_first_line(error)}",
            file=sys.stderr,
        )
        return 1
    except EmbeddedPostgresError as error:
        print(f"checkins: error: embedded PostgreSQL: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("checkins: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of standard output went away, as `| head` does. Python
        # would report the pipe again when it flushes at exit, so the output
        # is sent to the null device first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkins",
        description=(
            "Clean a check-in CSV export, load it into PostgreSQL and serve it "
            "over HTTP. The database is CHECKINS_DATABASE_URL, or an embedded "
            "server under .checkins/ when that is not set."
        ),
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    add_data_commands(commands)

    migrate = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate.set_defaults(command=_migrate)

    serve = commands.add_parser("serve", help="serve the HTTP API with gunicorn")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=8000,
        help="TCP port to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="number of gunicorn worker processes (default: CHECKINS_WORKERS, "
        "else two per CPU)",
    )
    serve.add_argument(
        "--threads",
        type=int,
        help="request threads in each worker process (default: CHECKINS_THREADS, "
        "else 1)",
    )
    serve.set_defaults(command=_serve)
    return parser


def _migrate(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    repository = bootstrap.build_repository(settings)
    applied = repository.migrate()
    if applied:
        print(f"applied {len(applied)} migrations: {', '.join(applied)}")
    else:
        print("schema is up to date")
    return 0


def _serve(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    try:
        from checkins.entrypoints import gunicorn_config
    except ValueError as error:
        raise CommandError(str(error)) from None
    from checkins.entrypoints.server import run_gunicorn

    # gunicorn is imported only to serve, so that data commands start faster.
    if arguments.workers is None:
        arguments.workers = gunicorn_config.workers
    if arguments.threads is None:
        arguments.threads = gunicorn_config.threads
    if not 1 <= arguments.workers <= gunicorn_config.MAX_WORKERS:
        raise CommandError(
            f"invalid --workers {arguments.workers}: expected 1 to "
            f"{gunicorn_config.MAX_WORKERS}"
        )
    if not 1 <= arguments.threads <= gunicorn_config.MAX_THREADS:
        raise CommandError(
            f"invalid --threads {arguments.threads}: expected 1 to "
            f"{gunicorn_config.MAX_THREADS}"
        )
    if not 0 < arguments.port < 65536:
        raise CommandError(f"invalid --port {arguments.port}: expected 1 to 65535")

    _check_address(arguments.host, arguments.port)
    repository = bootstrap.build_repository(settings)
    _check_app_settings(settings, repository.conninfo)
    repository.migrate()
    return run_gunicorn(
        settings,
        repository.conninfo,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        threads=arguments.threads,
    )


def _check_address(host: str, port: int) -> None:
    """Fail with one line when the address cannot be listened on.

    gunicorn would retry for several seconds and then end with a bare
    message, so the address is tried first.
    """
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise CommandError(
            f"cannot resolve --host {host!r}: {error.strerror or error}; give an "
            "IP address such as 127.0.0.1, or a name this machine resolves"
        ) from None
    try:
        socket.create_server((host, port)).close()
    except OSError as error:
        raise CommandError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; stop the "
            "server that uses it, or choose another --host or --port"
        ) from None


def _check_app_settings(settings: bootstrap.Settings, database_url: str) -> None:
    """Build the app once, so that a bad setting fails here and not in each worker.

    Building opens no connection, because the pool opens on first use.
    """
    from checkins.entrypoints.wsgi import build_app

    try:
        build_app(settings, database_url)
    except (ValueError, OSError) as error:
        raise CommandError(f"invalid server setting: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
