"""The API under real gunicorn: its port, its start-up log, and its own
PostgreSQL server stopping and restarting."""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkins.adapters.csv_source import CsvFileSource
from checkins.adapters.embedded_postgres import EmbeddedPostgres
from checkins.adapters.postgres import PostgresCheckinRepository
from checkins.services import ingest


CSV = """\
user,timestamp,hours,project
ned,2018-11-12 16:30:52 UTC,3,bizdev
"""

START_TIMEOUT_SECONDS = 30


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port, path, timeout=10.0):
    """GET `path` on 127.0.0.1:`port`; return the status, JSON body and seconds."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return response.status, json.loads(body), time.monotonic() - started


def poll(port, path, status, seconds):
    """Request `path` every 0.1 s until it returns `status`; return the time taken."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with contextlib.suppress(OSError):
            if get(port, path, timeout=seconds)[0] == status:
                return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"GET {path} did not return {status} within {seconds} s")


def gunicorn_command(port, *options):
    """Return the command that runs the app under gunicorn on 127.0.0.1:`port`."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:checkins.entrypoints.gunicorn_config",
        "--bind",
        f"127.0.0.1:{port}",
        *options,
        "checkins.entrypoints.wsgi:get_app()",
    ]


def worker_pids(master):
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


@pytest.fixture(name="server")
def fixture_server(tmp_path):
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    server_url = postgres.start()
    try:
        yield postgres, server_url
    finally:
        postgres.stop()


@pytest.fixture(name="gunicorn")
def fixture_gunicorn(server, tmp_path):
    _, database_url = server
    export = tmp_path / "checkins.csv"
    export.write_text(CSV, encoding="utf-8")
    ingest(CsvFileSource(export), PostgresCheckinRepository(database_url))

    port = free_port()
    environment = os.environ | {
        "CHECKINS_DATABASE_URL": database_url,
        "CHECKINS_POOL_TIMEOUT": "1.5",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        gunicorn_command(port, "--workers", "2"),
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        poll(port, "/health", 200, START_TIMEOUT_SECONDS)
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_database_restart_needs_no_app_restart(server, gunicorn):
    postgres, _ = server
    process, port = gunicorn
    workers = worker_pids(process.pid)
    # Enough requests for both workers to open their pools.
    for _ in range(10):
        assert get(port, "/users")[0] == 200

    postgres.stop()
    ready_status, ready_body, ready_seconds = get(port, "/ready")
    users_status, users_body, users_seconds = get(port, "/users")
    postgres.start()
    back_after = poll(port, "/ready", 200, 5.0)
    users_back_after = poll(port, "/users", 200, 5.0)

    assert ready_status == 503
    assert ready_seconds < 2.0
    assert ready_body["title"] == "Service Unavailable"
    assert users_status == 503
    assert users_seconds < 2.0
    assert users_body == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "no database connection within 1.5 s; try again later",
    }
    assert back_after < 5.0
    assert users_back_after < 5.0
    assert get(port, "/users")[1]["users"][0]["user"] == "ned"
    assert process.poll() is None
    assert worker_pids(process.pid) == workers
    assert len(workers) == 2


def test_second_server_on_port_fails(gunicorn):
    """A second gunicorn on a port in use exits with an error, sharing nothing."""
    _, port = gunicorn
    second = subprocess.run(
        gunicorn_command(port),
        env=os.environ | {"CHECKINS_DATABASE_URL": "postgresql://127.0.0.1:1/none"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
    )

    assert second.returncode == 1
    assert f"Connection in use: ('127.0.0.1', {port})" in second.stderr
    assert get(port, "/health")[0] == 200


def test_workers_log_authentication_mode(gunicorn, tmp_path):
    """Each worker logs to gunicorn's log whether the API requires tokens."""
    log = tmp_path / "gunicorn.log"
    # /health returns 200 once the first worker runs, while the second may
    # still be starting.
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    logged = []
    while len(logged) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        logged = [
            line for line in log.read_text().splitlines() if "checkins API" in line
        ]

    assert len(logged) == 2
    assert logged[0].endswith("[INFO] checkins API: no authentication")
    assert logged[1].endswith("[INFO] checkins API: no authentication")
