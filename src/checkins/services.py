"""Use cases: load a source into a repository, and read check-ins back."""

import contextlib
import datetime as dt
import gc
import itertools
import logging
from collections.abc import Callable, Iterator

import attrs

from checkins.domain.cleaning import ISOLATION_GAP, Cleaning, Record, to_checkin
from checkins.domain.model import CheckIn, Quarantined, RawRow, Reason
from checkins.domain.projects import ProjectAliases
from checkins.domain.queries import (
    CheckinPage,
    CheckinQuery,
    ProjectTotals,
    RenderedPage,
    StoredCheckin,
    SummaryGroup,
    SummaryQuery,
    UserTotals,
)
from checkins.domain.report import LoadReport
from checkins.ports import (
    CheckinQueries,
    CheckinRepository,
    CheckinSource,
    SourceError,
)


logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

LOAD_MODES = ("append", "snapshot")

# Check-ins are handed to the repository in batches of about this many rows.
_BATCH_ROWS = 50_000


def utc_now() -> dt.datetime:
    """Return the current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, then restore its previous state.

    Cleaning keeps millions of tuples, none in a reference cycle, and each
    collection would walk all of them again. Reference counting still frees
    everything that is released.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_cyclic_gc_paused()
def ingest(
    source: CheckinSource,
    repository: CheckinRepository,
    *,
    aliases: ProjectAliases | None = None,
    clock: Clock = utc_now,
    mode: str = "append",
    window: tuple[dt.datetime, dt.datetime] | None = None,
    progress: Callable[[int], None] | None = None,
    write_progress: Callable[[int], None] | None = None,
    skip_loaded: bool = False,
) -> LoadReport:
    """Clean every row of `source` and store the outcome as one load.

    The source's header is checked before the repository is touched, and the
    load runs in one transaction, so nothing is stored when any step raises.
    In "snapshot" mode the current rows inside the window that the file does
    not contain are retired. `progress` is called with the rows read so far,
    and then `write_progress` with the rows handed to the repository so far;
    each is called with 0 when its phase starts. With `skip_loaded`, a file
    loaded before raises AlreadyLoadedError instead, and nothing is stored.
    """
    if mode not in LOAD_MODES:
        raise ValueError(f"invalid load mode {mode!r}: expected append or snapshot")
    report = LoadReport(source=source.name, sha256=source.sha256(), mode=mode)
    rows = _checked_rows(source)
    logger.info("loading %s (sha256 %s, %s)", source.name, report.sha256, mode)
    cleaning = Cleaning(aliases, progress)
    with repository.load(
        source.name,
        report.sha256,
        clock(),
        mode=mode,
        window=window,
        skip_loaded=skip_loaded,
    ) as writer:
        # NOTE: a load keeps its quarantined rows in memory until it ends, so a
        # file of millions of broken rows needs memory in proportion.
        quarantined = list(cleaning.read(rows))
        if mode == "snapshot":
            _check_snapshot_records(source, quarantined)
        for row in quarantined:
            report.count(row)
        writer.add_quarantined(quarantined)
        _describe_source(source, report)

        # Only a snapshot load needs the file's span, for its default window.
        span = _StampSpan() if mode == "snapshot" else None
        batch: list[Record] = []
        written = 0
        if write_progress is not None:
            write_progress(0)
        for records in cleaning.people():
            report.count_records(records)
            if span is not None:
                span.add(records)
            batch.extend(records)
            if len(batch) >= _BATCH_ROWS:
                writer.add_records(batch)
                written += len(batch)
                batch = []
                if write_progress is not None:
                    write_progress(written)
        writer.add_records(batch)
        if span is not None:
            report.window = window or span.window()
        writer.finish(report, clock())
    logger.info(
        "loaded %s as load %s: %d read, %d loaded, %d new, %d quarantined, "
        "%d retired, %d revived",
        source.name,
        report.load_id,
        report.rows_read,
        report.rows_loaded,
        report.rows_inserted,
        report.rows_quarantined,
        report.rows_retired,
        report.rows_revived,
    )
    return report


class _StampSpan:
    """The first and last stamps of a file's main run of activity.

    This is the default snapshot window. The file's days split into runs
    where they are more than ISOLATION_GAP apart, as a person's do for the
    isolated_timestamp flag, and the run with the most rows is the window.
    Rows stamped months or years away from it, whether flagged or the only
    rows of a person, cannot stretch the window over, and retire,
    everything stored in between.
    """

    def __init__(self) -> None:
        # Rows, first stamp and last stamp of each UTC day.
        self.days: dict[dt.date, list] = {}

    def add(self, records: list[Record]) -> None:
        days = self.days
        for record in records:
            at = record[2]
            date = at.date()
            day = days.get(date)
            if day is None:
                days[date] = [1, at, at]
                continue
            day[0] += 1
            if at < day[1]:
                day[1] = at
            elif at > day[2]:
                day[2] = at

    def window(self) -> tuple[dt.datetime, dt.datetime] | None:
        runs: list[list[list]] = []
        previous = None
        for day in sorted(self.days):
            if previous is None or day - previous > ISOLATION_GAP:
                runs.append([])
            runs[-1].append(self.days[day])
            previous = day
        if not runs:
            return None
        # Of runs with as many rows, the latest wins, as the newest activity.
        main = max(reversed(runs), key=lambda run: sum(span[0] for span in run))
        return main[0][1], main[-1][2]


@_cyclic_gc_paused()
def clean_source(
    source: CheckinSource,
    write_checkin: Callable[[CheckIn], None],
    write_rejected: Callable[[Quarantined], None],
    *,
    aliases: ProjectAliases | None = None,
    progress: Callable[[int], None] | None = None,
    write_progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Clean every row of `source` without a database, passing each outcome on.

    The counts equal those of a load of the same file, except the stored
    ones, which need a database. `progress` and `write_progress` are called
    as by `ingest`.
    """
    report = LoadReport(source=source.name, sha256=source.sha256())
    rows = _checked_rows(source)
    cleaning = Cleaning(aliases, progress)
    for row in cleaning.read(rows):
        report.count(row)
        write_rejected(row)
    _describe_source(source, report)
    written = reported = 0
    if write_progress is not None:
        write_progress(0)
    for records in cleaning.people():
        report.count_records(records)
        for record in records:
            write_checkin(to_checkin(record))
        written += len(records)
        if write_progress is not None and written - reported >= _BATCH_ROWS:
            write_progress(written)
            reported = written
    return report


