"""Commands used outside a conversation's messages: slash commands and message shortcuts.

Typed commands (``!forget`` in a thread) are messages, and the core tells them apart; these
two arrive as their own payloads, each answered for the person who used it alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.adapter import NOT_HERE, Core, IncomingMessage, Place

from .delivery import SlackDelivery
from .lookups import SlackLookups
from .rules import (
    PLATFORM,
    AccessPolicy,
    channel_key,
    is_dm,
    shortcut_route,
    slash_command_thread_key,
)
from .stream import Destination

SHORTCUTS: Mapping[str, str] = {
    "forget_thread": "forget",
    "undo_last": "undo",
    "show_history": "history",
}
"""Message shortcut callback IDs (see slack-manifest.yml) and the command each one runs."""


class SlackCommands:
    """Runs slash commands and message shortcuts through the core.

    Args:
        core: The core that runs commands.
        delivery: Answers the person who used one.
        policy: The allow-lists, which apply to commands too.
        lookups: Whether the person administers the workspace (for `/profile NAME`).
    """

    def __init__(
        self, core: Core, delivery: SlackDelivery, policy: AccessPolicy, lookups: SlackLookups
    ) -> None:
        self._core = core
        self._delivery = delivery
        self._policy = policy
        self._lookups = lookups
        # Slash commands are written /forget; the help they show says so.
        self._slash_surface = dataclasses.replace(delivery.surface, command_prefix="/")

    async def slash_command(self, command: dict[str, Any], respond: AsyncRespond) -> None:
        """Run a slash command (already acknowledged) on its channel's or DM's own thread."""
        channel, user = str(command.get("channel_id") or ""), str(command.get("user_id") or "")
        if not self._policy.permits(channel, user):
            await respond(text=NOT_HERE, response_type="ephemeral")
            return
        thread_key = slash_command_thread_key(
            str(command.get("team_id") or ""), channel, command.get("channel_name")
        )
        name = str(command.get("command") or "").lstrip("/")
        args = str(command.get("text") or "").strip()
        team = str(command.get("team_id") or "")
        used = IncomingMessage(
            PLATFORM,
            thread_key,
            user,
            str(command.get("user_name") or user),
            text="",
            place=Place(team or None, channel, is_dm(channel)),
            author_admin=await self._lookups.administers(user),
        )
        reply = await self._core.run_command(used, name, args, self._slash_surface)
        text = await self._delivery.command_text(reply, channel, user)
        await respond(text=text, response_type="ephemeral")

    async def shortcut(self, shortcut: dict[str, Any], respond: AsyncRespond) -> None:
        """Run a message shortcut (already acknowledged) on the thread of its message."""
        channel = str((shortcut.get("channel") or {}).get("id") or "")
        user = str((shortcut.get("user") or {}).get("id") or "")
        team = str((shortcut.get("team") or {}).get("id") or shortcut.get("team_id") or "")
        if not self._policy.permits(channel, user):
            await respond(text=NOT_HERE, response_type="ephemeral")
            return
        target: dict[str, Any] = shortcut.get("message") or {}
        thread_key, reply_thread = shortcut_route(
            team, channel, target.get("ts"), target.get("thread_ts")
        )
        name = SHORTCUTS[str(shortcut.get("callback_id"))]
        used = IncomingMessage(
            PLATFORM,
            thread_key,
            user,
            str((shortcut.get("user") or {}).get("name") or user),
            text="",
            channel_key=channel_key(team, channel, dm=is_dm(channel)),
            place=Place(team or None, channel, is_dm(channel)),
            author_admin=await self._lookups.administers(user),
        )
        reply = await self._core.run_command(used, name, "", self._delivery.surface)
        text = await self._delivery.command_text(reply, channel, user)
        dest = Destination(channel, reply_thread, team, user)
        if not await self._delivery.ephemeral(dest, text):
            with contextlib.suppress(Exception):
                await respond(text=text, response_type="ephemeral")
