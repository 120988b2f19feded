"""The house rules a newcomer relies on when walking src/gridgate (docs/architecture.md).

Every module stays under 600 lines and every function under 80, so any room can be read in one
sitting. Declarative tables (a list of metric declarations, the route table) may run longer:
they are named here, each with what makes it a table rather than logic.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gridgate"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# (module path under src/gridgate, function name): why it is a table, not logic
DECLARATIVE_TABLES = {
    ("metrics.py", "__init__"): "one declaration per Prometheus metric",
    ("api/manage/routes.py", "operations"): "the management API's route table, one Op per route",
}


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_the_source_tree_is_where_the_rules_look() -> None:
    assert (SRC / "core" / "exchange").is_dir()
    assert len(_modules()) > 100


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(SRC)} has {lines} lines"


def test_no_function_is_over_80_lines_outside_declarative_tables() -> None:
    long = [
        f"{path.relative_to(SRC)}:{name} ({lines} lines)"
        for path in _modules()
        for name, lines in _functions(path)
        if lines > MAX_FUNCTION_LINES
        and (str(path.relative_to(SRC)), name) not in DECLARATIVE_TABLES
    ]
    assert long == []


def test_every_declared_table_still_exists() -> None:
    """An entry outlives its function only by mistake: the allowance would then cover nothing."""
    present = {
        (str(path.relative_to(SRC)), name) for path in _modules() for name, _ in _functions(path)
    }
    assert set(DECLARATIVE_TABLES) <= present
