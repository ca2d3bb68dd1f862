"""The seam between the core and the platforms.

The core never imports a platform module: adapters are found by name through the
`memorybot.adapters` entry-point group declared in `pyproject.toml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Protocol

from .config import Config, ConfigError
from .core import Core

ENTRY_POINT_GROUP = "memorybot.adapters"


class Adapter(Protocol):
    """A connection to one platform that feeds its messages to the core."""

    name: str

    async def run(self) -> None:
        """Serve until the platform connection ends (or `close()` is called)."""
        ...

    async def close(self) -> None:
        """Finish delivering replies already under way, then disconnect."""
        ...


class AdapterFactory(Protocol):
    """Builds an adapter; raises `ConfigError` (one clear line) when it cannot run."""

    def __call__(self, core: Core, config: Config, options: Mapping[str, str]) -> Adapter: ...


def available_adapters() -> list[str]:
    """Names of the installed adapters."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_adapter(name: str) -> AdapterFactory:
    """The factory registered for platform `name`."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            factory: AdapterFactory = ep.load()
            return factory
    known = ", ".join(available_adapters()) or "none"
    raise ConfigError(
        f"No adapter named {name!r} is installed (installed: {known}). "
        "Reinstall the package with `pip install -e .`."
    )
