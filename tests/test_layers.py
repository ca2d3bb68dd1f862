"""The direction of imports inside the core, enforced: each layer depends only on those below.

`storage` is the bottom and imports nothing else of the bot; `memory` plans what the model
sees and never reaches up into `runs`; `runs` runs turns and never reaches into the core that
schedules them; `ops` watches and never steers; `admin` is the offline tool, which only the CLI
imports, so nothing on a turn's path can. Everything else sees `bot.storage` as one package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "bot.storage": ("bot.",),
    "bot.memory": ("bot.runs", "bot.core", "bot.commands", "bot.app", "bot.cli", "bot.ops"),
    "bot.runs": ("bot.core", "bot.commands", "bot.app", "bot.cli"),
    "bot.ops": ("bot.memory", "bot.runs", "bot.core", "bot.commands", "bot.app", "bot.cli"),
    "bot.tools": ("bot.memory", "bot.runs", "bot.core", "bot.commands", "bot.app", "bot.cli"),
}
"""Per package: what its modules may not import (beyond the package itself)."""
ADMIN_USERS = ("bot.admin", "bot.cli")
"""The only modules that may import `bot.admin`."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, relative imports resolved (`from . import x` gives both
    the package and `package.x`, as `x` may be either a name or a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


MODULES = sorted(BOT.rglob("*.py"))


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_every_layer_is_read() -> None:
    found = {module_name(path) for path in MODULES}
    for package in [*FORBIDDEN, "bot.admin"]:
        assert sum(within(module, package) for module in found) >= 3, package


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    name = module_name(path)
    bot_imports = {m for m in imports(path) if within(m, "bot")}
    for package, forbidden in FORBIDDEN.items():
        if within(name, package):
            wrong = {
                m
                for m in bot_imports
                if not within(m, package) and any(m.startswith(f) for f in forbidden)
            }
            assert not wrong, f"{name} ({package}) imports {sorted(wrong)}"
    if not any(within(name, user) for user in ADMIN_USERS):
        assert not {m for m in bot_imports if within(m, "bot.admin")}, f"{name} imports admin"
    if not within(name, "bot.storage"):
        inside = {m for m in bot_imports if m.startswith("bot.storage.")}
        # `from .storage import Store` reads as the package and a name in it, which is fine.
        modules = {m for m in inside if (BOT / "storage" / f"{m.split('.')[2]}.py").exists()}
        modules |= {m for m in inside if (BOT / "storage" / m.split(".")[2]).is_dir()}
        assert not modules, f"{name} reaches into the storage package: {sorted(modules)}"
