"""The command-line commands that read files and loads: load, loads, report, clean."""

import argparse
import contextlib
import csv
import datetime as dt
import json
import logging
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from checkins import bootstrap, services
from checkins.adapters.csv_source import CsvFileSource
from checkins.domain.model import CheckIn, Quarantined
from checkins.domain.report import LoadReport, format_report
from checkins.domain.timestamps import TimestampError, parse_timestamp
from checkins.entrypoints.spreadsheet import safe_cell
from checkins.ports import AlreadyLoadedError


logger = logging.getLogger(__name__)


class CommandError(Exception):
    """Raised by a command to exit with a one-line message and status 1."""


def add_data_commands(commands: argparse._SubParsersAction) -> None:
    """Add the load, loads, report and clean commands to the parser."""
    load = commands.add_parser(
        "load",
        help="clean CSV files and load them",
        description=(
            "Clean each file and load it in its own transaction. A folder means "
            "the .csv files directly inside it, in name order. Its hidden names "
            "(starting with a dot) and subfolders are skipped with a line each, "
            "and any other .csv entry that cannot be read, such as a broken "
            "link, fails the command before any file is loaded. When several "
            "files are given, those already loaded (same SHA-256) are skipped; "
            "a single file is always loaded, and its rows already stored are not "
            "added again."
        ),
    )
    load.add_argument("paths", nargs="+", metavar="PATH", help="CSV file or folder")
    _add_encoding(load)
    load.add_argument(
        "--mode",
        choices=services.LOAD_MODES,
        default="append",
        help="append: add the rows not yet stored (default). snapshot: also "
        "retire stored rows inside the file's window that the file lacks",
    )
    load.add_argument(
        "--window",
        nargs=2,
        metavar=("FROM", "TO"),
        help="window of a snapshot load, as dates (YYYY-MM-DD, inclusive) or "
        "stamps; default: the span of the file's main run of activity (the "
        "file's days split into runs at gaps of over 60 days, and the run with "
        "the most rows is the main one)",
    )
    load.add_argument(
        "--json", action="store_true", help="print each report as one JSON line"
    )
    load.set_defaults(command=_load)

    loads = commands.add_parser("loads", help="list the history of loads")
    loads.add_argument("--json", action="store_true", help="print JSON lines")
    loads.set_defaults(command=_loads)

    report = commands.add_parser(
        "report", help="print the quality report of a load from the database"
    )
    report.add_argument(
        "--load", type=int, metavar="ID", help="load id (default: the latest load)"
    )
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(command=_report)

    clean = commands.add_parser(
        "clean", help="clean a CSV file into clean and rejected rows, no database"
    )
    clean.add_argument("path", metavar="FILE", help="CSV file to clean")
    clean.add_argument(
        "--output",
        required=True,
        metavar="CLEAN.csv",
        help="where to write the cleaned rows, with their flags",
    )
    clean.add_argument(
        "--rejects",
        required=True,
        metavar="REJECTS.csv",
        help="where to write the quarantined rows: line, reason, detail, raw text",
    )
    _add_encoding(clean)
    clean.add_argument("--json", action="store_true", help="print the report as JSON")
    clean.set_defaults(command=_clean)


def _add_encoding(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoding",
        help="text encoding of the file, for example cp1251 "
        "(default: UTF-8, or UTF-16 when the file starts with its byte order mark)",
    )


