import pytest

from checkins.domain.projects import (
    AliasSuggestion,
    ProjectAliases,
    edit_distance,
    normalise_name,
    suggest_aliases,
)


def test_shipped_aliases_map_typos():
    """The shipped table maps known typos to their canonical names."""
    aliases = ProjectAliases.shipped()

    assert "opsandadmin" == aliases.canonical("opsandamin")
    assert "hiring" == aliases.canonical("hirng")
    assert "cultureandmanagement" == aliases.canonical("clutureandmanagement")
    assert "blogideas" == aliases.canonical("blog-ideas")


def test_shipped_aliases_leave_canonical_names():
    """A canonical or unknown name is no alias."""
    aliases = ProjectAliases.shipped()

    assert aliases.canonical("opsandadmin") is None
    assert aliases.canonical("workshop") is None


def test_every_shipped_alias_has_reason():
    """Each alias row explains itself."""
    aliases = ProjectAliases.shipped()

    assert all(alias.reason for alias in aliases.by_alias.values())


def test_aliases_reject_chains():
    """An alias pointing at another alias is an error in the table."""
    text = "alias,canonical,reason\nb,c,typo\na,b,typo\n"

    with pytest.raises(ValueError, match="point to other aliases"):
        ProjectAliases.from_csv(text)


def test_aliases_reject_self_mapping():
    """An alias equal to its canonical name is an error in the table."""
    with pytest.raises(ValueError, match="invalid project alias row"):
        ProjectAliases.from_csv("alias,canonical,reason\nA ,a,case\n")


def test_normalise_name_trims_and_folds():
    """Names are trimmed, inner white space folded and lower-cased."""
    assert "data strategy" == normalise_name("  Data\t Strategy ")


@pytest.mark.parametrize(
    ("first", "second", "distance"),
    [
        ("hiring", "hiring", 0),
        ("hirng", "hiring", 1),
        ("clutureandmanagement", "cultureandmanagement", 1),
        ("opsandamin", "opsandadmin", 1),
        ("workshop", "workshops", 1),
        ("abc", "xyz", 3),
        ("abcd", "abdc", 1),
        ("abcd", "badc", 2),
        ("short", "a much longer name", 3),
    ],
)
def test_edit_distance_counts_swaps_once(first, second, distance):
    """Insertions, deletions, substitutions and neighbour swaps cost one each.

    Distances above the limit of 2 are reported as 3.
    """
    assert min(distance, 3) == edit_distance(first, second, limit=2)


def test_suggest_aliases_pairs_rare_with_frequent():
    """A rare name one edit from a name ten times as frequent is suggested."""
    counts = {"workshops": 285, "workshop": 22, "hiring": 400, "hirring": 1}

    suggestions = suggest_aliases(counts, ProjectAliases())

    assert [
        AliasSuggestion("hirring", 1, "hiring", 400, 1),
        AliasSuggestion("workshop", 22, "workshops", 285, 1),
    ] == suggestions


def test_suggest_aliases_skips_numbered_projects():
    """Names that differ only in digits are distinct projects."""
    counts = {"project-10": 672, "project-01": 41}

    assert [] == suggest_aliases(counts, ProjectAliases())


def test_suggest_aliases_needs_frequency_ratio():
    """Two names of similar frequency are not suggested as typos."""
    counts = {"internal": 2, "internals": 2}

    assert [] == suggest_aliases(counts, ProjectAliases())


def test_suggest_aliases_skips_known_aliases():
    """Names already in the alias table are not suggested again."""
    counts = {"hiring": 400, "hirng": 1}

    assert [] == suggest_aliases(counts, ProjectAliases.shipped())


def test_suggest_aliases_short_names_need_one_edit():
    """Names of five letters or fewer are paired only at one edit."""
    counts = {"legal": 400, "lgl": 1, "lega": 1}

    suggestions = suggest_aliases(counts, ProjectAliases())

    assert ["lega"] == [suggestion.name for suggestion in suggestions]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Ops \t Team ", "ops team"),
        # Precomposed and combining forms of É are one name.
        ("N\u00c9D", "n\u00e9d"),
        ("ne\u0301d", "n\u00e9d"),
        # Zero-width space, byte order mark and soft hyphen are invisible.
        ("ned\u200b", "ned"),
        ("\ufeffned", "ned"),
        ("n\u00aded", "ned"),
        ("ned\u00a0team", "ned team"),
    ],
)
def test_normalise_name_folds_look_alike_names(text, expected):
    assert normalise_name(text) == expected
