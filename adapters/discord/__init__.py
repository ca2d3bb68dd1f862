"""The Discord adapter: channels, threads and DMs, slash commands, streamed replies.

discord.py owns the connection (gateway, resume, sharding, HTTP rate limits); `client` wires
its events to `adapter`, which turns them into neutral messages for the core. The rules
deciding when to answer and which thread a message belongs to live in `rules`, read out of
discord.py's objects by `facts`; text helpers are in `text`. Replies go out through `delivery`,
streamed by `stream` (the growing reply and its "Using …" line). Approval prompts and their
buttons are `prompts`, clicks and expiries `approvals`; slash commands are `commands`,
attachment downloads `files`, the counting of failed API calls `api_calls`, and the
`DISCORD_*` settings `settings`.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # discord.py imports the deprecated `audioop` for voice, which this bot never uses. Python
    # runs this file before any module of the package, so the library is first imported here.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401

from bot.adapter import AdapterPlugin

from .adapter import DiscordAdapter, create
from .settings import SECRET_KEYS, configured

__all__ = ["PLUGIN", "DiscordAdapter", "create"]

PLUGIN = AdapterPlugin(
    summary="serve Discord (needs DISCORD_TOKEN)",
    create=create,
    configured=configured,
    secret_keys=SECRET_KEYS,
)
