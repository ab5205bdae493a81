"""Measure the HTTP API under gunicorn against two ceilings, with wrk and pgbench.

Cases, each run by `wrk --latency` at a fixed number of connections:

- ``page``: ``GET /users/{user}/checkins?limit=100``, a page of 100 check-ins;
- ``summary``: ``GET /users/{user}/summary?by=week``;
- ``ceiling``: the same gunicorn settings serving a constant, pre-serialised
  body as large as the page, from a bare WSGI callable (the HTTP ceiling);
- ``falcon-constant``: that body from a Falcon resource, to show the
  framework's share;
- ``query-layer``: the page from the app's query layer, called by a bare WSGI
  callable with no framework, middleware or parameter parsing, to show how
  close any app on that layer can come to the ceiling;
- ``pgbench-page`` and ``pgbench-summary``: pgbench running the app's SQL of
  the two cases with the same connections (the database ceiling).

ETags are switched off (CHECKINS_ETAGS=off) and wrk sends no If-None-Match, so
every request runs its query. The database must hold a load already, for
example 1,000,000 generated rows:

    python bench/generate.py --rows 1000000 --seed 1 --output /tmp/1m.csv
    CHECKINS_DATABASE_URL=URL checkins load /tmp/1m.csv
    python bench/http_benchmark.py --database-url URL

Everything runs on 127.0.0.1 and stops by itself after the bounded runs.
"""

import argparse
import contextlib
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from checkins.entrypoints import gunicorn_config


BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCH_DIR.parent
START_TIMEOUT_SECONDS = 30
WARM_UP_SECONDS = 2
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def main() -> int:
    """Run every case and print the results as a Markdown table."""
    arguments = _parse_arguments()
    for tool in ("wrk", "pgbench"):
        if shutil.which(tool) is None:
            sys.exit(f"http_benchmark: {tool} not found on PATH; install it first")
    user = arguments.user or _busiest_user(arguments.database_url)
    page_path = f"/users/{user}/checkins?limit=100"
    summary_path = f"/users/{user}/summary?by=week"

    runs: dict[str, list[tuple[float, float, float]]] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="checkins-bench-") as folder:
        workdir = Path(folder)
        environment = os.environ | {
            "CHECKINS_DATABASE_URL": arguments.database_url,
            "CHECKINS_ETAGS": "off",
            "CHECKINS_POOL_SIZE": str(arguments.gunicorn_threads),
        }
        app = "checkins.entrypoints.wsgi:get_app()"
        with _gunicorn(arguments, app, environment, workdir / "app.log") as port:
            page_body = _fetch(port, page_path)
            sizes["page"] = len(page_body)
            sizes["summary"] = len(_fetch(port, summary_path))
        body_file = workdir / "body.json"
        body_file.write_bytes(page_body)
        constant_environment = os.environ | {"BENCH_BODY_FILE": str(body_file)}

        # Each round runs every case once, so that a change in the machine's
        # background load spreads over all cases rather than one.
        with contextlib.ExitStack() as servers:
            ports = {
                "app": servers.enter_context(
                    _gunicorn(arguments, app, environment, workdir / "app.log")
                ),
                "ceiling": servers.enter_context(
                    _gunicorn(
                        arguments,
                        "http_benchmark:bare_app()",
                        constant_environment,
                        workdir / "ceiling.log",
                    )
                ),
                "falcon-constant": servers.enter_context(
                    _gunicorn(
                        arguments,
                        "http_benchmark:falcon_app()",
                        constant_environment,
                        workdir / "falcon.log",
                    )
                ),
                "query-layer": servers.enter_context(
                    _gunicorn(
                        arguments,
                        "http_benchmark:query_layer_app()",
                        environment | {"BENCH_USER": user},
                        workdir / "query-layer.log",
                    )
                ),
            }
            sizes["ceiling"] = len(_fetch(ports["ceiling"], "/"))
            sizes["falcon-constant"] = len(_fetch(ports["falcon-constant"], "/"))
            sizes["query-layer"] = len(_fetch(ports["query-layer"], "/"))
            cases = (
                ("page", ports["app"], page_path),
                ("summary", ports["app"], summary_path),
                ("ceiling", ports["ceiling"], "/"),
                ("falcon-constant", ports["falcon-constant"], "/"),
                ("query-layer", ports["query-layer"], "/"),
            )
            for _ in range(arguments.rounds):
                for case, port, path in cases:
                    runs.setdefault(case, []).append(_wrk(arguments, port, path))

        scripts = {}
        for case, path in (
            ("pgbench-page", page_path),
            ("pgbench-summary", summary_path),
        ):
            scripts[case] = workdir / f"{case}.sql"
            scripts[case].write_text(_pgbench_script(path, user) + "\n")
        for _ in range(arguments.rounds):
            for case, script in scripts.items():
                runs.setdefault(case, []).append(_pgbench(arguments, script))

    results = {case: _median_run(case_runs) for case, case_runs in runs.items()}
    _print_report(arguments, user, results, sizes, runs)
    return 0


