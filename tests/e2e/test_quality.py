"""Flags, the quality report and `checkins clean` on the real export.

The export contains robert's batch of 13 rows stamped 2010-10-04, years
before anyone else's activity, and six rows of ned and robert stamped in
September 2019, ten months after the rest. Both are runs of activity more
than 60 days away from the rest of the person's rows, and small: the rule
flags them as isolated_timestamp.
"""

import collections
import csv
import json
from decimal import Decimal

import psycopg
import pytest


@pytest.fixture(name="loaded")
def fixture_loaded(loaded_export):
    return loaded_export


@pytest.fixture(name="client")
def fixture_client(export_client):
    return export_client


def stored_rows(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT id, user_name, checkin_at, hours, project, flags"
            " FROM checkins ORDER BY user_name, id"
        ).fetchall()


def test_robert_2010_batch_is_isolated(client):
    """robert's 13 rows of 2010-10-04 are returned, each flagged isolated."""
    response = client.simulate_get(
        "/users/robert/checkins", params={"from": "2010-10-04", "to": "2010-10-04"}
    )
    rows = response.json["checkins"]

    assert 200 == response.status_code
    assert 13 == len(rows)
    assert all("isolated_timestamp" in row["flags"] for row in rows)


@pytest.mark.parametrize("user", ["ned", "robert"])
def test_september_2019_rows_are_isolated(client, user):
    """Every row of ned and robert in September 2019 is flagged isolated."""
    response = client.simulate_get(
        f"/users/{user}/checkins", params={"from": "2019-09-01", "to": "2019-09-30"}
    )
    rows = response.json["checkins"]

    assert rows
    assert all("isolated_timestamp" in row["flags"] for row in rows)


def test_isolated_rows_are_rare(loaded):
    """Fewer than 0.5% of loaded rows are flagged isolated."""
    report = loaded[1]

    # 13 + 4 of robert in 2010 and 2016, 6 of ned and robert in 2019, 13 of
    # margaery in two short stretches and 8 of sansa on one day.
    assert 44 == report["flags"]["isolated_timestamp"]
    assert report["flags"]["isolated_timestamp"] < 0.005 * report["rows_loaded"]


def test_repeated_entries_have_earlier_twin(loaded):
    """Each row flagged repeated_entry has an identical earlier row."""
    seen = set()
    flagged = 0
    for _, user, at, hours, project, flags in stored_rows(loaded[0]):
        content = (user, at, hours, project)
        if "repeated_entry" in flags:
            flagged += 1
            assert content in seen
        seen.add(content)

    assert loaded[1]["flags"]["repeated_entry"] == flagged


def test_unflagged_rows_have_no_earlier_twin(loaded):
    """A row without repeated_entry is the first of its content."""
    seen = set()
    for _, user, at, hours, project, flags in stored_rows(loaded[0]):
        content = (user, at, hours, project)
        if "repeated_entry" not in flags:
            assert content not in seen
        seen.add(content)


def test_long_days_are_flagged_exactly(loaded):
    """day_over_24h marks exactly the rows of person-days above 24 hours."""
    rows = stored_rows(loaded[0])
    day_hours: collections.Counter = collections.Counter()
    for _, user, at, hours, _, _ in rows:
        day_hours[user, at.date()] += hours

    for _, user, at, _, _, flags in rows:
        long_day = day_hours[user, at.date()] > Decimal(24)
        assert long_day == ("day_over_24h" in flags), (user, at)
    assert 33 == sum(1 for hours in day_hours.values() if hours > 24)


def test_report_reconciles(loaded, run_cli):
    """The stored report adds up: read = loaded + quarantined, reasons sum up."""
    status, output, _ = run_cli(loaded[0], "report", "--json")
    report = json.loads(output)

    assert 0 == status
    assert report["rows_read"] == report["rows_loaded"] + report["rows_quarantined"]
    assert report["rows_quarantined"] == sum(report["quarantined_by_reason"].values())
    assert report["rows_loaded"] == sum(report["rows_per_month"].values())
    assert 13 == report["rows_per_month"]["2010-10"]
    assert {"name": "workshop", "rows": 22, "canonical": "workshops"} == {
        key: report["alias_suggestions"][-1][key]
        for key in ("name", "rows", "canonical")
    }


def test_report_text_shows_months(loaded, run_cli):
    """The text report draws rows per month, so outliers stand out."""
    status, output, _ = run_cli(loaded[0], "report")

    assert 0 == status
    assert "  2010-10         13  #\n" in output
    assert "workshop (22 rows) -> workshops (285 rows)" in output


def test_clean_matches_load(loaded, run_cli, real_export, tmp_path):
    """`clean` writes 20,492 clean rows and 8 rejects, with the load's counts."""
    output_path = tmp_path / "clean.csv"
    rejects_path = tmp_path / "rejects.csv"

    status, output, _ = run_cli(
        loaded[0],
        "clean",
        str(real_export),
        "--output",
        str(output_path),
        "--rejects",
        str(rejects_path),
        "--json",
    )
    report = json.loads(output)
    with open(output_path, encoding="utf-8", newline="") as file:
        clean_rows = list(csv.DictReader(file))
    with open(rejects_path, encoding="utf-8", newline="") as file:
        rejects = list(csv.DictReader(file))

    assert 0 == status
    assert 20_492 == len(clean_rows)
    assert 8 == len(rejects)
    for key in ("rows_read", "rows_loaded", "rows_quarantined", "fixes", "flags"):
        assert loaded[1][key] == report[key], key
    assert ["user", "timestamp", "hours", "project", "flags", "line"] == list(
        clean_rows[0]
    )
    assert {"line": "2918", "reason": "hours_over_24"} == {
        key: rejects[0][key] for key in ("line", "reason")
    }
    assert "shae,2018-10-12 10:09:11.0001 UTC,30.0,project-43" == rejects[0]["raw_text"]


def test_loads_lists_history(loaded, run_cli):
    """`loads` lists each load with its counts."""
    status, output, _ = run_cli(loaded[0], "loads", "--json")
    first = json.loads(output.splitlines()[0])

    assert 0 == status
    assert 1 == first["id"]
    assert 20_500 == first["rows_read"]
    assert 20_492 == first["rows_inserted"]
    assert "append" == first["mode"]
