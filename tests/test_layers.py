"""The boundaries the README's Development section draws, checked on the source: imports point one way, SQL is
storage's alone, the product never imports its test double, and every error is on the one tree."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from canonical.errors import PatientSyncError

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("canonical", "connectors", "mappings", "pipeline")


def _modules() -> dict[str, ast.Module]:
    found = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = ast.parse(path.read_text(), str(path))
    return found


MODULES = _modules()


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement, wherever it is (commands import inside functions)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


# (the layer, what it must not import)
FORBIDDEN = [
    ("canonical", ("connectors", "mappings", "pipeline", "sandbox")),
    ("pipeline.identity", ("connectors", "mappings", "sandbox", *(f"pipeline.{p}" for p in (
        "app", "bind", "config", "export", "kinds", "storage", "sync")))),
    ("pipeline.storage", ("connectors", "sandbox", "httpx", "pipeline.app", "pipeline.bind", "pipeline.export",
                          "pipeline.kinds", "pipeline.sync")),
    ("pipeline.export", ("pipeline.app", "pipeline.sync", "sandbox")),
    ("pipeline.sync", ("pipeline.app", "pipeline.export", "sandbox")),
    ("pipeline.kinds", ("pipeline.app", "pipeline.sync", "pipeline.storage", "sandbox")),
    ("connectors", ("pipeline", "sandbox")),
    ("mappings", ("pipeline", "sandbox", "connectors")),
]  # fmt: skip


@pytest.mark.parametrize("layer, forbidden", FORBIDDEN, ids=[layer for layer, _ in FORBIDDEN])
def test_imports_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, tree in MODULES.items()
        if _within(name, layer)
        for imported, _ in _imports(tree)
        if _within(imported, *forbidden)
    ]
    assert wrong == []


def test_only_the_demo_and_sandbox_commands_import_the_sandbox() -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, tree in MODULES.items()
        if not _within(name, "pipeline.app")
        for imported, _ in _imports(tree)
        if _within(imported, "sandbox")
    ]
    assert wrong == []


# What a module outside storage may take from SQLAlchemy: the types of what storage hands it, and its errors.
# Database URLs are read with pipeline.storage.urls.
SQL_TYPES = {"Engine", "Connection"}


def test_sql_lives_in_storage() -> None:
    wrong = []
    for name, tree in MODULES.items():
        if _within(name, "pipeline.storage") or not _within(name, "pipeline"):
            continue
        for imported, names in _imports(tree):
            if imported == "sqlalchemy" and set(names) - SQL_TYPES:
                wrong.append(f"{name} imports {sorted(set(names) - SQL_TYPES)} from sqlalchemy")
            elif _within(imported, "sqlalchemy", "sqlmodel") and imported not in ("sqlalchemy", "sqlalchemy.exc"):
                wrong.append(f"{name} imports {imported}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "exec_driver_sql", "scalar"):
                wrong.append(f"{name} line {node.lineno}: .{node.attr}")
    assert wrong == []


def test_every_error_the_product_raises_on_purpose_is_on_the_one_tree() -> None:
    wrong = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)) or value.__module__ != name:
                continue
            if attr.startswith("_"):
                continue  # a module's own signal between two of its functions, never raised past it
            if name != "canonical.errors" or not issubclass(value, PatientSyncError):
                wrong.append(f"{name}.{attr}")
    assert wrong == []
