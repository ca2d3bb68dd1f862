"""The direction of imports inside the core, enforced: each layer depends only on those below.

`storage` is the bottom and imports nothing else of the bot; `memory` plans what the model
sees and never reaches up into `runs`; `runs` runs turns and never reaches into the core that
schedules them; `ops` and `tools` watch and serve and never steer; `admin` is the offline tool,
which only the CLI and the operator page (`web`, itself an operator's tool that never runs a
turn) import, so nothing on a turn's path can. Everything else sees `bot.storage`
as one package, and no modules import each other in a circle.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import ROOT, imports, module_name, within

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "bot.storage": ("bot",),
    "bot.memory": ("bot.runs", "bot.core", "bot.commands", "bot.app", "bot.cli", "bot.ops"),
    "bot.runs": ("bot.core", "bot.commands", "bot.app", "bot.cli"),
    "bot.ops": ("bot.memory", "bot.runs", "bot.core", "bot.commands", "bot.app", "bot.cli"),
    "bot.tools": ("bot.memory", "bot.runs", "bot.core", "bot.commands", "bot.app", "bot.cli"),
    "bot.web": ("bot.runs", "bot.core", "bot.commands", "bot.app", "bot.cli"),
}
"""Per package: what its modules may not import (beyond the package itself)."""
ADMIN_USERS = ("bot.admin", "bot.cli", "bot.web")
"""The only modules that may import `bot.admin`."""

MODULES = {
    module_name(path): path
    for folder in ("bot", "adapters")
    for path in (ROOT / folder).rglob("*.py")
}


def test_every_layer_is_read() -> None:
    for package in [*FORBIDDEN, "bot.admin", "adapters.discord", "adapters.slack"]:
        assert sum(within(module, package) for module in MODULES) >= 3, package
    assert {"bot.storage.sqlite.store", "bot.storage.postgres.store"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if within(m, "bot")))
def test_imports_point_down(module: str) -> None:
    ours = {m for m in imports(MODULES[module]) if within(m, "bot")}
    for package, forbidden in FORBIDDEN.items():
        if within(module, package):
            wrong = {
                m
                for m in ours
                if not within(m, package) and any(within(m, above) for above in forbidden)
            }
            assert not wrong, f"{module} ({package}) imports {sorted(wrong)}"
    if not any(within(module, user) for user in ADMIN_USERS):
        assert not {m for m in ours if within(m, "bot.admin")}, f"{module} imports bot.admin"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not within(m, "bot.storage")))
def test_storage_is_used_only_through_its_package(module: str) -> None:
    reached = {m for m in imports(MODULES[module]) if m.startswith("bot.storage.")}
    assert not reached, f"{module} reaches into storage: {sorted(reached)}"


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = {
        module: {m for m in imports(path) if m in MODULES and m != module}
        for module, path in MODULES.items()
    }
    # A package imports its own modules to re-export them; that is not a cycle of design.
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            graph[module] = {m for m in graph[module] if not within(m, module)}
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


def test_the_walk_resolves_relative_imports() -> None:
    # Reading means parsing: the core's own relative imports resolve to its modules.
    core: Path = MODULES["bot.core"]
    assert {"bot.commands", "bot.storage", "bot.runs.agent_runs"} <= imports(core)