def _load(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    files, skipped = _expand_paths(arguments.paths)
    window = _parse_window(arguments.window) if arguments.window else None
    if window and arguments.mode != "snapshot":
        raise CommandError("--window applies to --mode snapshot only")
    sources = [CsvFileSource(path, encoding=arguments.encoding) for path in files]
    # Files that are not check-in exports fail here, before the embedded
    # server starts or any table is created.
    for source in sources:
        services.check_source(source)

    repository = bootstrap.build_repository(settings)
    # A single file named on its own is loaded again when asked. The files of
    # a folder, or of a list, are loaded once each.
    batch = len(sources) > 1 or any(Path(text).is_dir() for text in arguments.paths)
    loaded = repository.loaded_sha256s() if batch else set()
    for path, reason in skipped:
        _print_skipped_entry(path, reason, arguments.json)
    for source in sources:
        sha256 = source.sha256()
        if sha256 in loaded:
            _print_skipped(source, sha256, arguments.json)
            continue
        try:
            with Progress(f"loading {source.name}") as progress:
                report = services.ingest(
                    source,
                    repository,
                    mode=arguments.mode,
                    window=window,
                    progress=progress.update,
                    write_progress=progress.written,
                    # Checked again under the load lock, because another run
                    # may have loaded the file since `loaded` was read.
                    skip_loaded=batch,
                )
        except AlreadyLoadedError:
            _print_skipped(source, sha256, arguments.json)
            continue
        loaded.add(sha256)
        _print_report(report, arguments.json)
    return 0


# Why a folder load leaves out a .csv entry: the reason code printed with
# --json, and the text printed without it.
_SKIP_REASONS = {
    "hidden_name": 'hidden name (starts with "."); give its path to load it',
    "folder": "a folder, not a file; give its path to load the files in it",
}


def _expand_paths(paths: list[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Return the files to load and the folder entries skipped, with their reasons.

    A path that is not a folder is taken as it is, and the load checks it.
    """
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            files.append(path)
            continue
        found, skipped_here = _folder_files(path)
        if not found and skipped_here:
            raise CommandError(
                f"{path}: folder contains no .csv file to load, because its .csv "
                f"entries, such as {skipped_here[0][0].name}, are hidden names or "
                "subfolders; give their paths to load them"
            )
        if not found:
            raise CommandError(f"{path}: folder contains no .csv file")
        files.extend(found)
        skipped.extend(skipped_here)
    return files, skipped


def _folder_files(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Return the files of a folder load and its .csv entries skipped, in name order.

    The files are the regular files directly in `folder`, symbolic links to
    them included, whose names end in .csv in any letter case and do not
    start with a dot. Hidden names and subfolders are skipped. Any other .csv
    entry raises CommandError, so that no file is loaded while one of the
    folder cannot be.
    """
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for entry in _list_folder(folder):
        if not entry.name.lower().endswith(".csv"):
            continue
        # Hidden names are skipped before they are read, because editors keep
        # lock files as hidden broken links, such as Emacs's .#name.csv.
        if entry.name.startswith("."):
            skipped.append((entry, "hidden_name"))
        elif _is_subfolder(entry):
            skipped.append((entry, "folder"))
        else:
            files.append(entry)
    return files, skipped


def _list_folder(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise CommandError(
            f"{folder}: cannot list the folder: {error.strerror}; make it readable "
            "by this user, or give the paths of its files"
        ) from None


def _is_subfolder(entry: Path) -> bool:
    """Return whether `entry` is a folder, or raise CommandError unless it is a file.

    A file counts when it is regular and opens for reading, so that a broken
    link, a pipe or a file without read permission fails before any load.
    """
    try:
        mode = entry.stat().st_mode
    except FileNotFoundError:
        if not entry.is_symlink():
            raise CommandError(
                f"{entry}: removed while the folder was read, so nothing was "
                "loaded; load the folder again"
            ) from None
        raise CommandError(
            f"{entry}: broken symbolic link to {os.readlink(entry)}, so nothing "
            "was loaded; remove the link or restore its target, then load the "
            "folder again"
        ) from None
    except OSError as error:
        raise _unreadable_entry(entry, error) from None
    if stat.S_ISDIR(mode):
        return True
    if not stat.S_ISREG(mode):
        raise CommandError(
            f"{entry}: {_special_file_kind(mode)}, not a regular file, so nothing "
            "was loaded; move it out of the folder, then load the folder again"
        )
    try:
        entry.open("rb").close()
    except OSError as error:
        raise _unreadable_entry(entry, error) from None
    return False


def _unreadable_entry(entry: Path, error: OSError) -> CommandError:
    return CommandError(
        f"{entry}: cannot read: {error.strerror}, so nothing was loaded; make it "
        "readable by this user or move it out of the folder, then load the "
        "folder again"
    )


def _special_file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _parse_window(values: list[str]) -> tuple[dt.datetime, dt.datetime]:
    low = _parse_bound(values[0], end=False)
    high = _parse_bound(values[1], end=True)
    if low > high:
        raise CommandError(f"invalid --window: {values[0]} is after {values[1]}")
    return low, high


def _parse_bound(text: str, *, end: bool) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        try:
            return parse_timestamp(text).instant
        except TimestampError:
            raise CommandError(
                f"invalid --window bound {text!r}: expected a date as YYYY-MM-DD "
                "or a timestamp such as 2018-11-26T14:47:36Z"
            ) from None
    if end:
        return dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _print_skipped(source: CsvFileSource, sha256: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"source": source.name, "sha256": sha256, "skipped": True}))
    else:
        print(f"skipped {source.name}: already loaded (sha256 {sha256[:12]})")


def _print_skipped_entry(path: Path, reason: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"source": str(path), "skipped": True, "reason": reason}))
    else:
        print(f"skipped {path}: {_SKIP_REASONS[reason]}")


