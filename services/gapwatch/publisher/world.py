"""The world the scenario draws from: reference data joined into ``ScenarioData``.

Loading and joining the reference directory (census residents onto 2021 LSOAs, trusts
with OHID catchment data) happens once per directory (``load_scenario_data`` caches it),
so the generator only reads precomputed tuples. Trust sizes are fitted here too: the
catchment files say where a trust's patients live, not how many it sees.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Final

from gapwatch.adapters.refdata_files import FILES, load_reference_data
from gapwatch.core.errors import ConfigError
from gapwatch.core.refdata import ReferenceData

__all__ = ["ScenarioData", "build_scenario_data", "load_scenario_data"]

_ETHNIC_COLUMNS: Final = tuple(
    f"ethnic_group_{g}" for g in ("white", "mixed", "asian", "black", "other")
)  # the order of scenario._ETHNIC_CODES


@dataclass(frozen=True, slots=True)
class ScenarioData:
    """Static tables the generator draws from, built once per reference directory.

    LSOAs are indexed 0..n-1; the per-LSOA tuples share that index.
    """

    codes: tuple[str, ...]
    """LSOA 2021 codes in England that have Census 2021 residents."""
    quintile: tuple[int, ...]
    """National IMD 2025 quintile, 1 = most deprived."""
    residents: tuple[int, ...]
    """Census 2021 usual residents: the weight for placing patients."""
    ethnic_cum: tuple[tuple[int, ...], ...]
    """Cumulative census counts White, Mixed, Asian, Black, Other (for ``bisect``)."""
    lsoas_of_icb: Mapping[str, list[int]]
    trust_catchment: Mapping[str, tuple[tuple[str, float], ...]]
    """Open trusts with OHID catchment data -> (ICB, share of patients from it)."""
    trust_size: Mapping[str, float]
    """Relative size of each trust, fitted so catchment flows reproduce ICB residents."""


@lru_cache(maxsize=4)
def load_scenario_data(refdata_dir: Path) -> ScenarioData:
    """Read the reference directory (``Settings.refdata.dir``) once per process."""
    ref = load_reference_data(refdata_dir, with_population=False)
    census = list(_csv_rows(refdata_dir / FILES["ethnicity"]))
    open_trusts = {
        r["org_code"] for r in _csv_rows(refdata_dir / FILES["trusts"]) if r["is_open"] == "True"
    }
    return build_scenario_data(ref, census, open_trusts)


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"the synthetic scenario needs {path}")
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def build_scenario_data(
    ref: ReferenceData, census: Iterable[Mapping[str, str]], open_trusts: set[str] | None = None
) -> ScenarioData:
    """Join census residents onto the 2021 LSOAs of ``ref``; keep open trusts with
    catchment data (all trusts with catchment when ``open_trusts`` is None)."""
    codes: list[str] = []
    quintile: list[int] = []
    residents: list[int] = []
    ethnic_cum: list[tuple[int, ...]] = []
    lsoas_of_icb: dict[str, list[int]] = defaultdict(list)
    for row in census:
        area = ref.areas.get(row["lsoa21_code"])
        people = int(row["usual_residents_total"])
        if area is None or area.lsoa21 != row["lsoa21_code"] or people <= 0:
            continue  # Welsh, or a 2011 code resolved to a 2021 one (the five groups sum
            # to the total in every row, PROVENANCE.md section 12)
        lsoas_of_icb[area.icb].append(len(codes))
        codes.append(area.lsoa21)
        quintile.append(area.imd_quintile)
        residents.append(people)
        ethnic_cum.append(tuple(accumulate(int(row[c]) for c in _ETHNIC_COLUMNS)))
    if not codes:
        raise ConfigError("no English LSOA 2021 has census residents in the reference data")
    catchment = {
        t.ods_code: t.catchment
        for t in ref.trusts.values()
        if t.catchment and (open_trusts is None or t.ods_code in open_trusts)
    }
    icb_people = {icb: float(sum(residents[i] for i in idx)) for icb, idx in lsoas_of_icb.items()}
    return ScenarioData(
        tuple(codes),
        tuple(quintile),
        tuple(residents),
        tuple(ethnic_cum),
        dict(lsoas_of_icb),
        catchment,
        _fit_trust_sizes(catchment, icb_people),
    )


def _fit_trust_sizes(
    catchment: Mapping[str, tuple[tuple[str, float], ...]],
    icb_people: Mapping[str, float],
    iterations: int = 100,
) -> dict[str, float]:
    """Trust sizes s so that sum over trusts of s x share(ICB) ~ ICB residents.

    OHID gives where each trust's patients come from, not how many it sees; picking
    trusts uniformly would give a small ICB served by many trusts too many patients.
    Multiplicative (EM / Richardson-Lucy) updates keep sizes positive and converge to
    the Poisson fit in well under 100 rounds.
    """
    size = dict.fromkeys(catchment, 1.0)
    for _ in range(iterations):
        fitted: dict[str, float] = defaultdict(float)
        for trust, shares in catchment.items():
            for icb, share in shares:
                fitted[icb] += size[trust] * share
        for trust, shares in catchment.items():
            total = sum(share for _, share in shares)
            gain = sum(
                share * icb_people.get(icb, 0.0) / fitted[icb]
                for icb, share in shares
                if fitted[icb] > 0
            )
            size[trust] *= gain / total if total > 0 else 0.0
    return size
