"""Repeated, overlapping, snapshot and interrupted loads, through the CLI."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from checkins.adapters.postgres_queries import PostgresCheckinQueries


def user_totals(database_url: str) -> dict[str, tuple[int, Decimal]]:
    queries = PostgresCheckinQueries(database_url)
    try:
        return {u.user: (u.checkins, u.hours) for u in queries.list_users()}
    finally:
        queries.close()


def recounted_totals(database_url: str) -> dict[str, tuple[int, Decimal]]:
    """Count current rows straight from the table, bypassing user_totals."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT user_name, count(*), sum(hours) FROM checkins"
            " WHERE retired_by IS NULL GROUP BY user_name"
        ).fetchall()
    return {user: (count, hours) for user, count, hours in rows}


def current_rows(database_url: str) -> list[tuple]:
    """Return every current row's user, stamp, hours, project and flags, sorted."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT user_name, checkin_at, hours, project, flags FROM checkins"
            " WHERE retired_by IS NULL ORDER BY 1, 2, 3, 4, 5"
        ).fetchall()


def write_lines(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text(header + "".join(lines), encoding="utf-8")
    return path


@pytest.fixture(name="export_lines", scope="module")
def fixture_export_lines(real_export) -> tuple[str, list[str]]:
    with open(real_export, encoding="utf-8", newline="") as file:
        lines = file.readlines()
    return lines[0], lines[1:]


def test_overlapping_files_equal_whole_export(
    run_cli, database_url, other_database_url, tmp_path, export_lines, real_export
):
    """The first and last 60% of the export, loaded in turn, equal the whole."""
    header, lines = export_lines
    cut = len(lines) * 6 // 10
    first = write_lines(tmp_path / "first.csv", header, lines[:cut])
    last = write_lines(tmp_path / "last.csv", header, lines[len(lines) - cut :])
    whole_url = other_database_url

    run_cli(database_url, "load", str(first))
    run_cli(database_url, "load", str(last))
    run_cli(whole_url, "load", str(real_export))

    expected = user_totals(whole_url)
    assert 40 == len(expected)
    assert expected == user_totals(database_url)
    assert expected == recounted_totals(database_url)
    # Flags too, although neither file contains every row of a person.
    assert current_rows(whole_url) == current_rows(database_url)


def test_snapshot_retires_missing_rows(
    run_cli, database_url, tmp_path, export_lines, real_export
):
    """A snapshot of a copy with rows removed and changed matches the copy."""
    header, lines = export_lines
    picker = random.Random(7)
    valid = [i for i, line in enumerate(lines) if _is_valid(line)]
    removed = set(picker.sample(valid, 100))
    changed = set(picker.sample([i for i in valid if i not in removed], 10))
    copy_lines = []
    for index, line in enumerate(lines):
        if index in removed:
            continue
        if index in changed:
            user, stamp, hours, project = line.rstrip("\n").split(",")
            line = f"{user},{stamp},{Decimal(hours) + Decimal('0.25')},{project}\n"
        copy_lines.append(line)
    copy = write_lines(tmp_path / "copy.csv", header, copy_lines)

    run_cli(database_url, "load", str(real_export))
    status, output, _ = run_cli(
        database_url, "load", "--mode", "snapshot", "--json", str(copy)
    )
    report = json.loads(output)

    assert 0 == status
    assert 110 == report["rows_retired"]
    assert 10 == report["rows_inserted"]
    assert _totals_of_file(copy) == user_totals(database_url)
    assert _totals_of_file(copy) == recounted_totals(database_url)
    with psycopg.connect(database_url) as connection:
        retired = connection.execute(
            "SELECT count(*) FROM checkins WHERE retired_by = %s",
            (report["load_id"],),
        ).fetchone()[0]
    assert 110 == retired

    status, output, _ = run_cli(
        database_url, "load", "--mode", "snapshot", "--json", str(real_export)
    )
    restored = json.loads(output)

    assert 0 == status
    assert 110 == restored["rows_revived"]
    assert 10 == restored["rows_retired"]
    assert 0 == restored["rows_inserted"]

    _, output, _ = run_cli(database_url, "loads", "--json")
    history = [json.loads(line) for line in output.splitlines()]
    assert [0, 0, 110] == [load["rows_revived"] for load in history]


def test_folder_loads_each_file_once(run_cli, database_url, tmp_path, export_lines):
    """Loading a folder twice loads each file once and skips it the second time."""
    header, lines = export_lines
    folder = tmp_path / "exports"
    folder.mkdir()
    write_lines(folder / "b.csv", header, lines[5000:10000])
    write_lines(folder / "a.csv", header, lines[:5000])
    (folder / "notes.txt").write_text("not an export", encoding="utf-8")

    first = run_cli(database_url, "load", str(folder))
    second = run_cli(database_url, "load", str(folder))
    status, output, _ = run_cli(database_url, "loads", "--json")
    loads = [json.loads(line) for line in output.splitlines()]

    assert 0 == first[0]
    assert 0 == second[0]
    assert [str(folder / "a.csv"), str(folder / "b.csv")] == [
        load["source"] for load in loads
    ]
    assert 2 == second[1].count("skipped ")
    assert 10_000 == sum(load["rows_read"] for load in loads)


def test_folder_of_one_file_loads_it_once(
    run_cli, database_url, tmp_path, export_lines
):
    header, lines = export_lines
    folder = tmp_path / "exports"
    folder.mkdir()
    write_lines(folder / "only.csv", header, lines[:100])

    first = run_cli(database_url, "load", str(folder))
    second = run_cli(database_url, "load", str(folder))
    again = run_cli(database_url, "load", str(folder / "only.csv"))
    _, output, _ = run_cli(database_url, "loads", "--json")

    assert 0 == first[0]
    assert 0 == second[0]
    assert 1 == second[1].count("skipped ")
    # Named on its own, the file is loaded again, which stores nothing new.
    assert 0 == again[0]
    assert [100, 100] == [json.loads(line)["rows_read"] for line in output.splitlines()]


def test_killed_load_changes_nothing(database_url, tmp_path, export_lines):
    """A load killed halfway leaves the data as it was, and a rerun works."""
    header, lines = export_lines
    base = write_lines(tmp_path / "base.csv", header, lines[:1000])
    # Ten copies of the export under other user names make a load of about two
    # seconds, long enough to be killed halfway.
    big_lines = [
        line if not line.split(",", 1)[0] else f"{copy}{line}"
        for copy in "abcdefghij"
        for line in lines
    ]
    big = write_lines(tmp_path / "big.csv", header, big_lines)
    environment = {**os.environ, "CHECKINS_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "checkins.entrypoints.cli", "load"]
    subprocess.run(
        [*command, str(base)], env=environment, check=True, capture_output=True
    )
    before = user_totals(database_url)

    process = subprocess.Popen(
        [*command, str(big)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_copy(database_url, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    assert before == user_totals(database_url)
    assert before == recounted_totals(database_url)
    rerun = subprocess.run(
        [*command, str(big)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == rerun.returncode, rerun.stderr
    assert 40 * 10 + len(before) >= len(user_totals(database_url))


def _wait_for_copy(database_url: str, process: subprocess.Popen) -> None:
    """Wait until the load's COPY is running on the server, at most 60 s."""
    deadline = time.monotonic() + 60
    with psycopg.connect(database_url, autocommit=True) as connection:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the load ended before it could be killed"
            (copying,) = connection.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE query LIKE 'COPY checkins%%' AND state = 'active'"
            ).fetchone()
            if copying:
                return
            time.sleep(0.05)
    raise AssertionError("the load's COPY did not start within 60 s")


