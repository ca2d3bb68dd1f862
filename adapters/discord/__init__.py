"""The Discord adapter: channels, threads and DMs, slash commands, streamed replies.

discord.py owns the connection (gateway, resume, sharding, HTTP rate limits); `client` wires
its events to `adapter`, which turns them into neutral messages for the core. The rules
deciding when to answer and which thread a message belongs to live in `rules`, read out of
discord.py's objects by `facts`; text helpers are in `text`. Replies go out through `delivery`,
streamed by `stream` (the growing reply and its "Using …" line). Approval prompts and their
buttons are `prompts`, clicks and expiries `approvals`; slash commands are `commands`,
attachment downloads `files`, the counting of failed API calls `api_calls`, and the
`DISCORD_*` settings `settings`.

This module itself stays light: `PLUGIN` is loaded for every `python -m bot` command, even
`--help` and the admin commands, so discord.py and the adapter are imported only by `create`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.adapter import AdapterPlugin, Config

from .settings import SECRET_KEYS, TOKEN, DiscordSettings, configured

if TYPE_CHECKING:
    from bot.adapter import Core

    from .adapter import DiscordAdapter

with warnings.catch_warnings(), contextlib.suppress(ImportError):
    # discord.py imports the deprecated `audioop` for voice, which this bot never uses. Python
    # runs this file before any module of the package, so importing it here, quietly, leaves
    # nothing to warn about when a module of the package first imports discord.py.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import audioop  # noqa: F401

__all__ = ["PLUGIN", "DiscordAdapter", "create"]


def create(core: Core, config: Config, options: Mapping[str, str]) -> DiscordAdapter:
    """The adapter (see `adapter.create`), importing discord.py only now."""
    from .adapter import create as create_adapter

    return create_adapter(core, config, options)


def check_settings(config: Config) -> None:
    """Parse the `DISCORD_*` settings as `create` does (`python -m bot check`)."""
    DiscordSettings.from_config(config)


def __getattr__(name: str) -> Any:
    if name == "DiscordAdapter":
        from .adapter import DiscordAdapter

        return DiscordAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PLUGIN = AdapterPlugin(
    summary="serve Discord (needs DISCORD_TOKEN)",
    create=create,
    configured=configured,
    secret_keys=SECRET_KEYS,
    needs=TOKEN,
    check_settings=check_settings,
)
