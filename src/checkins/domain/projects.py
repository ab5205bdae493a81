"""Project names: normalisation and the aliases that map typos to canonical names."""

import collections
import csv
import importlib.resources
import io
import unicodedata

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
    """Trim `text`, fold inner runs of white space and lower-case it.

    Non-ASCII text also loses its format characters, such as the zero-width
    space and the byte order mark, and is put in Unicode normal form NFC. A
    name typed with a combining accent, or with an invisible character, is
    then the same name as the one it looks like.
    """
    if text.isascii():
        return " ".join(text.split()).lower()
    visible = "".join(
        character for character in text if unicodedata.category(character) != "Cf"
    )
    folded = " ".join(unicodedata.normalize("NFC", visible).split()).lower()
    # Lower-casing does not promise to keep text in NFC, so it is normalised again.
    return unicodedata.normalize("NFC", folded)


@attrs.frozen
class AliasSuggestion:
    """A rare unknown project name that looks like a misspelling of a frequent one."""

    name: str
    rows: int
    canonical: str
    canonical_rows: int
    distance: int


# A name is suggested as a typo of another when it is at most this many edits
# away (one edit for names of five letters or fewer) and the other name has at
# least FREQUENCY_RATIO times as many rows.
MAX_EDIT_DISTANCE = 2
FREQUENCY_RATIO = 10
# Only the most frequent names are candidates, which keeps the search fast on
# exports with many thousands of small numbered projects.
MAX_CANDIDATES = 200


def suggest_aliases(
    project_rows: dict[str, int], aliases: ProjectAliases
) -> list[AliasSuggestion]:
    """List rare names close to a frequent one, as candidates for the alias file.

    The frequent names are the MAX_CANDIDATES names with the most rows. Names
    that differ only in their digits (``project-01``, ``project-10``)
    are numbered projects, not typos, and are never paired. Suggestions are
    for a human to review and are never applied.
    """
    frequent = dict(
        sorted(project_rows.items(), key=lambda item: (-item[1], item[0]))[
            :MAX_CANDIDATES
        ]
    )
    # Two names within two edits of each other share a string that at most
    # two deletions from each reach, so only names sharing one are compared.
    by_deletion: dict[str, list[str]] = collections.defaultdict(list)
    for name in frequent:
        for variant in _deletions(name, MAX_EDIT_DISTANCE):
            by_deletion[variant].append(name)

    suggestions = []
    for name, rows in sorted(project_rows.items()):
        if name in aliases.by_alias:
            continue
        limit = 1 if len(name) <= 5 else MAX_EDIT_DISTANCE
        stripped = _strip_digits(name)
        best = None
        candidates = {
            candidate
            for variant in _deletions(name, limit)
            for candidate in by_deletion.get(variant, ())
        }
        for candidate in sorted(candidates):
            candidate_rows = frequent[candidate]
            if candidate_rows < FREQUENCY_RATIO * rows:
                continue
            if _strip_digits(candidate) == stripped:
                continue
            distance = edit_distance(name, candidate, limit)
            if distance > limit:
                continue
            if best is None or (distance, -candidate_rows) < (
                best.distance,
                -best.canonical_rows,
            ):
                best = AliasSuggestion(name, rows, candidate, candidate_rows, distance)
        if best is not None:
            suggestions.append(best)
    return suggestions


def _deletions(name: str, depth: int) -> set[str]:
    """Return `name` and every string made by deleting up to `depth` characters."""
    found = {name}
    level = {name}
    for _ in range(depth):
        level = {
            word[:index] + word[index + 1 :]
            for word in level
            for index in range(len(word))
        }
        found |= level
    return found


def _strip_digits(name: str) -> str:
    return "".join(character for character in name if not character.isdigit())


def edit_distance(first: str, second: str, limit: int) -> int:
    """Return the edit distance counting adjacent swaps as one edit, or limit + 1.

    This is the optimal string alignment distance: insertions, deletions,
    substitutions and transpositions of neighbours each cost one.
    """
    if abs(len(first) - len(second)) > limit:
        return limit + 1
    before: list[int] | None = None
    previous = list(range(len(second) + 1))
    for i, left in enumerate(first, start=1):
        current = [i] + [0] * len(second)
        for j, right in enumerate(second, start=1):
            cost = 0 if left == right else 1
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost
            )
            if (
                before is not None
                and i > 1
                and j > 1
                and left == second[j - 2]
                and first[i - 2] == right
            ):
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return min(previous[-1], limit + 1)