def _is_valid(line: str) -> bool:
    user, _, hours, _ = line.rstrip("\n").split(",")
    return bool(user) and 0 < Decimal(hours) <= 24


def _totals_of_file(path: Path) -> dict[str, tuple[int, Decimal]]:
    totals: dict[str, list] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if not _is_valid(line + "\n"):
            continue
        user = line.split(",", 1)[0]
        hours = Decimal(line.split(",")[2])
        total = totals.setdefault(user, [0, Decimal(0)])
        total[0] += 1
        total[1] += hours
    return {user: (count, hours) for user, (count, hours) in totals.items()}


def test_concurrent_loads_run_in_turn(database_url, tmp_path, export_lines):
    """A second load started during the first waits for it, then succeeds."""
    header, lines = export_lines
    big_lines = [
        line if not line.split(",", 1)[0] else f"{copy}{line}"
        for copy in "abcdefghij"
        for line in lines
    ]
    big = write_lines(tmp_path / "big.csv", header, big_lines)
    small = write_lines(tmp_path / "small.csv", header, lines[:1000])
    environment = {**os.environ, "CHECKINS_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "checkins.entrypoints.cli", "load"]

    first = subprocess.Popen(
        [*command, str(big)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_copy(database_url, first)
    second = subprocess.run(
        [*command, str(small)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    first.wait(timeout=300)

    assert 0 == first.returncode
    assert 0 == second.returncode, second.stderr
    assert "another load is running; waiting for it to finish" in second.stderr
    assert recounted_totals(database_url) == user_totals(database_url)
    with psycopg.connect(database_url) as connection:
        loads = connection.execute("SELECT source FROM loads ORDER BY id").fetchall()
    assert [(str(big),), (str(small),)] == loads


@pytest.mark.parametrize(
    ("autumn_rows", "outliers", "flagged"),
    [
        # One of ned's rows, flagged isolated_timestamp.
        (None, ["ned,2001-01-01 09:00:00 UTC,1.0,bizdev\n"], 1),
        # The only row of a person, which no per-person rule can flag.
        (None, ["zed,2010-10-06 10:00:00 UTC,1,bizdev\n"], 0),
        # In a small file, one far-off row is a large share of the rows.
        (10, ["zed,2010-10-06 10:00:00 UTC,1,bizdev\n"], 0),
        (98, [f"zed,2010-10-0{day} 10:00:00 UTC,1,bizdev\n" for day in range(1, 7)], 0),
    ],
)
def test_snapshot_window_skips_isolated_rows(
    run_cli,
    database_url,
    tmp_path,
    export_lines,
    real_export,
    autumn_rows,
    outliers,
    flagged,
):
    """Rows stamped years off do not stretch a snapshot's window."""
    header, lines = export_lines
    autumn = [line for line in lines if line.startswith("ned,2018-1")][:autumn_rows]
    snapshot = write_lines(tmp_path / "snapshot.csv", header, [*autumn, *outliers])

    run_cli(database_url, "load", str(real_export))
    status, output, _ = run_cli(
        database_url, "load", "--mode", "snapshot", "--json", str(snapshot)
    )
    report = json.loads(output)

    assert 0 == status
    assert flagged == report["flags"].get("isolated_timestamp", 0)
    low, high = report["window"]
    assert low.startswith(("2018-10-", "2018-11-"))
    assert high.startswith("2018-11-")
    with psycopg.connect(database_url) as connection:
        outside = connection.execute(
            "SELECT count(*) FROM checkins WHERE retired_by IS NOT NULL"
            " AND (checkin_at < %s OR checkin_at > %s)",
            (low, high),
        ).fetchone()[0]
    assert 0 == outside
