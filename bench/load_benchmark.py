"""Compare `checkins load` with a plain COPY of the same file, at several sizes.

For each size the benchmark generates a synthetic export once (cached under
bench/.data/), then times, each in a database created for the run:

- `checkins load FILE --json`, run as a child process of the installed command
  line, so the time includes interpreter start-up, migrations, cleaning and the
  commit. The child's peak resident memory comes from os.wait4, which returns
  the resource usage of that one child;
- a plain `COPY ... FROM STDIN WITH (FORMAT csv, HEADER)` of the same bytes
  into a logged table of four text columns with no index, streamed by psycopg
  from this process and committed;
- the server's share of the load: the rows that `checkins load` stored, dumped
  in binary form, copied into a new database's empty `checkins` table the way
  a first load writes them (secondary indexes dropped, then rebuilt, then
  ANALYZE) and committed. No cleaning runs and the server parses no text, so
  this estimates the least time a loader needs to store these rows in this
  schema.

All run on the same server, one after the other, after a CHECKPOINT so that
none pays for another's dirty pages. The server is
CHECKINS_BENCH_DATABASE_URL, whose databases the benchmark may create and drop,
or else an embedded server in a temporary folder.

Usage: python bench/load_benchmark.py [--sizes 20000,1000000] [--repeat 3]
"""

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import psycopg
from generate import write_checkins
from psycopg import sql
from psycopg.conninfo import make_conninfo

from checkins.adapters.postgres import PostgresCheckinRepository


logger = logging.getLogger("load_benchmark")

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_SIZES = (20_000, 1_000_000, 5_000_000)
DEFAULT_SEED = 1
URL_VARIABLE = "CHECKINS_BENCH_DATABASE_URL"
COPY_CHUNK_BYTES = 1 << 20
REFERENCE_SIZE = 1_000_000
STDERR_TAIL_LINES = 20
# The columns that a load writes, in the order of the binary dump.
STORED_COLUMNS = (
    "user_name, checkin_at, hours, project, occurrence, flags, fixes,"
    " stamp_format, minute_precision, source_line, load_id, checkin_minute"
)


class BenchmarkError(Exception):
    """Raised when a step of the benchmark fails, with a message naming the fix."""


@dataclasses.dataclass
class LoadRun:
    """One timed `checkins load` child process."""

    seconds: float
    cpu_seconds: float
    max_rss_bytes: int
    report: dict


