"""The seam between the core and the platforms, enforced: each side imports only what it may."""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.adapter
from tests.support.imports import ROOT, imports, within

ADAPTERS = sorted((ROOT / "adapters").rglob("*.py"))
CORE = sorted((ROOT / "bot").rglob("*.py"))
PLATFORM_PACKAGES = {"adapters/discord", "adapters/slack"}
"""Packages the walk must reach, so a layout change cannot leave the checks reading nothing."""
PLATFORM_LIBRARIES = ("adapters", "discord", "slack_bolt", "slack_sdk", "aiohttp")
SERVES_HTTP = {
    ROOT / "bot" / "ops" / "health.py": "aiohttp",
    **{path: "aiohttp" for path in (ROOT / "bot" / "web").glob("*.py")},
}
"""Core modules that may use one of those libraries for something that is no platform: the
health and metrics server and the operator page are aiohttp's."""


def test_the_walks_read_every_package() -> None:
    packages = {str(path.parent.relative_to(ROOT)) for path in ADAPTERS}
    assert packages >= {"adapters", *PLATFORM_PACKAGES}
    assert len(ADAPTERS) >= 20
    assert len(CORE) >= 30
    # Reading means parsing: most adapter modules reach the core, and only through the seam.
    assert sum("bot.adapter" in imports(path) for path in ADAPTERS) >= 12


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_adapters_use_the_core_only_through_bot_adapter(path: Path) -> None:
    from_core = {m for m in imports(path) if within(m, "bot")}
    where = path.relative_to(ROOT)
    assert from_core <= {"bot.adapter"}, f"{where} reaches past the seam: {from_core}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_never_imports_a_platform(path: Path) -> None:
    allowed = SERVES_HTTP.get(path)
    platform = {
        m
        for m in imports(path)
        if m.split(".")[0] in PLATFORM_LIBRARIES and m.split(".")[0] != allowed
    }
    assert not platform, f"{path.relative_to(ROOT)} imports {platform}"


def test_the_seam_exports_what_it_names() -> None:
    missing = [name for name in bot.adapter.__all__ if not hasattr(bot.adapter, name)]
    assert not missing


@pytest.mark.parametrize(
    "path", sorted((ROOT / "tests").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_test_modules_share_helpers_through_tests_support_only(path: Path) -> None:
    others = {m for m in imports(path) if within(m, "tests") and _is_test_module(m)}
    assert not others, f"{path.relative_to(ROOT)} imports {others}: move it to tests/support/"


def _is_test_module(module: str) -> bool:
    leaf = module.rpartition(".")[2]
    return leaf.startswith("test_") or leaf == "conftest"