def _print_report(report: LoadReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        print(format_report(report.to_dict()))


def _loads(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    loads = bootstrap.build_repository(settings).list_loads()
    if arguments.json:
        for load in loads:
            print(
                json.dumps(
                    {
                        "id": load.id,
                        "source": load.source,
                        "sha256": load.sha256,
                        "mode": load.mode,
                        "started_at": load.started_at.isoformat(),
                        "seconds": _seconds(load),
                        "rows_read": load.rows_read,
                        "rows_loaded": load.rows_loaded,
                        "rows_quarantined": load.rows_quarantined,
                        "rows_inserted": load.rows_inserted,
                        "rows_retired": load.rows_retired,
                        "rows_revived": load.rows_revived,
                    }
                )
            )
        return 0
    if not loads:
        print("no loads yet")
        return 0
    print(
        f"{'id':>4}  {'started (UTC)':<19}  {'seconds':>8}  {'mode':<8}  "
        f"{'read':>10}  {'loaded':>10}  {'new':>10}  {'quarantined':>11}  "
        f"{'retired':>8}  {'revived':>8}  source"
    )
    for load in loads:
        started = load.started_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{load.id:>4}  {started:<19}  {_seconds(load):>8.2f}  {load.mode:<8}  "
            f"{load.rows_read:>10,}  {load.rows_loaded:>10,}  "
            f"{load.rows_inserted:>10,}  {load.rows_quarantined:>11,}  "
            f"{load.rows_retired:>8,}  {load.rows_revived:>8,}  {load.source}"
        )
    return 0


def _seconds(load) -> float:
    if load.finished_at is None:
        return 0.0
    return (load.finished_at - load.started_at).total_seconds()


def _report(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    report = bootstrap.build_repository(settings).load_report(arguments.load)
    if report is None:
        if arguments.load is None:
            raise CommandError("no loads yet: run `checkins load FILE` first")
        raise CommandError(
            f"load {arguments.load} not found; `checkins loads` lists the loads"
        )
    if arguments.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    return 0


def _clean(arguments: argparse.Namespace, settings: bootstrap.Settings) -> int:
    source = CsvFileSource(arguments.path, encoding=arguments.encoding)
    _check_distinct_paths(arguments.path, arguments.output, arguments.rejects)
    services.check_source(source)
    # Rows are written as they come, person by person, so that memory stays
    # flat; the `line` column gives the file order.
    try:
        with (
            _output_file(arguments.output) as clean_file,
            _output_file(arguments.rejects) as rejects_file,
            Progress(f"cleaning {source.name}") as progress,
        ):
            write_checkin = _checkin_writer(clean_file)
            write_rejected = _rejects_writer(rejects_file)
            report = services.clean_source(
                source,
                write_checkin,
                write_rejected,
                progress=progress.update,
                write_progress=progress.written,
            )
    except OSError as error:
        # Buffered writes can fail at any row or at close, without naming the
        # file, so the message names both outputs.
        raise CommandError(
            f"cannot write {arguments.output} or {arguments.rejects}: "
            f"{error.strerror or error}; free space on their disk or choose "
            "other --output and --rejects paths"
        ) from None
    _print_report(report, arguments.json)
    return 0


def _check_distinct_paths(source: str, output: str, rejects: str) -> None:
    """Raise CommandError when two of the paths name the same file.

    Opening an output truncates it, so this runs before any output is opened.
    Paths that resolve to one path, through symbolic links, are the same file.
    So are existing paths with the same device and inode, such as hard links.
    """
    paths = {"FILE": Path(source), "--output": Path(output), "--rejects": Path(rejects)}
    seen_paths: dict[Path, str] = {}
    seen_files: dict[tuple[int, int], tuple[str, Path]] = {}
    for name, path in paths.items():
        status = _status(path)
        if name != "FILE" and status is not None and not stat.S_ISREG(status.st_mode):
            # Writing twice to a device such as /dev/null harms nothing.
            continue
        resolved = path.resolve()
        if resolved in seen_paths:
            raise CommandError(
                f"{seen_paths[resolved]} and {name} are the same file {path}; "
                "give each its own path"
            )
        seen_paths[resolved] = name
        if status is None:
            continue
        identity = (status.st_dev, status.st_ino)
        if identity in seen_files:
            seen_name, seen_path = seen_files[identity]
            raise CommandError(
                f"{seen_name} and {name} are the same file: {seen_path} and {path} "
                "are two names of one file (same device and inode), such as hard "
                "links; give each its own path"
            )
        seen_files[identity] = (name, path)


def _status(path: Path) -> os.stat_result | None:
    """Return the status of the file at `path`, or None when it cannot be read.

    A path that does not exist yet has none.
    """
    try:
        return path.stat()
    except OSError:
        return None


def _is_special(path: Path) -> bool:
    """Return whether `path` exists and is not a regular file, such as /dev/null."""
    status = _status(path)
    return status is not None and not stat.S_ISREG(status.st_mode)


@contextlib.contextmanager
def _output_file(path: str) -> Iterator[TextIO]:
    """Write `path` through a temporary file beside it, renamed when the block ends.

    A clean that fails leaves an earlier file at `path` as it was. A path that
    is not a regular file, such as /dev/null, is written directly.
    """
    target = Path(path)
    if _is_special(target):
        try:
            file = open(target, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as error:
            raise CommandError(f"{path}: cannot write: {error.strerror}") from None
        with file:
            yield file
        return
    try:
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as error:
        raise CommandError(f"{path}: cannot write: {error.strerror}") from None
    try:
        # mkstemp makes the file readable by its owner only, so it gets the
        # mode that open() gives a new file.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with open(handle, "w", encoding="utf-8", newline="") as file:
            yield file
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _checkin_writer(file: TextIO):
    writer = csv.writer(file)
    writer.writerow(["user", "timestamp", "hours", "project", "flags", "line"])

    def write(checkin: CheckIn) -> None:
        writer.writerow(
            [
                safe_cell(checkin.user),
                checkin.checkin_at.isoformat().replace("+00:00", "Z"),
                # Fixed-point, because the loader rejects exponents like 1E-13.
                format(checkin.hours, "f"),
                safe_cell(checkin.project),
                ";".join(sorted(flag.value for flag in checkin.flags)),
                checkin.line,
            ]
        )

    return write


def _rejects_writer(file: TextIO):
    writer = csv.writer(file)
    writer.writerow(["line", "reason", "detail", "raw_text"])

    def write(row: Quarantined) -> None:
        writer.writerow([row.line, row.reason.value, row.detail, safe_cell(row.text)])

    return write


class Progress:
    """A progress line for long loads: a live line on a terminal, else log lines.

    On a terminal the line is redrawn on standard error; otherwise a log line
    is written at most every LOG_SECONDS, so that logs stay short.
    """

    LOG_SECONDS = 10.0

    def __init__(self, title: str, stream: TextIO | None = None) -> None:
        self.title = title
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.last_log = self.started
        self.drawn = False
        self.width = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()

    def update(self, rows: int) -> None:
        """Show that `rows` rows have been read. A call with 0 starts the clock."""
        self._show(rows, "read")

    def written(self, rows: int) -> None:
        """Show that `rows` rows have been written. A call with 0 starts the clock."""
        self._show(rows, "written")

    def _show(self, rows: int, verb: str) -> None:
        now = time.monotonic()
        # A phase starts at 0, which leaves out time spent before it, such as
        # waiting for another load to finish.
        if rows == 0:
            self.started = now
            return
        rate = rows / max(now - self.started, 1e-9)
        if self.live:
            line = f"{self.title}: {rows:,} rows {verb}, {rate:,.0f} rows/s"
            # Blanks cover the end of a longer line drawn before.
            self.stream.write(f"\r{line.ljust(self.width)}")
            self.stream.flush()
            self.width = len(line)
            self.drawn = True
        elif now - self.last_log >= self.LOG_SECONDS:
            self.last_log = now
            logger.info("%s: %d rows %s, %.0f rows/s", self.title, rows, verb, rate)
