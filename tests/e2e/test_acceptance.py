"""Acceptance: the real export, loaded through the CLI and read over HTTP.

The expected figures were counted from the export itself, independently of the
cleaning code: 20,500 data rows, of which 5 have an empty user, 2 have 0.0
hours and 1 has 30.0 hours. Stamps ending in " UTC" number 18,453, those in
MM/DD/YYYY form 1,025 and those with a Russian month 1,022. Of the 2,047
minute-precision stamps, 1,911 share their person and minute with exactly one
distinct full-precision stamp. 40 distinct non-empty users remain.
"""

import csv
import json
from collections import Counter
from decimal import Decimal

import pytest


@pytest.fixture(name="loaded")
def fixture_loaded(loaded_export):
    return loaded_export


@pytest.fixture(name="client")
def fixture_client(export_client):
    return export_client


def expected_totals(path) -> dict[str, tuple[int, Decimal]]:
    """Count and sum each user's valid rows, read straight from the file."""
    counts: Counter[str] = Counter()
    hours: dict[str, Decimal] = {}
    with open(path, encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            user = row["user"].strip().lower()
            value = Decimal(row["hours"])
            if user and 0 < value <= 24:
                counts[user] += 1
                hours[user] = hours.get(user, Decimal(0)) + value
    return {user: (counts[user], hours[user]) for user in counts}


def test_load_counts_rows_by_outcome(loaded):
    """Every row is loaded or quarantined, with the counts from the export."""
    report = loaded[1]

    assert 20_500 == report["rows_read"]
    assert 20_492 == report["rows_loaded"]
    assert 8 == report["rows_quarantined"]
    assert 20_492 == report["rows_inserted"]


def test_load_counts_quarantine_reasons(loaded):
    """Quarantined rows split into missing users and out-of-range hours."""
    reasons = loaded[1]["quarantined_by_reason"]

    assert {"missing_user": 5, "hours_not_positive": 2, "hours_over_24": 1} == reasons


def test_load_counts_stamp_formats(loaded):
    """Each row's stamp form is counted, quarantined rows included."""
    formats = loaded[1]["formats"]

    assert {"iso": 18_453, "us": 1_025, "russian": 1_022} == formats


def test_load_counts_recovered_stamps(loaded):
    """Minute-precision stamps recovered from their batch are counted."""
    fixes = loaded[1]["fixes"]

    assert 1_911 == fixes["precision_recovered"]


def test_users_match_export_totals(client, real_export):
    """Each user's count and hours equal those of their valid rows in the file."""
    expected = expected_totals(real_export)

    response = client.simulate_get("/users")
    users = response.json["users"]

    assert 200 == response.status_code
    assert 40 == len(users)
    assert sorted(expected) == [u["user"] for u in users]
    for user in users:
        count, hours = expected[user["user"]]
        assert count == user["checkins"], user["user"]
        assert hours == Decimal(str(user["hours"])), user["user"]


def test_checkins_stamps_are_utc(client):
    """Every returned stamp is ISO 8601 in UTC with a Z suffix."""
    stamps = []
    cursor = None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = client.simulate_get("/users/ned/checkins", params=params).json
        stamps.extend(c["checkin_at"] for c in page["checkins"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # ned has 1,387 rows in the export and none of them is quarantined.
    assert 1_387 == len(stamps)
    assert all(stamp.endswith("Z") for stamp in stamps)
    assert all("+" not in stamp for stamp in stamps)


def test_second_load_adds_nothing(database_url, run_cli, real_export):
    """Loading the export again stores no row and records a second load."""
    run_cli(database_url, "load", str(real_export))
    status, output, _ = run_cli(database_url, "load", str(real_export), "--json")
    report = json.loads(output)

    assert 0 == status
    assert 0 == report["rows_inserted"]
    assert 20_492 == report["rows_already_stored"]
    assert 2 == report["load_id"]
