"""``gapwatch spc`` as an analyst runs it: a CSV in, the chart as CSV out, icons on stderr."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import pytest

from gapwatch.settings import repo_root

GAPWATCH = str(repo_root() / ".venv" / "bin" / "gapwatch")
# NHSRplotthedots' vignettes/deviations.Rmd: 18 daily points with one spike.
SPIKE = [1, 2, 1, 2, 10, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1]


def _csv(tmp_path: Path, rows: list[str], header: str = "date,value") -> Path:
    path = tmp_path / "series.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _spike(tmp_path: Path) -> Path:
    return _csv(
        tmp_path,
        [
            f"2021-03-{22 + i:02d},{v}" if i < 10 else f"2021-04-{i - 9:02d},{v}"
            for i, v in enumerate(SPIKE)
        ],
    )


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GAPWATCH, "spc", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_spike_series_charts_as_the_package_does(tmp_path: Path) -> None:
    done = _run(str(_spike(tmp_path)))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(rows[0]) == [
        "date",
        "value",
        "mean",
        "lpl",
        "upl",
        "lower_2sigma",
        "upper_2sigma",
        "point_type",
        "rule",
    ]
    assert len(rows) == 18
    mean = 35 / 18
    for row in rows:
        assert float(row["mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["upl"]) == pytest.approx(mean + 2.66, rel=1e-12)
        assert float(row["lower_2sigma"]) == pytest.approx(mean - 2 * 2.66 / 3, rel=1e-12)
    assert (rows[4]["date"], rows[4]["point_type"], rows[4]["rule"]) == (
        "2021-03-26",
        "special_cause_improvement",
        "Above UCL",
    )
    assert {r["point_type"] for i, r in enumerate(rows) if i != 4} == {"common_cause"}
    assert "variation: common_cause" in done.stderr


def test_excel_limits_a_target_and_lower_is_better(tmp_path: Path) -> None:
    done = _run(
        str(_spike(tmp_path)), "--no-screen-outliers", "--target", "3", "--improvement", "decrease"
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert round(float(rows[0]["upl"]), 2) == 6.95 and round(float(rows[0]["lpl"]), 2) == -3.06
    assert rows[4]["point_type"] == "special_cause_concern"
    assert "assurance: inconsistent" in done.stderr


def test_rebase_from_stdin_gives_each_period_its_own_limits() -> None:
    lines = ["date,value,rebase"]
    lines += [f"2024-01-{d:02d},{1 + d % 2},0" for d in range(1, 14)]
    lines += [f"2024-01-{d:02d},{11 + d % 2},{int(d == 14)}" for d in range(14, 27)]
    done = _run("-", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [float(r["mean"]) for r in rows] == pytest.approx([20 / 13] * 13 + [149 / 13] * 13)
    # without the rebase the jump would be a special cause; with it both are stable
    assert {r["point_type"] for r in rows} == {"common_cause"}
    assert "trial limits" not in done.stderr  # 13 points in the latest period


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["2024-01-01,1", "2024-01-02,x"], "date,value", "line 3: value 'x' is not a number"),
        (["2024-01-01,1"], "day,value", "must name date and value"),
        (["01/02/2024,1"], "date,value", "line 2: date '01/02/2024' is not an ISO 8601 date"),
        (["2024-01-01,1", "2024-01-01,2"], "date,value", "2024-01-01 appears more than once"),
    ],
)
def test_bad_input_is_refused_with_the_line(
    tmp_path: Path, rows: list[str], header: str, message: str
) -> None:
    done = _run(str(_csv(tmp_path, rows, header)))
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_bad_options_are_refused() -> None:
    done = _run("-", "--fix-after", "5", stdin="date,value\n2024-01-01,1\n")
    assert done.returncode == 2 and "at least 12" in done.stderr
