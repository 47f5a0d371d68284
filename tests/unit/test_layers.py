"""The import rules between the package's layers (docs/design.md, "Layers"), checked on the source.

Bottom to top: errors/fsutil -> master, storage -> zk, zkdata, exhibitor, catalog, components, service -> cli,
local; ``catalog`` and ``zkdata`` stand side by side on ``storage``.
``testing`` holds fixtures: only the launcher (``local``) may import it from the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dcos_backup

PACKAGE = Path(dcos_backup.__file__).parent


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


def layer_of(path: Path) -> str:
    """``master``, ``zkdata``, ... for a module in a sub-package; the module's name for a top-level one."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


MODULES = {path: (layer_of(path), imports_of(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, *packages: str) -> bool:
    return any(name == f"dcos_backup.{p}" or name.startswith(f"dcos_backup.{p}.") for p in packages)


def offenders(layers_bound: set[str] | None, forbidden: tuple[str, ...], allowed_layers: tuple[str, ...]) -> list:
    return [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path, (layer, names) in MODULES.items()
        if layer not in allowed_layers and (layers_bound is None or layer in layers_bound)
        for name in sorted(names)
        if within(name, *forbidden)
    ]


def test_the_walk_sees_the_package_and_imports_inside_functions():
    assert {"master", "storage", "local", "cli", "zkdata", "catalog", "testing"} <= {
        layer for layer, _ in MODULES.values()
    }
    assert "dcos_backup.local.cluster" in MODULES[PACKAGE / "cli" / "endpoint.py"][1]  # imported in a function


@pytest.mark.parametrize("layer", ["master", "storage"])
def test_master_and_storage_are_the_bottom_layer(layer):
    """master/ and storage/ import nothing of the package but errors, fsutil and themselves."""
    bad = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path, (layer_, names) in MODULES.items()
        if layer_ == layer
        for name in sorted(names)
        if name != "dcos_backup" and not within(name, "errors", "fsutil", layer)
    ]
    assert bad == []


def test_zkdata_stands_beside_catalog_not_on_it():
    """The physical tool keeps its archives in storage/ like the catalog does, and never imports the catalog."""
    assert offenders({"zkdata"}, ("catalog",), ()) == []


@pytest.mark.parametrize(
    ("forbidden", "allowed_layers"),
    [
        (("local",), ("local", "cli")),  # the launcher is the top: only the CLI may use it
        (("cli",), ("cli",)),  # nothing below a console script imports one
        (("testing",), ("testing", "local")),  # fixtures stay out of the product; the launcher exposes the seed
    ],
)
def test_upper_layers_are_not_imported_from_below(forbidden, allowed_layers):
    assert offenders(None, forbidden, allowed_layers) == []
