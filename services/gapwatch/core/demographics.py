"""Code lists and their groupings: NHS Data Dictionary codes to reporting groups.

Raw codes are kept on the event; these functions derive the breakdown groups. Anything
that is not a valid code maps to ``UNKNOWN`` so the encounter is still counted, and the
caller records a data-quality reason.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGE_BANDS",
    "ESP_BANDS",
    "ETHNIC_GROUPS",
    "MAX_AGE",
    "SEX_GROUPS",
    "UNKNOWN",
    "age_band",
    "esp_band",
    "ethnic_group",
    "sex_group",
]

UNKNOWN: Final = "unknown"

# ETHNIC CATEGORY (2001 census scheme) first character -> 5-group roll-up, as in the
# Data Dictionary table (docs/nhs-inequalities.md §4). Chinese (R) rolls up to "other"
# here, while Census 2021 counts Chinese under Asian: the denominators note this.
_ETHNIC_ROLLUP: Final[dict[str, str]] = {
    **dict.fromkeys("ABC", "white"),
    **dict.fromkeys("DEFG", "mixed"),
    **dict.fromkeys("HJKL", "asian"),
    **dict.fromkeys("MNP", "black"),
    **dict.fromkeys("RS", "other"),
}
ETHNIC_GROUPS: Final = ("white", "mixed", "asian", "black", "other", UNKNOWN)

# PERSON STATED GENDER CODE.
_SEX: Final[dict[str, str]] = {"1": "male", "2": "female", "9": "indeterminate", "X": UNKNOWN}
SEX_GROUPS: Final = ("male", "female", "indeterminate", UNKNOWN)

# Age bands for the age breakdown: children and young people (0-17, split at 5 for
# under-5s), working age in two halves, and the older groups NHS reporting separates.
AGE_BANDS: Final = ("0-4", "5-17", "18-39", "40-64", "65-79", "80+", UNKNOWN)
_AGE_EDGES: Final = ((5, "0-4"), (18, "5-17"), (40, "18-39"), (65, "40-64"), (80, "65-79"))
MAX_AGE: Final = 130

# The 19 age bands of the 2013 European Standard Population as PHE uses them (0-4 and 90+
# merged; docs/stats-methods.md §5). Age-standardised rates count events in these bands.
ESP_BANDS: Final = (*(f"{a}-{a + 4}" for a in range(0, 90, 5)), "90+")


def ethnic_group(code: str | None) -> tuple[str, str | None]:
    """Return (group, data-quality reason or None) for an ETHNIC CATEGORY code.

    ``Z`` (not stated) and ``99`` (not known) are legitimate codes that mean unknown; an
    unrecognised code is also unknown but flagged as invalid.
    """
    if code is None or code == "":
        return UNKNOWN, "ethnicity_missing"
    code = code.strip().upper()
    if code in ("Z", "99"):
        return UNKNOWN, "ethnicity_not_stated"
    if 1 <= len(code) <= 2:
        group = _ETHNIC_ROLLUP.get(code[0])
        if group is not None:
            return group, None
    return UNKNOWN, "ethnicity_invalid"


def sex_group(code: str | None) -> tuple[str, str | None]:
    """Return (group, data-quality reason or None) for a PERSON STATED GENDER CODE."""
    if code is None or code == "":
        return UNKNOWN, "sex_missing"
    group = _SEX.get(code.strip().upper())
    if group is None:
        return UNKNOWN, "sex_invalid"
    if group == UNKNOWN:
        return UNKNOWN, "sex_not_known"
    return group, None


def age_band(age: int | None) -> tuple[str, str | None]:
    """Return (band, data-quality reason or None) for an age in whole years."""
    if age is None:
        return UNKNOWN, "age_missing"
    if age < 0 or age > MAX_AGE:
        return UNKNOWN, "age_invalid"
    for edge, band in _AGE_EDGES:
        if age < edge:
            return band, None
    return "80+", None


def esp_band(age: int | None) -> str:
    """The ESP2013 band of an age in whole years, or ``UNKNOWN`` (then the event cannot be
    age-standardised; it still counts in every crude figure)."""
    if age is None or age < 0 or age > MAX_AGE:
        return UNKNOWN
    return ESP_BANDS[min(age // 5, len(ESP_BANDS) - 1)]
