"""The Discord adapter: channels, threads and DMs, slash commands, streamed replies.

discord.py owns the connection (gateway, resume, sharding, HTTP rate limits); `adapter` turns
its events into neutral messages for the core and shows the replies. The rules deciding when to
answer live in `rules`, text helpers in `text`, the growing reply (and its "Using …" line) in
`stream`, approval prompts and their buttons in `approvals`, attachment downloads in `files`,
and the `DISCORD_*` settings in `settings`.
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
