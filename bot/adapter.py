"""The seam: everything an adapter may use from the core, and nothing else.

Adapters import from this module alone (`tests/test_seam.py` enforces it), the way nonebot2's
adapters import only `nonebot.adapters`, so the core can change behind it without touching a
platform. The core never imports an adapter: each registers an `AdapterPlugin` under the
`memorybot.adapters` entry-point group in `pyproject.toml`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .commands import Command, CommandArgument
from .config import Config
from .messages import (
    ApprovalEnding,
    ApprovalOutlet,
    ApprovalRequest,
    Attachment,
    Decision,
    IncomingMessage,
    Place,
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
from .settings import origin as setting_origin
from .settings import read as read_setting
from .texts import GENERIC, NOT_HERE, SHUTTING_DOWN

if TYPE_CHECKING:
    from .core import Core

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
    "Place",
    "PlatformApi",
    "PlatformUnreachableError",
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
    "setting_origin",
    "snowflake",
]


def __getattr__(name: str) -> Any:
    # `Core` is looked up on first use, not imported above: the core pulls in the Agents SDK
    # (a second or more), and an adapter's plugin object must load cheaply for `--help`, the
    # admin commands and `check`, which never build a core. Adapters name it in annotations.
    if name == "Core":
        from .core import Core

        return Core
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PlatformUnreachableError(Exception):
    """The platform's servers could not be reached when the adapter started (refused, no
    route, no DNS answer, timed out). `python -m bot` prints it as its one line of error,
    naming the platform and the address tried, rather than taking it for a database fault."""

    def __init__(self, platform: str, address: str, cause: BaseException) -> None:
        # aiohttp's connection errors and OSError carry the system's words in `strerror`;
        # a bare timeout says nothing at all.
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        super().__init__(f"cannot reach {platform} at {address}: {reason}")
        self.platform = platform
        self.address = address


class Adapter(Protocol):
    """A connection to one platform that feeds its messages to the core."""

    name: str

    async def run(self) -> None:
        """Serve until the platform connection ends (or `close()` is called).

        Raises:
            ConfigError: A set-up problem the person running the bot can fix (a bad token).
            PlatformUnreachableError: The platform could not be reached at start-up.
        """
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


def _nothing_to_check(config: Config) -> None:
    """Settings with nothing to parse before `create`."""


def _as_typed(user_id: str) -> str:
    return user_id


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
    needs: str = ""
    """What to set for `configured` to hold (``DISCORD_TOKEN``), for the line `python -m bot
    serve` and `check` print when no platform is configured; empty for one never configured."""
    check_settings: Callable[[Config], None] = _nothing_to_check
    """Parse the platform's own settings as `create` would, raising `ConfigError` with one
    line; `python -m bot check` runs it without connecting anywhere."""
    user_id: Callable[[str], str] = _as_typed
    """The author ID the platform stores for a person, from their ID as someone would type it
    to `python -m bot forget-user` (the console's are ``console:NAME``; others are as typed)."""
