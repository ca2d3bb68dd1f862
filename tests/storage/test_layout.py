"""The storage package's boundaries, enforced: it imports nothing else of the bot, its modules
import one another without cycles, and the rest of the bot uses it only through `bot.storage`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORAGE = ROOT / "bot" / "storage"
PACKAGE = "bot.storage"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


STORAGE_MODULES = {module_name(path): path for path in sorted(STORAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (type-checking and lazy imports too), with
    relative imports made absolute; `from package import name` counts `package.name` when that
    is a module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(
                f"{base}.{alias.name}"
                for alias in node.names
                if f"{base}.{alias.name}" in STORAGE_MODULES
            )
    return found


def test_the_walk_reads_every_storage_module() -> None:
    assert {"bot.storage.sqlite.store", "bot.storage.postgres.store"} <= set(STORAGE_MODULES)


@pytest.mark.parametrize("module", sorted(STORAGE_MODULES))
def test_storage_imports_nothing_else_of_the_bot(module: str) -> None:
    outside = {
        imported
        for imported in imports(STORAGE_MODULES[module])
        if imported.split(".")[0] == "bot" and not imported.startswith(PACKAGE)
    }
    assert not outside, f"{module} imports {outside}"


def test_storage_modules_import_one_another_without_cycles() -> None:
    graph = {
        module: {m for m in imports(path) if m in STORAGE_MODULES and m != module}
        for module, path in STORAGE_MODULES.items()
    }
    # A package imports its own modules to re-export them; that is not a cycle of design.
    for module in graph:
        if STORAGE_MODULES[module].name == "__init__.py":
            graph[module] = {m for m in graph[module] if not m.startswith(f"{module}.")}
    cycles: list[list[str]] = []
    finished: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycles.append([*trail[trail.index(module) :], module])
        elif module not in finished:
            for imported in sorted(graph[module]):
                visit(imported, [*trail, module])
            finished.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, f"import cycles: {cycles[0]}"


@pytest.mark.parametrize(
    "path",
    sorted(p for folder in ("bot", "adapters") for p in (ROOT / folder).rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_rest_of_the_bot_uses_storage_only_through_its_package(path: Path) -> None:
    if path.is_relative_to(STORAGE):
        return
    reached = {m for m in imports(path) if m.startswith(f"{PACKAGE}.")}
    assert not reached, f"{path.relative_to(ROOT)} reaches into storage: {reached}"
