"""The load report: what happened to every row of a file."""

import collections

import attrs

from checkins.domain.model import CheckIn, Outcome


@attrs.define
class LoadReport:
    """Counts of a cleaning run by outcome, quarantine reason, fix, flag and format.

    Every row read is counted once, as loaded or as quarantined, so
    `rows_read == rows_loaded + rows_quarantined` always holds. Stamp formats
    count every row whose stamp parsed, quarantined rows included.
    """

    source: str = ""
    sha256: str = ""
    load_id: int | None = None
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_inserted: int = 0
    reasons: collections.Counter[str] = attrs.field(factory=collections.Counter)
    fixes: collections.Counter[str] = attrs.field(factory=collections.Counter)
    flags: collections.Counter[str] = attrs.field(factory=collections.Counter)
    formats: collections.Counter[str] = attrs.field(factory=collections.Counter)

    @property
    def rows_read(self) -> int:
        return self.rows_loaded + self.rows_quarantined

    def count(self, outcome: Outcome) -> None:
        """Add one outcome to the counts."""
        if isinstance(outcome, CheckIn):
            self.rows_loaded += 1
            self.formats[outcome.stamp_format.value] += 1
            for fix in outcome.fixes:
                self.fixes[fix.value] += 1
            for flag in outcome.flags:
                self.flags[flag.value] += 1
        else:
            self.rows_quarantined += 1
            self.reasons[outcome.reason.value] += 1
            if outcome.stamp_format is not None:
                self.formats[outcome.stamp_format.value] += 1

    def to_dict(self) -> dict:
        """Return the report as plain JSON-ready values, counts sorted by name."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "load_id": self.load_id,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "rows_inserted": self.rows_inserted,
            "rows_already_stored": self.rows_loaded - self.rows_inserted,
            "quarantined_by_reason": dict(sorted(self.reasons.items())),
            "fixes": dict(sorted(self.fixes.items())),
            "flags": dict(sorted(self.flags.items())),
            "formats": dict(sorted(self.formats.items())),
        }

    def to_text(self) -> str:
        """Return the report as aligned lines for a terminal."""
        lines = [
            f"source              {self.source}",
            f"load id             {self.load_id}",
            f"rows read           {self.rows_read:>9,}",
            f"rows loaded         {self.rows_loaded:>9,}",
            f"  newly stored      {self.rows_inserted:>9,}",
            f"  already stored    {self.rows_loaded - self.rows_inserted:>9,}",
            f"rows quarantined    {self.rows_quarantined:>9,}",
        ]
        for title, counts in (
            ("quarantined by reason", self.reasons),
            ("stamp formats", self.formats),
            ("fixes", self.fixes),
            ("flags", self.flags),
        ):
            if counts:
                lines.append(title)
                lines.extend(
                    f"  {name:<18}{count:>9,}" for name, count in sorted(counts.items())
                )
        return "\n".join(lines)
