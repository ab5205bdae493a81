"""The `checkins` command line."""

import argparse
import json
import logging
import sys
from collections.abc import Sequence

import psycopg

from checkins import bootstrap, services
from checkins.adapters.csv_source import CsvFileSource
from checkins.ports import SourceError


logger = logging.getLogger(__name__)


class CommandError(Exception):
    """Raised by a command to exit with a one-line message and status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` and return the exit status."""
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    settings = bootstrap.Settings.from_env()
    bootstrap.configure_logging(settings)
    try:
        return arguments.command(arguments, settings)
    except (CommandError, SourceError) as error:
        print(f"checkins: error: {error}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"checkins: error: database unavailable: {first_line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("checkins: interrupted", file=sys.stderr)
        return 130


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

    load = commands.add_parser("load", help="clean a CSV file and load it")
    load.add_argument("file", help="path of the check-in CSV export")
    load.add_argument(
        "--encoding",
        help="text encoding of the file, for example cp1251 "
        "(default: UTF-8, or UTF-16 when the file starts with its byte order mark)",
    )
    load.add_argument(
        "--json", action="store_true", help="print the report as one JSON object"
    )
    load.set_defaults(command=_load)

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
        default=2,
        help="number of gunicorn worker processes (default: %(default)s)",
    )
    serve.set_defaults(command=_serve)
    return parser


def _load(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    source = CsvFileSource(arguments.file, encoding=arguments.encoding)
    # A file that is not a check-in export fails here, before the embedded
    # server starts or any table is created.
    services.check_source(source)
    repository = bootstrap.build_repository(settings)
    report = services.ingest(source, repository)
    if arguments.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_text())
    return 0


def _migrate(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    repository = bootstrap.build_repository(settings)
    applied = repository.migrate()
    if applied:
        print(f"applied {len(applied)} migrations: {', '.join(applied)}")
    else:
        print("schema is up to date")
    return 0


def _serve(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    from checkins.entrypoints.server import run_gunicorn

    if not 0 < arguments.port < 65536:
        raise CommandError(f"invalid --port {arguments.port}: expected 1 to 65535")
    if arguments.workers < 1:
        raise CommandError(f"invalid --workers {arguments.workers}: expected 1 or more")
    repository = bootstrap.build_repository(settings)
    repository.migrate()
    return run_gunicorn(
        repository.conninfo,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
    )


if __name__ == "__main__":
    sys.exit(main())
