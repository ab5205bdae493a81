from checkins.domain.report import LoadReport, format_report


def counted_report(load_id: int | None) -> LoadReport:
    """Return a report of 6 rows read: 5 loaded, 2 of them new, 1 quarantined."""
    return LoadReport(
        source="export.csv",
        load_id=load_id,
        rows_loaded=5,
        rows_quarantined=1,
        rows_inserted=2,
    )


def test_clean_report_has_no_stored_count():
    report = counted_report(load_id=None).to_dict()

    assert report["rows_already_stored"] is None
    assert 0 == report["rows_retired"]
    assert 5 == report["rows_loaded"]


def test_load_report_counts_already_stored():
    report = counted_report(load_id=3).to_dict()

    assert 3 == report["rows_already_stored"]
    assert 2 == report["rows_inserted"]


def test_clean_report_text_omits_stored_lines():
    text = format_report(counted_report(load_id=None).to_dict())

    assert text.splitlines() == [
        "source              export.csv",
        "rows read                   6",
        "rows loaded                 5",
        "rows quarantined            1",
    ]


def test_load_report_text_shows_stored_lines():
    text = format_report(counted_report(load_id=3).to_dict())

    assert text.splitlines() == [
        "source              export.csv",
        "load id             3",
        "mode                append",
        "rows read                   6",
        "rows loaded                 5",
        "  newly stored              2",
        "  already stored            3",
        "rows quarantined            1",
        "rows retired                0",
    ]
