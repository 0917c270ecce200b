"""What each publisher's download looks like: its columns and the headers they arrive under.

Publishers rename and truncate headers between releases, so each input is described by a
``Source``: the output column names with the publisher headers each may arrive under,
matched after ``normalise_header`` (case, spaces and punctuation ignored). Keeping every
alias table here means a new edition of a download is a change to this file alone;
``readers`` does the matching, the ``*_tables`` modules turn the rows into output files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gapwatch.core.errors import ConfigError

__all__ = [
    "AGES",
    "ETHNICITY",
    "ETHNIC_GROUPS",
    "ETR_ZIP_HINTS",
    "ICB_LOOKUP",
    "ICB_ONS_CODE",
    "IOD",
    "LSOA11_21",
    "LSOA21_CODE",
    "LSOA_EW_CODE",
    "POPULATION",
    "POSTCODES",
    "REGION_LOOKUP",
    "Column",
    "Source",
    "SourceError",
    "normalise_header",
]


class SourceError(ConfigError):
    """An input file cannot be used. The message names the file and, where it applies,
    the column and row."""


def normalise_header(raw: str) -> str:
    """``"LSOA code (2021)"`` -> ``"lsoa code 2021"``: case, punctuation and spacing go.

    Nomis bulk files may end a header with ``"; measures: Value"``; that suffix goes too.
    """
    text = raw.replace("\ufeff", "").casefold().replace("&", " and ")
    text = re.sub(r"[^0-9a-z]+", " ", text).strip()
    return re.sub(r" measures value$", "", text)


@dataclass(frozen=True, slots=True)
class Column:
    """An output column and the publisher headers it may arrive under."""

    name: str
    aliases: tuple[str, ...] = ()
    required: bool = True

    def keys(self) -> tuple[str, ...]:
        """Normalised names to look for, in order of preference."""
        return tuple(dict.fromkeys(normalise_header(a) for a in (self.name, *self.aliases)))


@dataclass(frozen=True, slots=True)
class Source:
    label: str
    columns: tuple[Column, ...]
    zip_hints: tuple[str, ...] = ()
    """Regexes that pick the right CSV out of a zip holding several."""
    wrong_edition: tuple[tuple[str, str], ...] = ()
    """(header, explanation): a header that means the user downloaded another edition."""


LSOA21_CODE = re.compile(r"E01\d{6}")
LSOA_EW_CODE = re.compile(r"[EW]01\d{6}")
ICB_ONS_CODE = re.compile(r"E54\d{6}")

_IOD_DOMAINS = (
    ("imd", ("Index of Multiple Deprivation (IMD)", "Index of Multiple Deprivation", "IMD")),
    ("income", ("Income",)),
    ("employment", ("Employment",)),
    ("education_skills_training", ("Education, Skills and Training",)),
    ("health_deprivation_disability", ("Health Deprivation and Disability",)),
    ("crime", ("Crime",)),
    ("barriers_housing_services", ("Barriers to Housing and Services",)),
    ("living_environment", ("Living Environment",)),
    ("sub_children_young_people", ("Children and Young People Sub-domain",)),
    ("sub_adult_skills", ("Adult Skills Sub-domain",)),
    ("sub_geographical_barriers", ("Geographical Barriers Sub-domain",)),
    ("sub_wider_barriers", ("Wider Barriers Sub-domain",)),
    ("sub_indoors", ("Indoors Sub-domain",)),
    ("sub_outdoors", ("Outdoors Sub-domain",)),
)
_IOD_MEASURES = (
    ("score", ("Score", "Score (rate)")),
    ("rank", ("Rank (where 1 is most deprived)", "Rank")),
    ("decile", ("Decile (where 1 is most deprived 10% of LSOAs)", "Decile")),
)

IOD = Source(
    label="IoD2025 File 7 (all ranks, scores, deciles)",
    columns=(
        Column("lsoa21_code", ("LSOA code (2021)", "LSOA21CD")),
        Column("lsoa21_name", ("LSOA name (2021)", "LSOA21NM")),
        Column("lad24_code", ("Local Authority District code (2024)", "LAD24CD")),
        Column("lad24_name", ("Local Authority District name (2024)", "LAD24NM")),
        *(
            Column(
                f"{domain}_{measure}",
                tuple(f"{label} {suffix}" for label in labels for suffix in suffixes),
                required=domain == "imd",
            )
            for domain, labels in _IOD_DOMAINS
            for measure, suffixes in _IOD_MEASURES
        ),
    ),
    zip_hints=(r"file_?7",),
    wrong_edition=(
        (
            "LSOA code (2011)",
            "This is an IoD2019 file (LSOA 2011); gapwatch needs IoD2025 File 7 (LSOA 2021)",
        ),
    ),
)

ICB_LOOKUP = Source(
    label="ONS LSOA (2021) to SICBL to ICB to Cancer Alliances to LAD (April 2024) lookup",
    columns=(
        Column("lsoa21_code", ("LSOA21CD",)),
        Column("lsoa21_name", ("LSOA21NM",)),
        Column("sicbl24_code", ("SICBL24CD",)),
        Column("sicbl24_ods_code", ("SICBL24CDH",)),
        Column("sicbl24_name", ("SICBL24NM",)),
        Column("icb24_code", ("ICB24CD",)),
        Column("icb24_ods_code", ("ICB24CDH",)),
        Column("icb24_name", ("ICB24NM",)),
        Column("lad24_code", ("LAD24CD",)),
        Column("lad24_name", ("LAD24NM",)),
    ),
    wrong_edition=tuple(
        (f"SICBL{year}CD", f"This is the {year} lookup; gapwatch's layout is April 2024 (SICBL24)")
        for year in ("22", "23", "25", "26")
    ),
)

REGION_LOOKUP = Source(
    label="ONS Sub ICB Location / ICB to NHS England (Region) (April 2024) lookup",
    columns=(
        Column("icb24_code", ("ICB24CD",), required=False),
        Column("icb24_ods_code", ("ICB24CDH",), required=False),
        Column("nhser_code", ("NHSER24CD",)),
        Column("nhser_ods_code", ("NHSER24CDH",)),
        Column("nhser_name", ("NHSER24NM",)),
    ),
)

LSOA11_21 = Source(
    label="ONS LSOA (2011) to LSOA (2021) to LAD (2022) lookup",
    columns=(
        Column("lsoa11_code", ("LSOA11CD", "F_LSOA11CD")),
        Column("lsoa11_name", ("LSOA11NM",)),
        Column("lsoa21_code", ("LSOA21CD",)),
        Column("lsoa21_name", ("LSOA21NM",)),
        Column("change_code", ("CHGIND",)),
        Column("lad22_code", ("LAD22CD",)),
        Column("lad22_name", ("LAD22NM",)),
    ),
)

AGES = tuple(f"age_{a}" for a in range(90)) + ("age_90_plus",)

POPULATION = Source(
    label="ONS mid-2019 LSOA population by single year of age (SAPE22DT2 sheet)",
    columns=(
        Column("lsoa11_code", ("LSOA Code", "LSOA11CD")),
        Column("lsoa11_name", ("LSOA Name", "LSOA11NM")),
        Column("lad19_code", ("LA Code (2019 boundaries)", "LAD19CD")),
        Column("lad19_name", ("LA name (2019 boundaries)", "LAD19NM")),
        Column("all_ages", ("All Ages",), required=False),
        *(Column(f"age_{a}", (str(a),)) for a in range(90)),
        Column("age_90_plus", ("90+", "90 plus")),
    ),
    wrong_edition=(
        (
            "LA Code (2021 boundaries)",
            "This looks like the mid-2020 release; gapwatch expects mid-2019 (SAPE22DT2)",
        ),
    ),
)

ETHNIC_GROUPS = (
    ("asian", "Asian, Asian British or Asian Welsh"),
    ("black", "Black, Black British, Black Welsh, Caribbean or African"),
    ("mixed", "Mixed or Multiple ethnic groups"),
    ("white", "White"),
    ("other", "Other ethnic group"),
)

ETHNICITY = Source(
    label="Census 2021 TS021 ethnic group, LSOA (Nomis bulk file census2021-ts021-lsoa.csv)",
    columns=(
        Column("lsoa21_code", ("geography code", "LSOA21CD")),
        Column("usual_residents_total", ("Ethnic group: Total: All usual residents",)),
        *(Column(f"ethnic_group_{k}", (f"Ethnic group: {label}",)) for k, label in ETHNIC_GROUPS),
    ),
    zip_hints=(r"-lsoa\.csv$",),
)

POSTCODES = Source(
    label="ONS Postcode Directory (ONSPD) or National Statistics Postcode Lookup",
    columns=(
        Column("postcode", ("pcds", "pcd", "pcd2", "pcd7", "pcd8", "postcode")),
        Column("lsoa21_code", ("lsoa21cd", "lsoa21")),
        Column("msoa21_code", ("msoa21cd", "msoa21"), required=False),
        Column("ward24_code", ("wd24cd",), required=False),
        Column("lat", ("lat", "latitude"), required=False),
        Column("lon", ("long", "lon", "longitude"), required=False),
    ),
    zip_hints=(r"(^|/)data/[^/]*_uk\.csv$", r"_uk\.csv$"),
)

ETR_ZIP_HINTS = (r"(^|/)etr\.csv$",)
"""The ODS trusts extract has no header, so it has no ``Source``: only where it sits in a zip."""
