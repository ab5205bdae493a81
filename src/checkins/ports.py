"""The interfaces the core needs from the outside world."""

import abc
import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

from checkins.domain.cleaning import Record
from checkins.domain.model import Quarantined, RawRow
from checkins.domain.queries import (
    CheckinPage,
    CheckinQuery,
    ProjectTotals,
    RenderedPage,
    SummaryGroup,
    SummaryQuery,
    UserTotals,
)
from checkins.domain.report import LoadReport, StoredLoad


class SourceError(Exception):
    """Raised when a source cannot be read as a check-in export at all."""


class AlreadyLoadedError(Exception):
    """Raised when a load asked to skip loaded files meets one loaded before."""

    def __init__(self, source: str, sha256: str) -> None:
        super().__init__(f"{source}: already loaded (sha256 {sha256[:12]})")
        self.source = source
        self.sha256 = sha256


class CheckinSource(abc.ABC):
    """A file or stream of raw check-in rows.

    After `rows` has run, `extra_columns` names the columns it ignored and
    `blank_lines` counts the empty lines it skipped.
    """

    name: str
    extra_columns: Sequence[str] = ()
    blank_lines: int = 0

    @abc.abstractmethod
    def sha256(self) -> str:
        """Return the hex SHA-256 of the source's bytes."""

    @abc.abstractmethod
    def rows(self) -> Iterator[RawRow]:
        """Yield the data rows; raise SourceError when the source is unreadable."""


class LoadWriter(abc.ABC):
    """Receives the outcomes of one load inside the repository's transaction."""

    @abc.abstractmethod
    def add_records(self, records: list[Record]) -> None:
        """Store check-ins, all of the rows of the people they belong to at once.

        Records whose identity is already stored are not stored again.
        """

    @abc.abstractmethod
    def add_quarantined(self, rows: list[Quarantined]) -> None:
        """Store quarantined rows with their reasons and raw text."""

    @abc.abstractmethod
    def finish(self, report: LoadReport, finished_at: dt.datetime) -> None:
        """Record the load and fill in the report's load id and stored counts.

        A snapshot load first retires the current rows in its window that it
        did not contain.
        """


class CheckinRepository(abc.ABC):
    """Storage of loads: their check-ins, quarantined rows and history."""

    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Bring the schema up to date; return the names of migrations applied."""

    @abc.abstractmethod
    def load(
        self,
        source: str,
        sha256: str,
        started_at: dt.datetime,
        *,
        mode: str = "append",
        window: tuple[dt.datetime, dt.datetime] | None = None,
        skip_loaded: bool = False,
    ) -> AbstractContextManager[LoadWriter]:
        """Open a load as one transaction.

        The load is stored when the block exits normally after `finish`, and
        nothing of it is stored when the block raises. `mode` is "append" or
        "snapshot"; `window` bounds a snapshot's stamps, and defaults to the
        span of the file's main run of activity. With `skip_loaded`, a file whose
        SHA-256 a load stored before raises AlreadyLoadedError, checked after
        any other load has finished, so two runs over one folder load each
        file once.
        """

    @abc.abstractmethod
    def loaded_sha256s(self) -> set[str]:
        """Return the SHA-256 of every file loaded so far."""

    @abc.abstractmethod
    def list_loads(self) -> list[StoredLoad]:
        """Return the history of loads, oldest first."""

    @abc.abstractmethod
    def load_report(self, load_id: int | None = None) -> dict | None:
        """Return the stored report of a load, by default the latest one."""


class CheckinQueries(abc.ABC):
    """Read-only queries over current stored check-ins, for the HTTP API.

    Every method raises QueriesUnavailableError when the store cannot be read.
    """

    @abc.abstractmethod
    def list_users(self) -> list[UserTotals]:
        """Return every user's totals, ordered by user name."""

    @abc.abstractmethod
    def user_checkins(self, query: CheckinQuery) -> CheckinPage:
        """Return one page of a user's check-ins, ordered by stamp then id.

        Raises UnknownUserError when the user has no stored check-ins.
        """

    @abc.abstractmethod
    def render_user_checkins(
        self, query: CheckinQuery, *, with_version: bool = False
    ) -> RenderedPage:
        """Return the page that `user_checkins` returns, written as JSON.

        With `with_version`, the page carries the `data_version` of the data
        its rows were read from. Raises UnknownUserError when the user has no
        stored check-ins.
        """

    @abc.abstractmethod
    def summarize(self, query: SummaryQuery) -> list[SummaryGroup]:
        """Return a user's check-ins and hours per group, ordered by key.

        Groups without check-ins are left out. Raises UnknownUserError when the
        user has no stored check-ins, and InvalidTimeZoneError when the store
        does not know the query's time zone.
        """

    @abc.abstractmethod
    def list_projects(self) -> list[ProjectTotals]:
        """Return every project's totals, ordered by project name."""

    @abc.abstractmethod
    def data_version(self) -> int:
        """Return the id of the latest load, or 0 before the first load.

        It changes whenever a load commits, so it can tag cached responses.
        """

    @abc.abstractmethod
    def check(self, timeout: float | None = None) -> None:
        """Raise QueriesUnavailableError unless a query succeeds within `timeout` s.

        None means the queries' own timeout.
        """

    def pool_stats(self) -> dict[str, int]:
        """Return connection pool figures by name, or nothing without a pool."""
        return {}
