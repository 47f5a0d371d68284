"""The layer picture at the top of docs/design.md, checked on the source: every row of it, read from the document.

Each row of the picture names its units (a package such as ``jobs``, a top-level module such as ``errors``, or one
module placed on its own such as ``api.paths`` or ``testing.seed``); a module belongs to the most specific unit
that names it. A module imports only from its own unit and from the rows below its own, never from a unit beside
it in the same row: the rows above are off limits, and so are neighbours. Lazy imports (inside functions) count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import dcos_backup

PACKAGE = Path(dcos_backup.__file__).parent
DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def imports_of(path: Path) -> set[str]:
    """Every dcos_backup module ``path`` imports, at the top or inside functions (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; the rules below read absolute ones")
    return {name for name in found if name == "dcos_backup" or name.startswith("dcos_backup.")}


def module_name(path: Path) -> str:
    """``dcos_backup.api.paths`` for ``api/paths.py``; ``dcos_backup.api`` for ``api/__init__.py``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("dcos_backup", *(parts[:-1] if parts[-1] == "__init__" else parts)))


MODULES = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def picture_rows(text: str) -> list[tuple[int, list[str]]]:
    """The picture's rows, top first: ``(row number, units)``, from the lines ``  N │ units │ what they hold``
    (a line with no number goes on with the row above it)."""
    block = text.split("<!-- layers: checked by tests/unit/test_layers.py -->", 1)[1].split("```", 2)[1]
    rows: list[tuple[int, list[str]]] = []
    for line in block.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) != 3:
            continue
        if cells[0].isdigit():
            rows.append((int(cells[0]), cells[1].split()))
        elif not cells[0] and rows:
            rows[-1][1].extend(cells[1].split())
    return rows


ROWS = picture_rows(DESIGN.read_text())
UNIT_ROW = {unit: row for row, units in ROWS for unit in units}


def unit_of(name: str) -> str | None:
    """The most specific unit of the picture that ``name`` (a module, or a name imported from one) is in."""
    parts = name.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in UNIT_ROW:
            return ".".join(parts[:n])
    return None


def test_the_picture_is_read_and_places_every_module():
    assert [row for row, _ in ROWS] == sorted((row for row, _ in ROWS), reverse=True), "rows go top to bottom"
    assert len(UNIT_ROW) == sum(len(units) for _, units in ROWS), "a unit is named once"
    assert {"errors", "master", "storage", "logical", "physical", "catalog", "jobs", "api", "cli", "local"} <= set(
        UNIT_ROW
    )
    unplaced = [name for name in MODULES if name != "dcos_backup" and unit_of(name) is None]
    assert unplaced == []
    assert all(unit_of(f"dcos_backup.{unit}") == unit for unit in UNIT_ROW), "a unit the source does not have"


def test_the_walk_sees_imports_inside_functions():
    assert "dcos_backup.local.spec" in MODULES["dcos_backup.cli.endpoint"]  # imported in a function


def test_a_rule_that_is_broken_is_found():
    """The check bites: an import upwards and one between neighbours are both reported."""
    assert violations({"dcos_backup.jobs.x": {"dcos_backup.api.app"}}) == ["jobs.x imports dcos_backup.api.app"]
    assert violations({"dcos_backup.physical.x": {"dcos_backup.catalog.models"}}) != []
    assert violations({"dcos_backup.api.x": {"dcos_backup.jobs.service", "dcos_backup.api.paths"}}) == []


def violations(modules: dict[str, set[str]]) -> list[str]:
    found = []
    for module, names in modules.items():
        unit = unit_of(module)
        assert unit is not None, module
        for name in sorted(names):
            target = unit_of(name)
            if name == "dcos_backup" or name.startswith("dcos_backup.__") or target == unit:
                continue  # the package's root (its __version__) and the module's own unit
            if target is None or UNIT_ROW[target] >= UNIT_ROW[unit]:
                found.append(f"{module.removeprefix('dcos_backup.')} imports {name}")
    return found


@pytest.mark.parametrize("row", [row for row, _ in ROWS])
def test_each_row_imports_only_from_the_rows_below(row):
    modules = {
        name: names for name, names in MODULES.items() if name != "dcos_backup" and UNIT_ROW[unit_of(name)] == row
    }
    assert modules, f"row {row} holds no module"
    assert violations(modules) == []


def test_the_product_never_imports_the_fixtures_but_the_launcher_seeds_with_them():
    """Row 5 lets everything above it import the data fixtures; of the product only ``local`` may."""
    bad = [
        f"{name} imports {imported}"
        for name, names in MODULES.items()
        if unit_of(name) not in (None, "local") and not unit_of(name).startswith("testing")
        for imported in sorted(names)
        if imported.startswith("dcos_backup.testing")
    ]
    assert bad == []
    local = set().union(*(names for name, names in MODULES.items() if unit_of(name) == "local"))
    assert any(name.startswith("dcos_backup.testing.seed") for name in local)  # what makes the rule bite


def test_the_layer_picture_opens_the_design_document():
    """The picture comes first: before any other section of docs/design.md."""
    text = DESIGN.read_text()
    first_section = re.search(r"^## .*$", text, re.MULTILINE)
    assert first_section is not None and "Layers" in first_section.group(0)
