import pytest

from gapwatch.core.demographics import age_band, ethnic_group, sex_group


@pytest.mark.parametrize(
    ("code", "group", "reason"),
    [
        ("A", "white", None),
        ("C", "white", None),
        ("D", "mixed", None),
        ("G", "mixed", None),
        ("H", "asian", None),
        ("L", "asian", None),
        ("M", "black", None),
        ("P", "black", None),
        ("R", "other", None),
        ("S", "other", None),
        ("a", "white", None),
        ("A1", "white", None),  # a local second character groups to its national code
        ("Z", "unknown", "ethnicity_not_stated"),
        ("99", "unknown", "ethnicity_not_stated"),
        (None, "unknown", "ethnicity_missing"),
        ("", "unknown", "ethnicity_missing"),
        ("Q", "unknown", "ethnicity_invalid"),  # no Q in the 2001 scheme
        ("ABC", "unknown", "ethnicity_invalid"),
    ],
)
def test_ethnic_category_rolls_up_to_five_groups_and_unknown(code, group, reason):
    assert ethnic_group(code) == (group, reason)


@pytest.mark.parametrize(
    ("code", "group", "reason"),
    [
        ("1", "male", None),
        ("2", "female", None),
        ("9", "indeterminate", None),
        ("X", "unknown", "sex_not_known"),
        ("x", "unknown", "sex_not_known"),
        ("M", "unknown", "sex_invalid"),
        (None, "unknown", "sex_missing"),
    ],
)
def test_person_stated_gender_code_maps_to_sex_groups(code, group, reason):
    assert sex_group(code) == (group, reason)


@pytest.mark.parametrize(
    ("age", "band", "reason"),
    [
        (0, "0-4", None),
        (4, "0-4", None),
        (5, "5-17", None),
        (17, "5-17", None),
        (18, "18-39", None),
        (39, "18-39", None),
        (40, "40-64", None),
        (64, "40-64", None),
        (65, "65-79", None),
        (79, "65-79", None),
        (80, "80+", None),
        (130, "80+", None),
        (131, "unknown", "age_invalid"),
        (-1, "unknown", "age_invalid"),
        (None, "unknown", "age_missing"),
    ],
)
def test_age_bands_have_inclusive_edges(age, band, reason):
    assert age_band(age) == (band, reason)