@dataclasses.dataclass
class SizeResult:
    """The best times of both loaders at one size, and the load's peak memory."""

    rows: int
    load_seconds: float
    load_cpu_seconds: float
    copy_seconds: float
    stored_rows_seconds: float
    max_rss_bytes: int
    quarantined: int


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark's command line and return the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # pgserver logs every command it runs, and initdb's output, at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    arguments = _parse_arguments(argv)
    try:
        cli = _find_cli()
        with _server_url() as server_url, _Databases(server_url) as databases:
            print(_describe_machine(databases))
            results = []
            for size in arguments.sizes:
                path = _generated_file(size, arguments.seed, arguments.data_dir)
                results.append(
                    _measure_size(path, size, arguments.repeat, cli, databases)
                )
    except BenchmarkError as error:
        print(f"load_benchmark: error: {error}", file=sys.stderr)
        return 1
    except psycopg.Error as error:
        print(
            f"load_benchmark: error: database command failed: {_first_line(error)}",
            file=sys.stderr,
        )
        return 1
    print()
    print(_format_table(results, arguments.repeat))
    print(_format_memory_ratio(results))
    return 0


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time `checkins load` against a plain COPY of the same generated file "
            f"at each size. The server is ${URL_VARIABLE} (a URL whose databases "
            "the benchmark may create and drop), or an embedded server in a "
            "temporary folder when it is unset."
        )
    )
    parser.add_argument(
        "--sizes",
        type=_parse_sizes,
        default=DEFAULT_SIZES,
        help="comma-separated row counts (default: "
        f"{','.join(str(size) for size in DEFAULT_SIZES)})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed runs of each loader at each size; the best is reported "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="seed of the generated files (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=BENCH_DIR / ".data",
        help="folder that caches the generated files (default: bench/.data)",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error(f"invalid --repeat {arguments.repeat}: expected 1 or more")
    return arguments


def _parse_sizes(text: str) -> tuple[int, ...]:
    sizes = []
    for part in text.split(","):
        try:
            size = int(part.strip().replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid size {part!r}: expected a row count such as 20000"
            ) from None
        if size < 1:
            raise argparse.ArgumentTypeError(
                f"invalid size {size}: expected 1 row or more"
            )
        sizes.append(size)
    return tuple(sizes)


def _find_cli() -> Path:
    """Return the `checkins` command installed with this interpreter."""
    beside = Path(sys.executable).with_name("checkins")
    if beside.is_file():
        return beside
    found = shutil.which("checkins")
    if found is None:
        raise BenchmarkError(
            f"the checkins command is not installed next to {sys.executable} nor "
            "on PATH; run `pip install -e .` in this environment first"
        )
    return Path(found)


@contextmanager
def _server_url() -> Iterator[str]:
    """Yield the server URL, starting an embedded server when none is set."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield url
        return

    from checkins.adapters.embedded_postgres import (
        EmbeddedPostgres,
        EmbeddedPostgresError,
    )

    folder = Path(tempfile.mkdtemp(prefix="checkins-bench-"))
    server = EmbeddedPostgres(folder / "postgres")
    logger.info(
        "%s is not set; starting an embedded server in %s", URL_VARIABLE, folder
    )
    try:
        try:
            url = server.start()
        except EmbeddedPostgresError as error:
            raise BenchmarkError(f"{error} Or set {URL_VARIABLE}.") from None
        try:
            yield url
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Databases:
    """Creates uniquely named databases on a server and drops them all at exit.

    The product's migrations create server-wide roles named `checkins_...`.
    Such roles that did not exist at the start are dropped at exit, unless
    objects in another database still use them.
    """

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.prefix = f"checkins_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.created: list[str] = []
        self.count = 0
        self.connection: psycopg.Connection | None = None
        self.roles_before: set[str] = set()
        self.can_checkpoint = True

    def __enter__(self) -> "_Databases":
        try:
            self.connection = psycopg.connect(self.server_url, autocommit=True)
        except psycopg.OperationalError as error:
            raise BenchmarkError(
                f"cannot connect to the benchmark server: {_first_line(error)}; "
                f"check {URL_VARIABLE}"
            ) from None
        self.roles_before = self._roles()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.connection is not None
        for name in list(self.created):
            self.drop(name)
        for role in sorted(self._roles() - self.roles_before):
            if role.startswith("checkins_"):
                self._drop_role(role)
        self.connection.close()

    def create(self, purpose: str) -> tuple[str, str]:
        """Create an empty database and return its name and connection string."""
        assert self.connection is not None
        self.count += 1
        name = f"{self.prefix}_{self.count}_{purpose}"
        self.connection.execute(
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        )
        self.created.append(name)
        return name, make_conninfo(self.server_url, dbname=name)

    def drop(self, name: str) -> None:
        """Drop a database that create() made, closing its connections."""
        assert self.connection is not None
        self.connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        self.created.remove(name)

    def checkpoint(self) -> None:
        """Flush dirty pages, so that the next timing does not pay for them."""
        assert self.connection is not None
        if not self.can_checkpoint:
            return
        try:
            self.connection.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            logger.warning(
                "CHECKPOINT needs a superuser or pg_checkpoint; timings run without it"
            )
            self.can_checkpoint = False

    def setting(self, name: str) -> str:
        """Return a server setting as SHOW prints it."""
        assert self.connection is not None
        row = self.connection.execute(
            sql.SQL("SHOW {}").format(sql.Identifier(name))
        ).fetchone()
        return str(row[0]) if row else "?"

    def _roles(self) -> set[str]:
        assert self.connection is not None
        return {
            name for (name,) in self.connection.execute("SELECT rolname FROM pg_roles")
        }

    def _drop_role(self, role: str) -> None:
        assert self.connection is not None
        try:
            self.connection.execute(
                sql.SQL("DROP ROLE {}").format(sql.Identifier(role))
            )
            logger.info("dropped role %s, created by the benchmark's loads", role)
        except psycopg.errors.DependentObjectsStillReferenced:
            logger.info("kept role %s: objects of another database use it", role)


def _describe_machine(databases: _Databases) -> str:
    commit, dirty = _commit()
    lines = [
        f"machine     {_cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"{_memory_bytes() / 2**30:.1f} GiB RAM, {platform.platform()}",
        f"postgresql  {databases.setting('server_version')} "
        f"(shared_buffers {databases.setting('shared_buffers')}, "
        f"synchronous_commit {databases.setting('synchronous_commit')}, "
        f"max_wal_size {databases.setting('max_wal_size')})",
        f"python      {platform.python_version()} ({sys.executable})",
        f"checkins    commit {commit}"
        + (" with uncommitted changes under src/" if dirty else ""),
    ]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _commit() -> tuple[str, bool]:
    """Return the short commit of the repository and whether src/ differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # diff-index reads the working tree without rewriting the index.
        changed = subprocess.run(
            ["git", "-C", str(REPO_DIR), "diff-index", "--quiet", "HEAD", "--", "src"],
            capture_output=True,
        )
        untracked = subprocess.run(
            ["git", "-C", str(REPO_DIR), "ls-files", "--others", "--exclude-standard"]
            + ["--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)", False
    return commit, changed.returncode != 0 or bool(untracked)


def _measure_size(
    path: Path, rows: int, repeat: int, cli: Path, databases: _Databases
) -> SizeResult:
    """Time the load, the stored rows' COPY and the plain COPY `repeat` times."""
    loads: list[LoadRun] = []
    copies: list[float] = []
    stored_copies: list[float] = []
    for run in range(1, repeat + 1):
        logger.info("%d rows, run %d of %d: checkins load", rows, run, repeat)
        name, url = databases.create("load")
        databases.checkpoint()
        loads.append(_time_checkins_load(cli, path, url, rows))
        logger.info(
            "%d rows, run %d of %d: checkins load took %.2f s; now the stored rows",
            rows,
            run,
            repeat,
            loads[-1].seconds,
        )
        with tempfile.TemporaryFile() as stored:
            _dump_stored_rows(url, stored)
            databases.drop(name)
            name, url = databases.create("stored")
            PostgresCheckinRepository(url).migrate()
            databases.checkpoint()
            stored_copies.append(_time_stored_rows_copy(stored, url))
        databases.drop(name)
        logger.info(
            "%d rows, run %d: COPY of the stored rows took %.2f s; now COPY",
            rows,
            run,
            stored_copies[-1],
        )
        name, url = databases.create("copy")
        databases.checkpoint()
        copies.append(_time_copy(path, url, rows))
        databases.drop(name)
        logger.info("%d rows, run %d: COPY took %.2f s", rows, run, copies[-1])
    best = min(loads, key=lambda load: load.seconds)
    return SizeResult(
        rows=rows,
        load_seconds=best.seconds,
        load_cpu_seconds=best.cpu_seconds,
        copy_seconds=min(copies),
        stored_rows_seconds=min(stored_copies),
        # Peak memory is the max over the runs, not that of the fastest run.
        max_rss_bytes=max(load.max_rss_bytes for load in loads),
        quarantined=best.report["rows_quarantined"],
    )


def _generated_file(rows: int, seed: int, data_dir: Path) -> Path:
    """Return the cached export of `rows` rows, generating it when missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # The name carries a digest of the generator, so that a changed generator
    # writes a new file instead of reusing one with another mix.
    digest = hashlib.sha256((BENCH_DIR / "generate.py").read_bytes()).hexdigest()
    path = data_dir / f"checkins-{rows}-seed{seed}-{digest[:8]}.csv"
    # The generator renames a file into place only once it is complete.
    if path.exists():
        logger.info("using the cached export %s", path)
        return path
    for stale in data_dir.glob(f"checkins-{rows}-seed{seed}-*.csv"):
        logger.info("deleting %s, written by another version of generate.py", stale)
        stale.unlink()
    logger.info("generating %d rows into %s", rows, path)
    write_checkins(path, rows, seed)
    return path


def _time_checkins_load(cli: Path, path: Path, url: str, rows: int) -> LoadRun:
    """Run `checkins load` on `path` into `url` and measure that child alone."""
    environment = dict(os.environ, CHECKINS_DATABASE_URL=url)
    command = [str(cli), "load", str(path), "--json"]
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=environment)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        # The child is reaped already, so Popen must not wait for it again.
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").splitlines()
            raise BenchmarkError(
                f"`{' '.join(command)}` failed with exit status {child.returncode}:\n"
                + "\n".join(tail[-STDERR_TAIL_LINES:])
            )
        stdout.seek(0)
        report = json.loads(stdout.read())
    if report["rows_read"] != rows:
        raise BenchmarkError(
            f"checkins load read {report['rows_read']} rows of {path}, "
            f"expected {rows}; delete the cached file and run again"
        )
    # Linux reports ru_maxrss in KiB and macOS in bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    return LoadRun(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        max_rss_bytes=usage.ru_maxrss * scale,
        report=report,
    )


def _time_copy(path: Path, url: str, rows: int) -> float:
    """COPY `path` into a new logged table of four text columns and commit."""
    with psycopg.connect(url, autocommit=True) as connection:
        # Created in its own transaction, so that COPY writes WAL whatever the
        # server's wal_level.
        connection.execute(
            "CREATE TABLE checkins_copy"
            " (user_name text, stamp text, hours text, project text)"
        )
    started = time.perf_counter()
    with (
        psycopg.connect(url) as connection,
        connection.cursor() as cursor,
        path.open("rb") as file,
    ):
        with cursor.copy(
            "COPY checkins_copy FROM STDIN WITH (FORMAT csv, HEADER)"
        ) as copy:
            while chunk := file.read(COPY_CHUNK_BYTES):
                copy.write(chunk)
        connection.commit()
        seconds = time.perf_counter() - started
        (stored,) = connection.execute("SELECT count(*) FROM checkins_copy").fetchone()
    if stored != rows:
        raise BenchmarkError(f"COPY stored {stored} rows of {path}, expected {rows}")
    return seconds


def _dump_stored_rows(url: str, file: BinaryIO) -> None:
    """Write the check-ins stored at `url` to `file` as binary COPY data."""
    with (
        psycopg.connect(url) as connection,
        connection.cursor().copy(
            f"COPY (SELECT {STORED_COLUMNS} FROM checkins ORDER BY id)"
            " TO STDOUT (FORMAT binary)"
        ) as copy,
    ):
        for chunk in copy:
            file.write(chunk)
    file.seek(0)


def _time_stored_rows_copy(file: BinaryIO, url: str) -> float:
    """COPY the dumped rows into the empty `checkins` table as a first load does."""
    started = time.perf_counter()
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        indexes = cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'checkins' AND indexname <> 'checkins_pkey'"
        ).fetchall()
        for index, _ in indexes:
            cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
        # A first load writes the per-project totals once, from its own sums,
        # instead of through this trigger.
        cursor.execute(
            "ALTER TABLE checkins"
            " DISABLE TRIGGER checkins_insert_refreshes_user_project_totals"
        )
        with cursor.copy(
            f"COPY checkins ({STORED_COLUMNS}) FROM STDIN (FORMAT binary)"
        ) as copy:
            while chunk := file.read(COPY_CHUNK_BYTES):
                copy.write(chunk)
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(
            "ALTER TABLE checkins"
            " ENABLE TRIGGER checkins_insert_refreshes_user_project_totals"
        )
        cursor.execute("ANALYZE checkins")
        connection.commit()
    return time.perf_counter() - started


def _format_table(results: list[SizeResult], repeat: int) -> str:
    best = "best of " + str(repeat) if repeat > 1 else "1 run"
    lines = [
        f"Times are wall-clock seconds ({best}); peak RSS is that of the "
        "`checkins load` process.",
        "",
        "| rows | checkins load s | load rows/s | COPY s | COPY rows/s "
        "| load / COPY time | stored rows s | stored rows / COPY time "
        "| load CPU s | load peak RSS MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.rows:,} "
            f"| {result.load_seconds:.2f} "
            f"| {result.rows / result.load_seconds:,.0f} "
            f"| {result.copy_seconds:.2f} "
            f"| {result.rows / result.copy_seconds:,.0f} "
            f"| {result.load_seconds / result.copy_seconds:.1f} "
            f"| {result.stored_rows_seconds:.2f} "
            f"| {result.stored_rows_seconds / result.copy_seconds:.1f} "
            f"| {result.load_cpu_seconds:.2f} "
            f"| {result.max_rss_bytes / 2**20:,.0f} |"
        )
    return "\n".join(lines)


def _format_memory_ratio(results: list[SizeResult]) -> str:
    by_rows = {result.rows: result for result in results}
    largest = max(results, key=lambda result: result.rows)
    reference = by_rows.get(REFERENCE_SIZE)
    if reference is None or largest is reference:
        return (
            f"Peak RSS ratio needs {REFERENCE_SIZE:,} rows and a larger size; "
            "not measured in this run."
        )
    ratio = largest.max_rss_bytes / reference.max_rss_bytes
    return (
        f"Peak RSS at {largest.rows:,} rows is {ratio:.2f} times that at "
        f"{REFERENCE_SIZE:,} rows ({largest.rows / REFERENCE_SIZE:g} times the rows)."
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
