"""The load report: what happened to every row of a file."""

import collections
import datetime as dt
import operator

import attrs

from checkins.domain.cleaning import Record
from checkins.domain.model import Quarantined
from checkins.domain.projects import ProjectAliases, suggest_aliases


_STAMP = operator.itemgetter(2)
_PROJECT = operator.itemgetter(4)
_FORMAT = operator.itemgetter(5)
_FIXES = operator.itemgetter(7)
_FLAGS = operator.itemgetter(8)


@attrs.frozen
class StoredLoad:
    """One load in the history: its source, mode, times and counts."""

    id: int
    source: str
    sha256: str
    mode: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_inserted: int
    rows_retired: int
    rows_revived: int = 0


@attrs.define
class LoadReport:
    """Counts of a cleaning run by outcome, quarantine reason, fix, flag and format.

    Every row read is counted once, as loaded or as quarantined, so
    `rows_read == rows_loaded + rows_quarantined` always holds. Stamp formats
    count every row whose stamp parsed, quarantined rows included. Months
    count loaded rows by the UTC month of their stamp.
    """

    source: str = ""
    sha256: str = ""
    load_id: int | None = None
    mode: str = "append"
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_inserted: int = 0
    rows_retired: int = 0
    rows_revived: int = 0
    blank_lines: int = 0
    # The window of a snapshot load: the stamps between which stored rows the
    # file lacks are retired.
    window: tuple[dt.datetime, dt.datetime] | None = None
    extra_columns: list[str] = attrs.field(factory=list)
    reasons: collections.Counter[str] = attrs.field(factory=collections.Counter)
    fixes: collections.Counter[str] = attrs.field(factory=collections.Counter)
    flags: collections.Counter[str] = attrs.field(factory=collections.Counter)
    formats: collections.Counter[str] = attrs.field(factory=collections.Counter)
    months: collections.Counter[str] = attrs.field(factory=collections.Counter)
    projects: collections.Counter[str] = attrs.field(factory=collections.Counter)
    _suggestions: tuple | None = attrs.field(default=None, init=False, repr=False)

    @property
    def rows_read(self) -> int:
        return self.rows_loaded + self.rows_quarantined

    def count(self, outcome: Record | Quarantined) -> None:
        """Add one outcome to the counts."""
        if isinstance(outcome, Quarantined):
            self.rows_quarantined += 1
            self.reasons[outcome.reason.value] += 1
            if outcome.stamp_format is not None:
                self.formats[outcome.stamp_format.value] += 1
            return
        self.count_records([outcome])

    def count_records(self, records: list[Record]) -> None:
        """Add loaded records to the counts."""
        self.formats.update(map(_FORMAT, records))
        self.projects.update(map(_PROJECT, records))
        for stamp, count in collections.Counter(map(_STAMP, records)).items():
            self.months[f"{stamp.year:04d}-{stamp.month:02d}"] += count
        for fixes in filter(None, map(_FIXES, records)):
            self.fixes.update(fixes)
        for flags in filter(None, map(_FLAGS, records)):
            self.flags.update(flags)
        self.rows_loaded += len(records)

    def _suggest(self, aliases: ProjectAliases) -> list:
        # The search takes a while on large exports, and a load formats its
        # report more than once, so the result is kept until the counts change.
        key = (self.rows_loaded, id(aliases))
        if self._suggestions is None or self._suggestions[0] != key:
            self._suggestions = (key, suggest_aliases(self.projects, aliases))
        return self._suggestions[1]

    def _rows_already_stored(self) -> int | None:
        # A report without a load id comes from `clean`, which checks no row
        # against a database, so it has no count of rows already stored.
        if self.load_id is None:
            return None
        return self.rows_loaded - self.rows_inserted

    def to_dict(self, aliases: ProjectAliases | None = None) -> dict:
        """Return the report as plain JSON-ready values, counts sorted by name."""
        aliases = ProjectAliases.shipped() if aliases is None else aliases
        return {
            "source": self.source,
            "sha256": self.sha256,
            "load_id": self.load_id,
            # A report of `clean` has no load, so no mode either.
            "mode": None if self.load_id is None else self.mode,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "rows_inserted": self.rows_inserted,
            "rows_already_stored": self._rows_already_stored(),
            "rows_retired": self.rows_retired,
            "rows_revived": self.rows_revived,
            "window": (
                None
                if self.window is None
                else [stamp.isoformat().replace("+00:00", "Z") for stamp in self.window]
            ),
            "blank_lines": self.blank_lines,
            "extra_columns": list(self.extra_columns),
            "quarantined_by_reason": dict(sorted(self.reasons.items())),
            "fixes": dict(sorted(self.fixes.items())),
            "flags": dict(sorted(self.flags.items())),
            "formats": dict(sorted(self.formats.items())),
            "rows_per_month": dict(sorted(self.months.items())),
            "projects": dict(sorted(self.projects.items())),
            "alias_suggestions": [
                attrs.asdict(suggestion) for suggestion in self._suggest(aliases)
            ],
        }


