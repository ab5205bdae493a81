"""Project names: normalisation and the aliases that map typos to canonical names."""

import csv
import importlib.resources
import io

import attrs


@attrs.frozen
class ProjectAlias:
    """A known misspelling of a project name and the name it stands for."""

    alias: str
    canonical: str
    reason: str


@attrs.frozen
class ProjectAliases:
    """The alias table, keyed by normalised alias."""

    by_alias: dict[str, ProjectAlias] = attrs.field(factory=dict)

    def canonical(self, project: str) -> str | None:
        """Return the canonical name for `project`, or None when it is no alias."""
        alias = self.by_alias.get(project)
        return alias.canonical if alias else None

    @classmethod
    def from_csv(cls, text: str) -> "ProjectAliases":
        """Build the table from CSV text with columns alias, canonical, reason."""
        by_alias = {}
        for row in csv.DictReader(io.StringIO(text)):
            alias = normalise_name(row["alias"])
            canonical = normalise_name(row["canonical"])
            if not alias or not canonical or alias == canonical:
                raise ValueError(f"invalid project alias row: {row!r}")
            by_alias[alias] = ProjectAlias(alias, canonical, row["reason"].strip())
        chained = sorted(a.alias for a in by_alias.values() if a.canonical in by_alias)
        if chained:
            raise ValueError(f"project aliases point to other aliases: {chained!r}")
        return cls(by_alias)

    @classmethod
    def shipped(cls) -> "ProjectAliases":
        """Load the alias table shipped with the package."""
        resource = importlib.resources.files(__package__) / "project_aliases.csv"
        return cls.from_csv(resource.read_text(encoding="utf-8"))


def normalise_name(text: str) -> str:
    """Trim `text`, fold inner runs of white space and lower-case it."""
    return " ".join(text.split()).lower()
