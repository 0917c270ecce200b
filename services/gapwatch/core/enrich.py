"""Enrichment: where the patient lives and who they are, as reporting groups.

Residence resolves LSOA 2021 directly, LSOA 2011 through the ONS lookup, or a postcode
through the postcode lookup; the result gives the ICB of residence and the national IMD
decile and quintile. When residence is unknown the event still counts: it is attributed
to the provider trust's home ICB with IMD group ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gapwatch.core.demographics import UNKNOWN, age_band, ethnic_group, sex_group
from gapwatch.core.refdata import ReferenceData, normalise_postcode

__all__ = ["Profile", "enrich"]

UNKNOWN_ICB = "unknown"


@dataclass(frozen=True, slots=True)
class Profile:
    """The groups one event falls into, plus data-quality reasons (possibly empty)."""

    icb: str
    imd_quintile: str
    imd_decile: str
    ethnic_group: str
    age_band: str
    sex: str
    quality: tuple[str, ...]

    @property
    def ethnicity_unknown(self) -> bool:
        return self.ethnic_group == UNKNOWN

    @property
    def residence_unknown(self) -> bool:
        return self.imd_quintile == UNKNOWN


def enrich(record: Mapping[str, object], ref: ReferenceData) -> Profile:
    quality: list[str] = []
    area = None
    lsoa = record.get("lsoa_code")
    postcode = record.get("postcode")
    if isinstance(lsoa, str) and lsoa:
        area = ref.areas.get(lsoa.strip().upper())
        if area is None:
            quality.append("lsoa_unknown_code")
    elif isinstance(postcode, str) and postcode:
        code = ref.postcodes.get(normalise_postcode(postcode))
        area = ref.areas.get(code) if code else None
        if area is None:
            quality.append("postcode_unresolved")
    else:
        quality.append("residence_missing")

    if area is not None:
        icb, quintile, decile = area.icb, str(area.imd_quintile), str(area.imd_decile)
    else:
        trust = ref.trusts.get(str(record.get("provider_code")))
        icb = trust.home_icb if trust is not None and trust.home_icb else UNKNOWN_ICB
        quintile = decile = UNKNOWN

    ethnic, why = ethnic_group(_str_or_none(record.get("ethnic_category")))
    if why:
        quality.append(why)
    age = record.get("age_years")
    band, why = age_band(age if isinstance(age, int) else None)
    if why:
        quality.append(why)
    sex, why = sex_group(_str_or_none(record.get("sex")))
    if why:
        quality.append(why)
    return Profile(icb, quintile, decile, ethnic, band, sex, tuple(quality))


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
