"""The core imports only the standard library and itself, and never reads the clock.

The statistics (``core/stats``) may also use NumPy and SciPy: quantile functions and the
SII simulation are numerical code, not I/O.
"""

import ast
import sys
from pathlib import Path

import gapwatch.core

CORE = Path(gapwatch.core.__file__).parent
FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "time_ns"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
}


NUMERICAL = {"numpy", "scipy"}


def _modules():
    return sorted(CORE.rglob("*.py"))


def _allowed(path: Path, top: str) -> bool:
    if top in sys.stdlib_module_names:
        return True
    return top in NUMERICAL and path.parent.name == "stats"


def test_core_imports_only_stdlib_and_itself():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "gapwatch" and not _allowed(path, top):
                    offenders.append(f"{path.name}: {name}")
                if top == "gapwatch" and not name.startswith("gapwatch.core"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_the_check_sees_the_statistics_modules():
    assert {"sii.py", "dsr.py", "report.py"} <= {p.name for p in _modules()}


def test_core_never_reads_the_clock():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in FORBIDDEN_CALLS:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
