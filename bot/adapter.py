"""The seam: everything an adapter may use from the core, and nothing else.

Adapters import from this module alone (`tests/test_seam.py` enforces it), the way nonebot2's
adapters import only `nonebot.adapters`, so the core can change behind it without touching a
platform. The core never imports an adapter: each registers an `AdapterPlugin` under the
`memorybot.adapters` entry-point group in `pyproject.toml`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .commands import Command, CommandArgument
from .config import Config
from .core import Core
from .messages import (
    ApprovalEnding,
    ApprovalOutlet,
    ApprovalRequest,
    Attachment,
    Decision,
    IncomingMessage,
    Reply,
    ReplyFile,
    ReplyKind,
    ReplySink,
    Surface,
    ToolRequest,
)
from .ops.metrics import PlatformApi
from .settings import (
    ConfigError,
    boolean,
    id_set,
    name_set,
    port,
    positive_float,
    snowflake,
)
from .settings import read as read_setting
from .texts import GENERIC, NOT_HERE, SHUTTING_DOWN

__all__ = [
    "GENERIC",
    "NOT_HERE",
    "SHUTTING_DOWN",
    "Adapter",
    "AdapterFactory",
    "AdapterPlugin",
    "ApprovalEnding",
    "ApprovalOutlet",
    "ApprovalRequest",
    "Attachment",
    "CliOption",
    "Command",
    "CommandArgument",
    "Config",
    "ConfigError",
    "Core",
    "Decision",
    "IncomingMessage",
    "PlatformApi",
    "Reply",
    "ReplyFile",
    "ReplyKind",
    "ReplySink",
    "Surface",
    "ToolRequest",
    "boolean",
    "id_set",
    "name_set",
    "port",
    "positive_float",
    "read_setting",
    "snowflake",
]


class Adapter(Protocol):
    """A connection to one platform that feeds its messages to the core."""

    name: str

    async def run(self) -> None:
        """Serve until the platform connection ends (or `close()` is called)."""
        ...

    async def close(self, grace: float) -> None:
        """Finish delivering replies under way for up to `grace` seconds, then disconnect."""
        ...

    async def problem(self) -> str | None:
        """Why the adapter cannot take messages right now (e.g. "not connected"), for
        `/readyz`; None when it can."""
        ...


class AdapterFactory(Protocol):
    """Builds an adapter; raises `ConfigError` (one clear line) when it cannot run.

    Args:
        core: The core that answers.
        config: The core's settings; `config.environment` holds the adapter's own variables.
        options: The values of the adapter's command-line options, by name.
    """

    def __call__(self, core: Core, config: Config, options: Mapping[str, str]) -> Adapter: ...


@dataclass(frozen=True)
class CliOption:
    """A command-line option an adapter takes (``python -m bot console --thread work``)."""

    name: str
    help: str
    default: str = ""


def _never(environment: Mapping[str, str]) -> bool:
    return False


@dataclass(frozen=True)
class AdapterPlugin:
    """What an adapter module registers: how to build it and what it needs from settings."""

    summary: str
    """One line for ``python -m bot --help``."""
    create: AdapterFactory
    configured: Callable[[Mapping[str, str]], bool] = _never
    """Whether the settings hold this platform's credentials, so it starts by default."""
    secret_keys: Sequence[str] = ()
    """Variables whose values are masked in every log line."""
    options: Sequence[CliOption] = ()
