"""The checks on built tables: within one file, and between files.

A column mapped to the wrong publisher header, an edited file or two inputs of different
vintages still parse; these checks are what catch them before anything is written.
Within-file checks raise ``SourceError``. Between files, only what the loader cannot
cope with raises; the rest become warnings on the ``BuildReport``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from gapwatch.adapters.refdata_files import FILES
from gapwatch.refdata.readers import Records
from gapwatch.refdata.sources import SourceError
from gapwatch.refdata.tables import Cell, Table

if TYPE_CHECKING:
    # build imports this module at run time; the types are only needed by mypy.
    from gapwatch.refdata.build import BuildReport, Inputs

__all__ = ["check_iod", "cross_check", "unique"]


def check_iod(table: Table, records: Records) -> None:
    """The IMD rank is 1..N without ties; every rank lies in 1..N (domain ranks may tie:
    equal scores share a rank); every decile is ceil(10 * rank / N), as on every row of
    the published IoD2025; the IMD score falls as the rank rises. A failure means a
    column was mapped wrongly or the file was edited."""
    where = f"{records.path.name} ({records.source.label})"
    n = len(table.rows)
    if n == 0:
        raise SourceError(f"{where}: no data rows")
    unique(table.column("lsoa21_code"), f"{where}: lsoa21_code")
    imd_ranks = sorted(int(v) for v in table.column("imd_rank"))
    if imd_ranks != list(range(1, n + 1)):
        tied = [r for r, k in Counter(imd_ranks).items() if k > 1][:3]
        raise SourceError(
            f"{where}: imd_rank is not 1..{n} without gaps or ties (e.g. {tied or 'gaps'})"
        )
    codes = table.column("lsoa21_code")
    for name in (h for h in table.header if h.endswith("_rank")):
        ranks = [int(v) for v in table.column(name)]
        if not 1 <= min(ranks) <= max(ranks) <= n:
            raise SourceError(f"{where}: {name} runs {min(ranks)}..{max(ranks)}, not 1..{n}")
        decile = name.removesuffix("_rank") + "_decile"
        if decile not in table.header:
            continue
        for code, rank, value in zip(codes, ranks, table.column(decile), strict=True):
            if value != math.ceil(10 * rank / n):
                raise SourceError(
                    f"{where}: {code} has {name} {rank} but {decile} {value} "
                    f"(expected {math.ceil(10 * rank / n)} of {n} areas)"
                )
    by_rank = sorted(zip(table.column("imd_rank"), table.column("imd_score"), strict=True))
    for (rank_a, score_a), (rank_b, score_b) in zip(by_rank, by_rank[1:], strict=False):
        if float(score_a) < float(score_b):
            raise SourceError(
                f"{where}: imd_score rises from {score_a} (rank {rank_a}) to {score_b} "
                f"(rank {rank_b}); rank 1 must have the highest score"
            )


def unique(values: Iterable[Cell], what: str) -> None:
    repeated = [v for v, k in Counter(values).items() if k > 1]
    if repeated:
        raise SourceError(f"{what} repeats: {', '.join(map(str, repeated[:5]))}")


def cross_check(report: BuildReport, tables: Sequence[Table], inputs: Inputs) -> None:
    """Checks between files. Every IoD LSOA needs an ICB (the loader drops those without);
    the rest only warn, because the loader copes."""
    by_name = {t.filename: t for t in tables}
    iod_codes = set(map(str, by_name[FILES["imd"]].column("lsoa21_code")))
    lookup = by_name[FILES["lsoa_icb"]]
    icb_codes = set(map(str, lookup.column("lsoa21_code")))
    if missing := sorted(iod_codes - icb_codes):
        raise SourceError(
            f"{len(missing)} LSOAs of {inputs.iod.name} are not in {inputs.icb_lookup.name} "
            f"(e.g. {', '.join(missing[:5])}): are both for LSOA 2021 and all of England?"
        )
    if extra := icb_codes - iod_codes:
        report.warn(f"{len(extra)} LSOAs of the ICB lookup have no IoD2025 row")
    pairs = by_name[FILES["lsoa11_21"]]
    if unlinked := iod_codes - set(map(str, pairs.column("lsoa21_code"))):
        report.warn(f"{len(unlinked)} IoD2025 LSOAs are not in the LSOA 2011->2021 lookup")
    population = by_name[FILES["population"]]
    english = {str(c) for c in population.column("lsoa11_code") if str(c).startswith("E")}
    if unmapped := english - set(map(str, pairs.column("lsoa11_code"))):
        report.warn(
            f"{len(unmapped)} English LSOA 2011 codes of the population file are not in the "
            "2011->2021 lookup; the loader will use them as 2021 codes"
        )
    report.population_england_wales = sum(int(v) for v in population.column("all_ages"))
    report.population_england = sum(
        int(row[5]) for row in population.rows if str(row[0]).startswith("E")
    )
    if ethnic := by_name.get(FILES["ethnicity"]):
        if uncovered := iod_codes - set(map(str, ethnic.column("lsoa21_code"))):
            report.warn(f"{len(uncovered)} IoD2025 LSOAs have no Census 2021 ethnic-group row")
    if (trusts := by_name.get(FILES["trusts"])) and trusts.rows:
        known = set(map(str, by_name[FILES["icbs"]].column("icb24_ods_code")))
        odd = {str(r[2]) for r in trusts.rows if r[2] and r[2] not in known}
        if odd:
            report.warn(f"trusts name ICBs not in the April 2024 table: {', '.join(sorted(odd))}")
        report.trusts_open = sum(1 for r in trusts.rows if r[16] == "True")
    icbs = by_name[FILES["icbs"]]
    report.lsoas = len(iod_codes)
    report.icbs = len(icbs.rows)
    report.regions = len(set(icbs.column("nhser_ods_code")))
