import pytest

from checkins.domain.projects import ProjectAliases, normalise_name


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
