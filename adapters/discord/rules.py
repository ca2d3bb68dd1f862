"""When the Discord bot answers and which conversation a message belongs to, as plain data.

The adapter turns a discord.py message into `MessageFacts`; everything deciding what to do
with it lives here, free of discord.py, so each rule has a direct unit test (as Slack's
`rules`). A thread has its own channel ID, so "the channel the message is in" is exactly the
conversation: a thread, a channel outside threads, or a DM (`thread_key`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def thread_key(guild_id: int | None, channel_id: int) -> str:
    """The key of a channel, thread or DM's conversation (`IncomingMessage.thread_key`).

    Args:
        guild_id: The guild (server), or None for a DM.
        channel_id: The thread's ID inside a thread, otherwise the channel's (or DM's) ID.
    """
    return f"discord:{'dm' if guild_id is None else guild_id}:{channel_id}"


@dataclass(frozen=True)
class Place:
    """Where a message or command was used."""

    guild_id: int | None
    """None in a DM."""
    channel_id: int
    """The channel, thread or DM channel."""
    parent_id: int | None = None
    """The channel a thread belongs to; None outside threads."""


@dataclass(frozen=True)
class AccessPolicy:
    """The configured allow-lists; an empty list allows everyone (or everywhere).

    Guilds and channels say *where* the bot works, users and roles *who* may use it. A DM is
    in no guild or listed channel, so once guilds or channels are restricted a DM is only
    served for users named in the user list. Roles exist only in guilds, so in a DM only the
    user list counts.
    """

    guilds: frozenset[int] = frozenset()
    channels: frozenset[int] = frozenset()
    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()

    def permits(self, place: Place, user_id: int, role_ids: Iterable[int] = ()) -> bool:
        """Whether `user_id` (holding `role_ids`) may use the bot at `place`."""
        return self._where(place, user_id) and self._who(user_id, role_ids)

    def _where(self, place: Place, user_id: int) -> bool:
        if place.guild_id is None:
            unrestricted = not self.guilds and not self.channels
            return unrestricted or place.channel_id in self.channels or user_id in self.users
        if self.guilds and place.guild_id not in self.guilds:
            return False
        return (
            not self.channels
            or place.channel_id in self.channels
            or (place.parent_id is not None and place.parent_id in self.channels)
        )

    def _who(self, user_id: int, role_ids: Iterable[int]) -> bool:
        if not self.users and not self.roles:
            return True
        return user_id in self.users or any(role in self.roles for role in role_ids)


@dataclass(frozen=True)
class MessageFacts:
    """What the rules need to know about one incoming message."""

    place: Place
    author_id: int
    author_is_bot: bool
    is_self: bool
    mentioned: bool
    """The bot was mentioned by name (or by its managed role); @everyone does not count."""
    role_ids: tuple[int, ...] = ()
    in_thread: bool = False
    thread_owned_by_bot: bool = False
    thread_active: bool = False
    """The bot was mentioned in, or has answered in, this thread since it started."""
    is_chat: bool = True
    """A normal or reply message, not a system notice (pins, joins, thread starts)."""


@dataclass(frozen=True)
class Route:
    """Whether the bot answers a message, and where (or why not)."""

    answer: bool
    open_thread: bool = False
    """Answer in a new thread started from the message, rather than in the channel."""
    reason: str = ""


def decide(
    facts: MessageFacts, policy: AccessPolicy, *, reply_to_bots: bool, open_threads: bool
) -> Route:
    """Whether and where to answer a message.

    The bot answers every message in a DM, every message in a thread it started or was
    mentioned in, and a mention anywhere else; never itself, other bots only when
    `reply_to_bots`, and nobody outside the allow-lists.
    """
    if facts.is_self:
        return Route(False, reason="own message")
    if not facts.is_chat:
        return Route(False, reason="system message")
    if facts.author_is_bot and not reply_to_bots:
        return Route(False, reason="from a bot")
    if facts.place.guild_id is None:
        addressed = True
    elif facts.in_thread:
        addressed = facts.mentioned or facts.thread_owned_by_bot or facts.thread_active
    else:
        addressed = facts.mentioned
    if not addressed:
        return Route(False, reason="not addressed to the bot")
    if not policy.permits(facts.place, facts.author_id, facts.role_ids):
        return Route(False, reason="outside the allow-lists")
    opens = open_threads and facts.place.guild_id is not None and not facts.in_thread
    return Route(True, open_thread=opens)
