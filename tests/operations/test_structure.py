"""The house rules a reader relies on: the loader's layer order, dbt's sources only in
staging, and the enums defined in two languages agreeing with each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from loader import report
from loader.connection import Connection
from loader.contract import STATUSES, TERMINAL_STATUSES
from tests.support import PROJECT_DIR
from tests.support.contract_rules import PRECEDENCE, TERMINAL

LOADER_DIR = PROJECT_DIR / "loader"
# The package's facade and entry point may import anything.
ENTRY_MODULES = frozenset({"__init__", "__main__"})


def layer_order() -> dict[str, int]:
    """Each loader module's layer, read from the one line in docs/architecture.md."""
    text = (PROJECT_DIR / "docs" / "architecture.md").read_text(encoding="utf-8")
    [line] = [line for line in text.splitlines() if line.startswith("`errors`") and "→" in line]
    return {
        module: index
        for index, layer in enumerate(line.split("→"))
        for module in re.findall(r"`(\w+)`", layer)
    }


def loader_imports(path: Path) -> set[str]:
    """The loader modules that a module imports (a module in C imports none)."""
    imported: set[str] = set()
    if path.suffix == ".c":
        return imported
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "loader":
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("loader."):
            imported.add(node.module.split(".")[1])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            imported.update(
                alias.name.split(".")[1] for alias in node.names if alias.name.startswith("loader.")
            )
    return imported


def upward_imports(modules: dict[str, Path], layers: dict[str, int]) -> list[str]:
    """Each import of a module from its own layer or a later one, as a readable line."""
    return [
        f"{name} (layer {layers[name]}) imports {imported} (layer {layers[imported]})"
        for name, path in sorted(modules.items())
        if name not in ENTRY_MODULES
        for imported in sorted(loader_imports(path))
        if layers[imported] >= layers[name]
    ]


def test_every_loader_module_has_a_layer_and_imports_only_from_layers_below() -> None:
    layers = layer_order()
    sources = [*LOADER_DIR.glob("*.py"), *LOADER_DIR.glob("*.c")]
    modules = {path.stem: path for path in sources}
    assert set(modules) - ENTRY_MODULES == set(layers), "place new modules in the docs' line"
    assert upward_imports(modules, layers) == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check above, given `fields` importing the API (and the contract, below it),
    reports the API import alone."""
    module = tmp_path / "fields.py"
    module.write_text("from loader.api import Ledger\nimport loader.contract\n")
    layers = layer_order()
    assert upward_imports({"fields": module}, layers) == [
        f"fields (layer {layers['fields']}) imports api (layer {layers['api']})"
    ]


def test_source_appears_only_in_staging() -> None:
    outside = [
        str(path.relative_to(PROJECT_DIR))
        for path in (PROJECT_DIR / "models").rglob("*.sql")
        if "source(" in path.read_text(encoding="utf-8") and "staging" not in path.parts
    ]
    assert outside == []


def macro_list(name: str) -> list[str]:
    """The list a dbt macro returns with `{{ return([...]) }}`."""
    [path] = (PROJECT_DIR / "macros").rglob(f"{name}.sql")
    match = re.search(r"return\((\[.*?\])\)", path.read_text(encoding="utf-8"), flags=re.S)
    assert match, f"{path} returns no list literal"
    return list(ast.literal_eval(match.group(1)))


def test_statuses_agree_in_python_dbt_and_the_independent_rules() -> None:
    assert list(STATUSES) == macro_list("pipeline_statuses")
    assert sorted(TERMINAL_STATUSES) == sorted(macro_list("terminal_statuses"))
    assert sorted(PRECEDENCE, key=PRECEDENCE.__getitem__) == list(STATUSES)
    assert TERMINAL == TERMINAL_STATUSES


@pytest.mark.pg15
def test_statuses_agree_with_the_raw_schemas_check_constraint(db: Connection) -> None:
    [(definition,)] = db.execute(
        "select pg_get_constraintdef(oid) from pg_constraint"
        " where conrelid = 'raw.run_events'::regclass and contype = 'c'"
        " and pg_get_constraintdef(oid) like '%%status%%'"
    ).fetchall()
    assert re.findall(r"'(\w+)'::text", definition) == list(STATUSES)


def test_health_labels_agree_between_the_report_and_dbt() -> None:
    assert list(report.HEALTH_ORDER) == macro_list("health_labels")
