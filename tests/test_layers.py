"""The package layering: every import points down, or sideways within a layer (ARCHITECTURE.md, Packages).

Read from the source with ``ast`` (every ``import`` and ``from ... import``, including those inside
functions), so nothing is imported and the test takes well under a second.
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Bottom first.  ``pipelines`` (the command-line jobs) is imported only by tests and benchmarks.
LAYERS = [
    ("eedi", "embeddings", "store", "prompts"),
    ("llm", "rankers"),
    ("generators", "judges", "trainers"),
    ("inference", "factory", "evaluation"),
    ("pipelines",),
]
LAYER = {package: i for i, layer in enumerate(LAYERS) for package in layer}

# Modules that moved in issue 12 (the old names are gone): a stale import is reported with its new place.
MOVED = {"trainers.splits": "eedi.splits", "trainers.texts": "rankers.texts"}

# pending: factory refactor -- (file or package, imported module) edges allowed until the synthetic-data
# engine's rewrite moves them, e.g. ("judges/roundtrip.py", "trainers.texts"); empty: nothing pending.
PENDING: set[tuple[str, str]] = set()


def packages() -> list[str]:
    """Top-level folders that hold a package, or that the layer list names and hold Python files."""
    found = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    found |= {name for name in LAYER if any((REPO / name).glob("*.py"))}
    return sorted(found)


def imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; relative imports resolve inside ``package``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out.append((node.lineno, package))
            elif node.module:
                out.append((node.lineno, node.module))
                out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def edges() -> list[tuple[str, int, str]]:
    """(file relative to the repository, line, imported module) for every import of another package."""
    known = set(packages())
    out = []
    for package in known:
        for path in sorted((REPO / package).rglob("*.py")):
            for line, module in imports(path, package):
                if module.split(".")[0] in known:
                    out.append((path.relative_to(REPO).as_posix(), line, module))
    return out


def pending(file: str, module: str) -> bool:
    return any((file == f or file.startswith(f + "/")) and (module == m or module.startswith(m + "."))
               for f, m in PENDING)


def test_every_package_has_a_layer():
    missing = [p for p in packages() if p not in LAYER]
    assert not missing, f"add {missing} to LAYERS in tests/test_layers.py (and ARCHITECTURE.md's table)"


def test_no_import_points_to_a_higher_layer():
    wrong = set()
    for file, line, module in edges():
        source, target = file.split("/")[0], module.split(".")[0]
        if source in LAYER and target in LAYER and LAYER[target] > LAYER[source] and not pending(file, module):
            wrong.add(f"{file}:{line}: {source} (layer {LAYER[source]}) imports {target} (layer {LAYER[target]})")
    assert not wrong, "imports pointing up:\n" + "\n".join(sorted(wrong))


def test_pipelines_is_imported_only_by_tests_and_benchmarks():
    wrong = {f"{file}:{line}: imports pipelines" for file, line, module in edges()
             if module.split(".")[0] == "pipelines" and not file.startswith("pipelines/")}
    assert not wrong, "\n".join(sorted(wrong))


def test_moved_modules_are_imported_from_their_new_place():
    wrong = {f"{file}:{line}: imports {old}; use {new}" for file, line, module in edges()
             for old, new in MOVED.items() if (module == old or module.startswith(old + ".")) and not pending(file, old)}
    assert not wrong, "\n".join(sorted(wrong))


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom . import sibling\n\ndef f():\n    from pipelines.args import positive\n")
    assert imports(source, "trainers") == [(1, "os"), (2, "trainers"), (5, "pipelines.args"),
                                           (5, "pipelines.args.positive")]


@pytest.mark.parametrize("package", [p for p in packages() if (REPO / p / "__init__.py").is_file()])
def test_pyproject_ships_every_package(package):
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert package in listed, f"pyproject.toml [tool.setuptools] packages lacks {package!r}"