def _median_run(
    case_runs: list[tuple[float, float, float]],
) -> tuple[float, float, float]:
    """Return the run with the median requests per second."""
    ordered = sorted(case_runs)
    return ordered[(len(ordered) - 1) // 2]


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", required=True, help="libpq URL of a loaded checkins database"
    )
    parser.add_argument(
        "--user",
        help="user whose check-ins to read (default: the user with the most check-ins)",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=10,
        help="seconds of each measured run (default: %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="concurrent connections (default: %(default)s)",
    )
    parser.add_argument(
        "--wrk-threads",
        type=int,
        default=2,
        help="wrk and pgbench threads (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of each case; the report shows the median (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=gunicorn_config.workers,
        help="gunicorn worker processes (default: the project's setting, "
        "%(default)s here)",
    )
    parser.add_argument(
        "--gunicorn-threads",
        type=int,
        default=gunicorn_config.threads,
        help="threads per gunicorn worker (default: the project's setting, "
        "%(default)s here)",
    )
    return parser.parse_args()


def _busiest_user(database_url: str) -> str:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT user_name FROM user_totals"
            " ORDER BY checkins DESC, user_name LIMIT 1"
        ).fetchone()
    if row is None:
        sys.exit("http_benchmark: the database has no check-ins; load a file first")
    return row[0]


@contextlib.contextmanager
def _gunicorn(
    arguments: argparse.Namespace, app: str, environment: dict[str, str], log: Path
) -> Iterator[int]:
    """Run gunicorn with the project's settings on a free port; yield the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:checkins.entrypoints.gunicorn_config",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(arguments.workers),
        "--threads",
        str(arguments.gunicorn_threads),
        "--chdir",
        str(BENCH_DIR),
        app,
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(port, process, log)
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"http_benchmark: gunicorn exited; see {log}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.1)
    sys.exit(
        f"http_benchmark: gunicorn did not listen within {START_TIMEOUT_SECONDS} s"
    )


def _fetch(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        sys.exit(
            f"http_benchmark: GET {path} returned {response.status}: {body[:200]!r}"
        )
    return body


def _wrk(
    arguments: argparse.Namespace, port: int, path: str
) -> tuple[float, float, float]:
    """Return requests per second, p50 and p99 latency in ms of one wrk run."""
    url = f"http://127.0.0.1:{port}{path}"
    common = [
        "wrk",
        f"-t{arguments.wrk_threads}",
        f"-c{arguments.connections}",
        "--latency",
    ]
    subprocess.run(
        [*common, f"-d{WARM_UP_SECONDS}s", url],
        check=True,
        capture_output=True,
        timeout=WARM_UP_SECONDS + 30,
    )
    output = subprocess.run(
        [*common, f"-d{arguments.duration}s", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=arguments.duration + 30,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        sys.exit(f"http_benchmark: {errors[1]} failed responses from {url}:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    return rate, _latency(output, "50%"), _latency(output, "99%")


def _latency(output: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    return float(match[1]) * _UNITS[match[2]]


def _pgbench_script(path: str, user: str) -> str:
    """Return the app's SQL of `path` with the parameters written in."""
    from checkins.adapters.postgres_queries import PostgresCheckinQueries
    from checkins.domain.queries import CheckinQuery, Grouping, SummaryQuery

    queries = PostgresCheckinQueries("")
    statement: str
    if "/summary" in path:
        query = SummaryQuery(user=user, by=Grouping.WEEK)
        statement, parameters = queries.summary_statement(query)
    else:
        statement, parameters = queries.page_statement(
            CheckinQuery(user=user, limit=100)
        )
    literals = {name: _literal(value) for name, value in parameters.items()}
    script = " ".join((statement % literals).split()) + ";"
    # pgbench reads ":MI" as a variable in prepared mode; quoting the colons
    # keeps the same to_char output.
    return script.replace("HH24:MI:SS", 'HH24":"MI":"SS')


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _pgbench(arguments: argparse.Namespace, script: Path) -> tuple[float, float, float]:
    """Return transactions per second, p50 and p99 latency in ms of one pgbench run."""
    with tempfile.TemporaryDirectory(prefix="checkins-pgbench-") as folder:
        command = [
            "pgbench",
            "-n",
            "-f",
            str(script),
            "-c",
            str(arguments.connections),
            "-j",
            str(arguments.wrk_threads),
            "-M",
            "prepared",
            "--log",
            f"--log-prefix={folder}/log",
        ]
        subprocess.run(
            [*command, "-T", str(WARM_UP_SECONDS), arguments.database_url],
            check=True,
            capture_output=True,
            timeout=WARM_UP_SECONDS + 60,
        )
        for stale in Path(folder).iterdir():
            stale.unlink()
        output = subprocess.run(
            [*command, "-T", str(arguments.duration), arguments.database_url],
            check=True,
            capture_output=True,
            text=True,
            timeout=arguments.duration + 60,
        ).stdout
        latencies = sorted(
            int(line.split()[2])
            for log in Path(folder).iterdir()
            for line in log.read_text().splitlines()
        )
    rate = float(re.search(r"tps = ([\d.]+)", output)[1])
    p50 = latencies[len(latencies) // 2] / 1000
    p99 = latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] / 1000
    return rate, p50, p99


