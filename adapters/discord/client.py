"""discord.py's client, with the adapter's handlers wired in; no logic of its own."""

from __future__ import annotations

from typing import Any, Protocol

import discord
from discord import app_commands

from bot.adapter import Decision

from .prompts import ApprovalButton
from .settings import DiscordSettings


class Handlers(Protocol):
    """What the client calls on the adapter."""

    async def register_commands(self) -> None: ...

    def announce(self) -> None: ...

    async def on_message(self, message: discord.Message) -> None: ...

    async def on_approval_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None: ...


class Client(discord.Client):
    """discord.py's client calling the adapter's handlers."""

    def __init__(self, handlers: Handlers, **options: Any) -> None:
        super().__init__(**options)
        self.handlers = handlers
        self.tree: app_commands.CommandTree[Client] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        # Approval buttons are matched by their custom ID's template, so prompts posted before
        # a restart keep working without being reloaded (see `prompts`).
        self.add_dynamic_items(ApprovalButton)
        await self.handlers.register_commands()

    async def on_ready(self) -> None:
        self.handlers.announce()

    async def on_message(self, message: discord.Message) -> None:
        await self.handlers.on_message(message)

    async def on_approval_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        """Called by `ApprovalButton` when someone clicks Approve or Reject."""
        await self.handlers.on_approval_click(interaction, decision, approval_id)


class ShardedClient(Client, discord.AutoShardedClient):
    """The same client on discord.py's own sharding: one gateway connection per shard."""


def client_for(handlers: Handlers, settings: DiscordSettings, **options: Any) -> Client:
    """The client for `settings`: unsharded unless `DISCORD_SHARD_COUNT` is set."""
    if not settings.sharded:
        return Client(handlers, **options)
    shard_ids = None if settings.shard_ids is None else list(settings.shard_ids)
    return ShardedClient(handlers, shard_count=settings.shard_count, shard_ids=shard_ids, **options)
