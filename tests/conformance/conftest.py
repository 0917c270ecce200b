"""The PHE reference cases (../shared/reference/phe), copied into the test run.

They are never committed (GPL-3 fixtures of PHEindicatormethods): the session fixture
copies the folder from ``GAPWATCH_PHE_REFERENCE_DIR`` (default ``../shared/reference/phe``
beside the checkout) into a temporary directory, and every conformance test reads from
that copy. Missing reference data skips locally and fails in CI.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gapwatch.settings import repo_root
from tests.conftest import need

Rows = list[dict[str, str]]

# Worst error seen per test file and kind ("relative", "absolute", "of CI width") and the
# number of comparisons, printed at the end of the run: the conformance summary.
_RESULTS: dict[tuple[str, str], list[float]] = {}
_CURRENT = ["?"]


@pytest.fixture(autouse=True)
def _conformance_file(request: pytest.FixtureRequest) -> None:
    _CURRENT[0] = request.path.name


def record(kind: str, error: float) -> None:
    """Note one comparison's error for the summary."""
    entry = _RESULTS.setdefault((_CURRENT[0], kind), [0, 0.0])
    entry[0] += 1
    entry[1] = max(entry[1], error)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RESULTS:
        return
    terminalreporter.section("PHE conformance: comparisons and worst error")
    for (name, kind), (count, worst) in sorted(_RESULTS.items()):
        terminalreporter.write_line(f"{name:38} {kind:13} {int(count):6d}  {worst:.3g}")


def _source() -> Path:
    configured = os.environ.get("GAPWATCH_PHE_REFERENCE_DIR")
    if configured:
        return Path(configured)
    return repo_root().parent / "shared" / "reference" / "phe"


@pytest.fixture(scope="session")
def phe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _source()
    need((source / "README.md").is_file(), f"no PHE reference cases at {source}")
    target = tmp_path_factory.mktemp("phe") / "phe"
    shutil.copytree(source, target)
    return target


@pytest.fixture(scope="session")
def phe_csv(phe_dir: Path) -> Callable[[str], Rows]:
    """Read one reference CSV as a list of dict rows (empty cell = missing)."""

    def read(name: str) -> Rows:
        with (phe_dir / name).open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    return read


def num(cell: str) -> float | None:
    """A CSV cell as a float, or None when empty (missing)."""
    return float(cell) if cell.strip() else None


def assert_close(
    got: float | None, expected: float | None, rel: float = 1e-9, what: str = ""
) -> float:
    """Compare with relative tolerance ``rel`` (missing must match missing); returns the
    relative error so tests can report the worst case."""
    if expected is None:
        assert got is None, f"{what}: expected missing, got {got!r}"
        return 0.0
    assert got is not None, f"{what}: expected {expected!r}, got missing"
    err = abs(got - expected) / max(abs(expected), 1e-300) if expected != 0 else abs(got)
    record("relative", err)
    assert math.isclose(got, expected, rel_tol=rel, abs_tol=0 if expected else 1e-12), (
        f"{what}: got {got!r}, expected {expected!r} (relative error {err:.3g})"
    )
    return err
