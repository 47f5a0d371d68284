"""The import rules between the package's layers (docs/design.md, "Layers"), checked on the source.

Bottom to top: errors/fsutil -> master, storage -> logical, physical, exhibitor, catalog, components -> jobs (the
service's core) -> api (its HTTP face) -> cli, local; ``catalog`` and ``physical`` stand side by side on ``storage``.
Below the face, only its route constants (``api/paths.py``) may be imported (the Admin Router's config, the
launcher's health check). ``testing`` holds fixtures: only the launcher (``local``) may import it from the
package, and only its data fixtures (seed, holder, load, trees), which import no launcher; the rest of
``testing`` (the fault scenarios, the ways in to the API that tests and benchmarks share) drives a local
cluster, so it sits above ``local``.
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
    """``master``, ``physical``, ... for a module in a sub-package; the module's name for a top-level one."""
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
    assert {"master", "storage", "local", "cli", "physical", "catalog", "testing"} <= {
        layer for layer, _ in MODULES.values()
    }
    assert "dcos_backup.local.spec" in MODULES[PACKAGE / "cli" / "endpoint.py"][1]  # imported in a function


def test_the_cli_imports_the_service_core_and_its_face():
    """What makes the two rules below bite: the console scripts do use both layers."""
    cli_imports = set().union(*(names for layer, names in MODULES.values() if layer == "cli"))
    assert any(within(name, "jobs") for name in cli_imports)
    assert any(within(name, "api") for name in cli_imports)


def test_the_service_core_never_imports_its_face():
    """jobs/ runs backups and restores; the HTTP face (api/) calls it, never the reverse."""
    assert offenders({"jobs"}, ("api", "cli", "local"), ()) == []


def test_below_the_face_only_its_route_constants_are_imported():
    bad = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path, (layer, names) in MODULES.items()
        # testing's drivers sit above the face (the data fixtures: below); the web console is part of the face
        if layer not in ("api", "console", "cli", "testing")
        for name in sorted(names)
        if within(name, "api") and not within(name, "api.paths")
    ]
    assert bad == []


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
    assert offenders({"physical"}, ("catalog",), ()) == []


@pytest.mark.parametrize(
    ("forbidden", "allowed_layers"),
    [
        (("local",), ("local", "cli", "testing")),  # the launcher is the top: only the CLI (and drivers) use it
        (("cli",), ("cli", "testing")),  # nothing below a console script imports one (drivers use its client)
        (("console",), ("console", "api")),  # the web console: only the service's wiring (api/run.py) mounts it
        (("testing",), ("testing", "local")),  # fixtures stay out of the product; the launcher exposes the seed
    ],
)
def test_upper_layers_are_not_imported_from_below(forbidden, allowed_layers):
    assert offenders(None, forbidden, allowed_layers) == []


DATA_FIXTURES = ("testing.seed", "testing.holder", "testing.load", "testing.trees")


def test_the_launcher_uses_only_the_data_fixtures_and_they_use_no_launcher():
    """``local`` -> ``testing.seed`` and ``testing.fault_scenarios`` -> ``local`` without a cycle."""
    from_local = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path, (layer, names) in MODULES.items()
        if layer == "local"
        for name in sorted(names)
        if within(name, "testing") and not within(name, *DATA_FIXTURES)
    ]
    data = {PACKAGE / (name.replace(".", "/") + ".py") for name in DATA_FIXTURES}
    from_data = [
        f"{path.relative_to(PACKAGE)} imports {n}"
        for path in data
        for n in MODULES[path][1]
        if within(n, "local", "cli", "api", "jobs")
    ]
    assert from_local == [] and from_data == []
