"""Byar and Wilson primitives against PHE's reference cases (byars_wilson.csv).

The Byar rows test the raw approximation, including small counts that ``phe_rate``
would send to the exact method; bw13 is the negative lower limit that becomes missing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gapwatch.core.stats.poisson import byar_lower, byar_upper
from gapwatch.core.stats.proportion import wilson_lower, wilson_upper
from tests.conformance.conftest import Rows, assert_close, num

FILE = "byars_wilson.csv"
CASES = [f"bw{i:02d}" for i in range(1, 14)]


def test_every_case_in_the_file_is_run(phe_csv: Callable[[str], Rows]) -> None:
    assert [row["case_id"] for row in phe_csv(FILE)] == CASES


@pytest.mark.parametrize("case_id", CASES)
def test_limits_match_the_reference(phe_csv: Callable[[str], Rows], case_id: str) -> None:
    (row,) = [r for r in phe_csv(FILE) if r["case_id"] == case_id]
    x, level = float(row["x"]), float(row["confidence"])
    if row["function"] == "byars":
        lower, upper = byar_lower(x, level), byar_upper(x, level)
    else:
        n = float(row["n"])
        lower, upper = wilson_lower(x, n, level), wilson_upper(x, n, level)
    assert_close(lower, num(row["expected_lower"]), what=f"{case_id} lower")
    assert_close(upper, num(row["expected_upper"]), what=f"{case_id} upper")
