"""Use cases: load a source into a repository, and read check-ins back."""

import datetime as dt
import itertools
import logging
from collections.abc import Callable, Iterator

from checkins.domain.cleaning import clean
from checkins.domain.model import RawRow
from checkins.domain.projects import ProjectAliases
from checkins.domain.queries import CheckinPage, CheckinQuery, UserTotals
from checkins.domain.report import LoadReport
from checkins.ports import CheckinQueries, CheckinRepository, CheckinSource


logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """Return the current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def ingest(
    source: CheckinSource,
    repository: CheckinRepository,
    *,
    aliases: ProjectAliases | None = None,
    clock: Clock = utc_now,
) -> LoadReport:
    """Clean every row of `source` and store the outcome as one load.

    The source's header is checked before the repository is touched, and the
    load runs in one transaction, so nothing is stored when any step raises.
    """
    report = LoadReport(source=source.name, sha256=source.sha256())
    rows = _checked_rows(source)
    logger.info("loading %s (sha256 %s)", source.name, report.sha256)
    with repository.load(source.name, report.sha256, clock()) as writer:
        for outcome in clean(rows, aliases):
            report.count(outcome)
            writer.add(outcome)
        report.load_id, report.rows_inserted = writer.finish(report, clock())
    logger.info(
        "loaded %s as load %s: %d read, %d loaded, %d new, %d quarantined",
        source.name,
        report.load_id,
        report.rows_read,
        report.rows_loaded,
        report.rows_inserted,
        report.rows_quarantined,
    )
    return report


def check_source(source: CheckinSource) -> None:
    """Raise SourceError unless `source` opens and starts with a valid header."""
    rows = source.rows()
    try:
        next(rows, None)
    finally:
        rows.close()


def _checked_rows(source: CheckinSource) -> Iterator[RawRow]:
    """Start reading `source`, so that a bad header raises before any write."""
    rows = source.rows()
    first = next(rows, None)
    if first is None:
        return iter(())
    return itertools.chain([first], rows)


def list_users(queries: CheckinQueries) -> list[UserTotals]:
    """Return every user's totals, ordered by user name."""
    return queries.list_users()


def user_checkins(queries: CheckinQueries, query: CheckinQuery) -> CheckinPage:
    """Return one page of a user's check-ins, or raise UnknownUserError."""
    return queries.user_checkins(query)