def _print_report(
    arguments: argparse.Namespace,
    user: str,
    results: dict[str, tuple[float, float, float]],
    sizes: dict[str, int],
    runs: dict[str, list[tuple[float, float, float]]],
) -> None:
    print(
        f"user {user}; {arguments.connections} connections; "
        f"{arguments.duration} s per run, median of {arguments.rounds} rounds; "
        f"gunicorn gthread {arguments.workers} workers x "
        f"{arguments.gunicorn_threads} threads"
    )
    print()
    print(
        "| case | requests/s | p50 ms | p99 ms | body bytes | requests/s of each run |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for case, (rate, p50, p99) in results.items():
        size = sizes.get(case, "")
        rates = ", ".join(f"{run[0]:,.0f}" for run in runs[case])
        print(f"| {case} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {size} | {rates} |")
    print()
    ceiling = results["ceiling"][0]
    for case in ("page", "summary"):
        rate = results[case][0]
        database = results[f"pgbench-{case}"][0]
        print(f"{case} / HTTP ceiling: {rate / ceiling:.2f}")
        print(f"{case} / database ceiling: {rate / database:.2f}")
    print(f"query-layer / HTTP ceiling: {results['query-layer'][0] / ceiling:.2f}")
    print()
    print(f"machine: {_machine()}")
    server = _server_version(arguments.database_url)
    print(f"python {platform.python_version()}; {server}")
    print(f"commit: {_commit()}")


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError):
        kilobytes = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kilobytes / 2**20:.0f} GiB memory"
    return f"{os.cpu_count()} CPUs, {model}{memory}, {platform.platform()}"


def _server_version(database_url: str) -> str:
    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT version()").fetchone()[0].split(" on ")[0]


def _commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    status = subprocess.run(
        ["git", "-C", str(REPOSITORY), "status", "--porcelain"],
        capture_output=True,
        text=True,
    )
    dirty = " with uncommitted changes" if status.stdout.strip() else ""
    return (result.stdout.strip() or "unknown") + dirty


def bare_app():
    """Return a WSGI callable that responds to every request with BENCH_BODY_FILE."""
    body = Path(os.environ["BENCH_BODY_FILE"]).read_bytes()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ]

    def app(environ, start_response):
        start_response("200 OK", headers)
        return [body]

    return app


def falcon_app():
    """Return a Falcon app whose one resource responds with BENCH_BODY_FILE."""
    import falcon

    body = Path(os.environ["BENCH_BODY_FILE"]).read_bytes()

    class Constant:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.content_type = falcon.MEDIA_JSON
            resp.data = body

    app = falcon.App()
    app.add_route("/", Constant())
    return app


def query_layer_app():
    """Return a WSGI callable that serves BENCH_USER's first page from the query layer.

    It calls the app's PostgresCheckinQueries on CHECKINS_DATABASE_URL as the
    app does, with a pool of one connection, and writes the page's envelope
    without a cursor. What it leaves out is Falcon, the middleware (request id,
    access log, metrics), the parameter parsing and the cursor.
    """
    import orjson

    from checkins.adapters.postgres_queries import PostgresCheckinQueries
    from checkins.domain.queries import CheckinQuery

    user = os.environ["BENCH_USER"]
    query = CheckinQuery(user=user, limit=100)
    # The pool opens on first use, in each worker after the fork.
    queries = PostgresCheckinQueries(os.environ["CHECKINS_DATABASE_URL"], pool_size=1)

    def app(environ, start_response):
        page = queries.render_user_checkins(query)
        body = orjson.dumps(
            {
                "user": user,
                "checkins": orjson.Fragment(page.checkins_json),
                "next_cursor": None,
            }
        )
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


if __name__ == "__main__":
    sys.exit(main())
