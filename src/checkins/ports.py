"""The interfaces the core needs from the outside world."""

import abc
import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager

from checkins.domain.model import Outcome, RawRow
from checkins.domain.queries import CheckinPage, CheckinQuery, UserTotals
from checkins.domain.report import LoadReport


class SourceError(Exception):
    """Raised when a source cannot be read as a check-in export at all."""


class CheckinSource(abc.ABC):
    """A file or stream of raw check-in rows."""

    name: str

    @abc.abstractmethod
    def sha256(self) -> str:
        """Return the hex SHA-256 of the source's bytes."""

    @abc.abstractmethod
    def rows(self) -> Iterator[RawRow]:
        """Yield the data rows; raise SourceError when the source is unreadable."""


class LoadWriter(abc.ABC):
    """Receives the outcomes of one load inside the repository's transaction."""

    @abc.abstractmethod
    def add(self, outcome: Outcome) -> None:
        """Stage one check-in or quarantined row."""

    @abc.abstractmethod
    def finish(self, report: LoadReport, finished_at: dt.datetime) -> tuple[int, int]:
        """Store the staged rows and the load; return its id and rows inserted.

        Rows whose key is already stored are not inserted again.
        """


class CheckinRepository(abc.ABC):
    """Where loads write check-ins, quarantined rows and the history of loads."""

    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Bring the schema up to date; return the names of migrations applied."""

    @abc.abstractmethod
    def load(
        self, source: str, sha256: str, started_at: dt.datetime
    ) -> AbstractContextManager[LoadWriter]:
        """Open a load as one transaction.

        The load is stored when the block exits normally after `finish`, and
        nothing of it is stored when the block raises.
        """


class CheckinQueries(abc.ABC):
    """Read-only queries over stored check-ins, for the HTTP API."""

    @abc.abstractmethod
    def list_users(self) -> list[UserTotals]:
        """Return every user's totals, ordered by user name."""

    @abc.abstractmethod
    def user_checkins(self, query: CheckinQuery) -> CheckinPage:
        """Return one page of a user's check-ins, ordered by stamp then id.

        Raises UnknownUserError when the user has no stored check-ins.
        """