def _describe_source(source: CheckinSource, report: LoadReport) -> None:
    report.blank_lines = source.blank_lines
    report.extra_columns = list(source.extra_columns)


def check_source(source: CheckinSource) -> None:
    """Raise SourceError unless `source` opens and starts with a valid header."""
    rows = source.rows()
    try:
        next(rows, None)
    finally:
        rows.close()


def _check_snapshot_records(
    source: CheckinSource, quarantined: list[Quarantined]
) -> None:
    """Raise SourceError when a snapshot's file has records that cannot be split.

    A snapshot retires the stored rows that its file lacks. The rows inside a
    malformed record cannot be read, so their stored copies would be retired.
    """
    malformed = [row for row in quarantined if row.reason is Reason.MALFORMED_RECORD]
    if malformed:
        first = malformed[0]
        records = "record" if len(malformed) == 1 else "records"
        raise SourceError(
            f"{source.name}: {len(malformed):,} malformed {records}, the first on "
            f"line {first.line} ({first.detail}); a snapshot load would retire "
            "the stored copies of the rows in malformed records. Fix the file, or "
            "load it in append mode"
        )


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


def render_user_checkins(
    queries: CheckinQueries, query: CheckinQuery, *, with_version: bool = False
) -> RenderedPage:
    """Return one page of a user's check-ins as JSON, or raise UnknownUserError.

    With `with_version`, the page carries the data version its rows come from.
    """
    return queries.render_user_checkins(query, with_version=with_version)


def summarize(queries: CheckinQueries, query: SummaryQuery) -> list[SummaryGroup]:
    """Return a user's check-ins and hours per group, or raise UnknownUserError."""
    return queries.summarize(query)


def list_projects(queries: CheckinQueries) -> list[ProjectTotals]:
    """Return every project's totals, ordered by project name."""
    return queries.list_projects()


def export_checkins(
    queries: CheckinQueries, query: CheckinQuery, *, page_size: int = 1000
) -> Iterator[list[StoredCheckin]]:
    """Return every check-in that `query` selects after its position, in pages.

    The query's limit is replaced by `page_size`. The first page is read before
    this returns, so an unknown user raises UnknownUserError here. Each later
    page is read when the iterator reaches it, so no connection or transaction
    stays open between pages.
    """
    query = attrs.evolve(query, limit=page_size)
    page = queries.user_checkins(query)
    return _export_pages(queries, query, page)


def _export_pages(
    queries: CheckinQueries, query: CheckinQuery, page: CheckinPage
) -> Iterator[list[StoredCheckin]]:
    while True:
        if page.checkins:
            yield page.checkins
        if page.next_position is None:
            return
        query = attrs.evolve(query, after=page.next_position)
        page = queries.user_checkins(query)
