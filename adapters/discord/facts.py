"""What the rules need, read from discord.py's objects: where, who, and how the bot is named.

`rules` works on plain data so it is tested without a connection; this is the one module that
reads that data out of messages and interactions.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.adapter import Place as ProfilePlace

from .rules import AccessPolicy, MessageFacts, Place

CHAT_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def bot_role_mentions(message: discord.Message, my_id: int) -> list[int]:
    """The roles mentioned in `message` that are the bot's own managed role."""
    return [
        role.id
        for role in message.role_mentions
        if role.tags is not None and role.tags.bot_id == my_id
    ]


def message_facts(
    message: discord.Message, my_id: int, *, role_mentioned: bool, thread_active: bool
) -> MessageFacts:
    """The facts of `message` for the rules; `thread_active` is what the adapter remembers."""
    channel = message.channel
    thread = channel if isinstance(channel, discord.Thread) else None
    guild_id = message.guild.id if message.guild is not None else None
    if guild_id is None:
        guild_id = getattr(channel, "guild_id", None)
    author = message.author
    return MessageFacts(
        place=Place(guild_id, channel.id, thread.parent_id if thread else None),
        author_id=author.id,
        author_is_bot=author.bot,
        is_self=author.id == my_id,
        mentioned=role_mentioned or any(user.id == my_id for user in message.mentions),
        role_ids=role_ids(author),
        in_thread=thread is not None,
        thread_owned_by_bot=thread is not None and thread.owner_id == my_id,
        thread_active=thread_active,
        is_chat=message.type in CHAT_TYPES,
    )


def permits(policy: AccessPolicy, interaction: discord.Interaction[Any]) -> bool:
    """Whether whoever used a command or clicked a button passes the allow-lists there."""
    user = interaction.user
    return policy.permits(place_of(interaction), user.id, role_ids(user))


def place_of(interaction: discord.Interaction[Any]) -> Place:
    """Where a command was used or a button clicked."""
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Place(interaction.guild_id, interaction.channel_id or 0, parent_id)


def role_ids(user: discord.User | discord.Member) -> tuple[int, ...]:
    """The roles someone holds where they are (none in a DM)."""
    return tuple(role.id for role in user.roles) if isinstance(user, discord.Member) else ()


def profile_place(place: Place, channel_id: int | None = None) -> ProfilePlace:
    """Where profile rules and `/profile` see a message: its guild and its channel, a
    thread's parent (`channel_id` when the adapter knows better: the channel a thread was
    just opened from); a DM is its own place."""
    channel = channel_id if channel_id is not None else (place.parent_id or place.channel_id)
    workspace = None if place.guild_id is None else str(place.guild_id)
    return ProfilePlace(workspace, str(channel), place.guild_id is None)


def role_names(user: discord.User | discord.Member) -> frozenset[str]:
    """Each of the member's roles by ID and by name (`[admins] discord_roles` takes either);
    none in a DM. @everyone is left out: naming it would make everyone an admin by accident."""
    if not isinstance(user, discord.Member):
        return frozenset()
    return frozenset(
        name for role in user.roles if not role.is_default() for name in (str(role.id), role.name)
    )


def manages_server(user: discord.User | discord.Member) -> bool:
    """Whether the member has Manage Server (computed from the guild's roles and owner)."""
    return isinstance(user, discord.Member) and user.guild_permissions.manage_guild