def format_report(report: dict) -> str:
    """Format a report, as `LoadReport.to_dict` returns it, as aligned text."""
    lines = _format_outcomes(report)
    lines += _format_breakdowns(report)
    lines += _format_months(report["rows_per_month"])
    lines += _format_suggestions(report["alias_suggestions"])
    return "\n".join(lines)


def _format_outcomes(report: dict) -> list[str]:
    lines = [f"source              {report['source']}"]
    # A report of `clean` has no load, so it shows no stored counts.
    stored = report["load_id"] is not None
    if stored:
        lines += [
            f"load id             {report['load_id']}",
            f"mode                {report['mode']}",
        ]
    lines += [
        f"rows read           {report['rows_read']:>9,}",
        f"rows loaded         {report['rows_loaded']:>9,}",
    ]
    if stored:
        lines += [
            f"  newly stored      {report['rows_inserted']:>9,}",
            f"  already stored    {report['rows_already_stored']:>9,}",
        ]
    lines.append(f"rows quarantined    {report['rows_quarantined']:>9,}")
    if stored:
        lines.append(f"rows retired        {report['rows_retired']:>9,}")
        if report.get("rows_revived"):
            lines.append(f"rows current again  {report['rows_revived']:>9,}")
    if report.get("window"):
        low, high = report["window"]
        lines.append(f"snapshot window     {low} to {high}")
    if report["blank_lines"]:
        lines.append(f"blank lines skipped {report['blank_lines']:>9,}")
    if report["extra_columns"]:
        lines.append(f"ignored columns     {', '.join(report['extra_columns'])}")
    return lines


def _format_breakdowns(report: dict) -> list[str]:
    lines = []
    for title, key in (
        ("quarantined by reason", "quarantined_by_reason"),
        ("stamp formats", "formats"),
        ("fixes", "fixes"),
        ("flags", "flags"),
    ):
        if report[key]:
            lines.append(title)
            lines.extend(
                f"  {name:<22}{count:>9,}" for name, count in report[key].items()
            )
    return lines


def _format_months(months: dict[str, int]) -> list[str]:
    """Draw rows per month as bars, so that a stray year stands out."""
    if not months:
        return []
    lines = ["rows per month"]
    widest = max(months.values())
    for month, count in months.items():
        bar = "#" * max(1, round(40 * count / widest))
        lines.append(f"  {month}  {count:>9,}  {bar}")
    return lines


def _format_suggestions(suggestions: list[dict]) -> list[str]:
    if not suggestions:
        return []
    lines = ["possible project typos (review, then add to the alias file)"]
    lines.extend(
        f"  {s['name']} ({s['rows']:,} rows) -> {s['canonical']} "
        f"({s['canonical_rows']:,} rows)"
        for s in suggestions
    )
    return lines
