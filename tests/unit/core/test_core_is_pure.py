"""The core imports only the standard library and itself, and never reads the clock."""

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


def _modules():
    return sorted(CORE.glob("*.py"))


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
                if top != "gapwatch" and top not in sys.stdlib_module_names:
                    offenders.append(f"{path.name}: {name}")
                if top == "gapwatch" and not name.startswith("gapwatch.core"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_core_never_reads_the_clock():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in FORBIDDEN_CALLS:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
