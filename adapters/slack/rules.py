"""When the Slack bot answers and which conversation a message belongs to, as plain data.

The adapter turns a Slack event into `EventFacts`; everything deciding what to do with it
lives here, free of slack-bolt, so each rule has a direct unit test (as Discord's `rules`).

* A mention in a channel: the answer goes in a thread under the mention, and that thread is
  the conversation (``slack:<team>:<channel>:<thread_ts>``). Later messages in a thread the bot
  is part of need no mention.
* A DM: top-level messages share one memory (``slack:<team>:<dm>:dm``) and are answered
  top-level; a thread inside the DM is a conversation of its own.
* Slash commands (Slack delivers them only outside threads) act on the channel's own memory
  (``slack:<team>:<channel>:channel``) or the DM's; message shortcuts act on the message's thread.

The bot's own messages never get here: bolt's `IgnoringSelfEvents` middleware drops them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PLATFORM = "slack"
DM_THREAD = "dm"
"""The thread part of the thread key shared by top-level messages in a DM."""
CHANNEL_THREAD = "channel"
"""The thread part of the thread key slash commands use in a channel."""
ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "bot_message"})
"""Message subtypes that are something someone said (not edits, joins, deletions...)."""


@dataclass(frozen=True)
class AccessPolicy:
    """The configured allow-lists; an empty list allows everyone (or everywhere)."""

    channels: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    def permits(self, channel: str, user: str) -> bool:
        """Whether `user` may use the bot in `channel`."""
        if self.users and user not in self.users:
            return False
        return not self.channels or channel in self.channels


@dataclass(frozen=True)
class EventFacts:
    """What the rules need to know about one `message` or `app_mention` event."""

    channel: str
    ts: str
    author: str
    """The person's user ID, or the bot ID of another app."""
    team: str = ""
    thread_ts: str | None = None
    subtype: str | None = None
    from_bot: bool = False
    dm: bool = False
    mentioned: bool = False
    """An `app_mention` event, or the text mentions the bot."""
    bot_in_thread: bool = False
    """The bot takes part in the thread (see `needs_thread_check`); False when unknown."""


@dataclass(frozen=True)
class Route:
    """Where a message goes: its thread key, the thread to answer in and its redelivery ID."""

    thread_key: str
    reply_thread: str | None
    """None for a top-level answer in a DM."""
    message_id: str


def thread_key(team: str, channel: str, thread: str) -> str:
    """The key of one Slack conversation (`IncomingMessage.thread_key`).

    Args:
        team: The workspace ID (``T...``).
        channel: The channel or DM ID.
        thread: The thread root's ``ts``, or `DM_THREAD` / `CHANNEL_THREAD`.
    """
    return f"{PLATFORM}:{team}:{channel}:{thread}"


def is_dm(channel: str, channel_type: str | None = None) -> bool:
    """Whether a channel is a one-to-one DM with the bot."""
    if channel_type is not None:
        return channel_type == "im"
    return channel.startswith("D")


def message_id(channel: str, ts: str) -> str:
    """One ID for a message however it arrives: `app_mention` and `message` events for one
    mention, and Slack's redeliveries of either, all share it."""
    return f"{channel}:{ts}"


def facts_from_event(
    event: Mapping[str, Any], *, bot_user: str, team: str, via_mention: bool
) -> EventFacts:
    """The facts of a `message` or `app_mention` event's payload.

    Args:
        event: The event as Slack sends it.
        bot_user: The bot's user ID, to spot mentions of it.
        team: The workspace the app is installed in (the event's own when empty).
        via_mention: The event is an `app_mention`.
    """
    text = str(event.get("text") or "")
    channel = str(event.get("channel") or "")
    return EventFacts(
        channel=channel,
        ts=str(event.get("ts") or ""),
        author=str(event.get("user") or event.get("bot_id") or ""),
        team=team or str(event.get("team") or ""),
        thread_ts=event.get("thread_ts"),
        subtype=event.get("subtype"),
        from_bot=bool(event.get("bot_id")) or event.get("subtype") == "bot_message",
        dm=is_dm(channel, event.get("channel_type")),
        mentioned=via_mention or mentions(text, bot_user),
    )


def needs_thread_check(facts: EventFacts) -> bool:
    """Whether the answer depends on the bot taking part in the thread (an API look-up)."""
    return facts.thread_ts is not None and not facts.dm and not facts.mentioned


def decide(facts: EventFacts, policy: AccessPolicy, *, reply_to_bots: bool) -> Route | None:
    """The route of a message the bot answers, or None when it is not for the bot.

    The bot answers every message in a DM, a mention anywhere (in a thread under it), and any
    message in a thread it takes part in; other bots only when `reply_to_bots`, and nobody
    outside the allow-lists.
    """
    if not facts.channel or not facts.ts or not facts.author:
        return None
    if facts.subtype not in ANSWERED_SUBTYPES:
        return None
    if facts.from_bot and not reply_to_bots:
        return None
    if not policy.permits(facts.channel, facts.author):
        return None
    if facts.dm:
        thread = facts.thread_ts or DM_THREAD
        reply_thread = facts.thread_ts
    elif facts.mentioned:
        thread = reply_thread = facts.thread_ts or facts.ts
    elif facts.thread_ts is not None and facts.bot_in_thread:
        thread = reply_thread = facts.thread_ts
    else:
        return None
    return Route(
        thread_key(facts.team, facts.channel, thread),
        reply_thread,
        message_id(facts.channel, facts.ts),
    )


def slash_command_thread_key(team: str, channel: str, channel_name: str | None) -> str:
    """The thread a slash command acts on: the channel's own, or the DM's."""
    return channel_key(team, channel, dm=channel_name == "directmessage" or is_dm(channel))


def channel_key(team: str, channel: str, *, dm: bool) -> str:
    """The thread key of a channel's (or DM's) own conversation, outside any thread."""
    return thread_key(team, channel, DM_THREAD if dm else CHANNEL_THREAD)


def shortcut_route(
    team: str, channel: str, ts: str | None, thread_ts: str | None
) -> tuple[str, str | None]:
    """(thread key, thread to answer in) for a message shortcut used on the message `ts`."""
    if thread_ts is None and is_dm(channel):
        return thread_key(team, channel, DM_THREAD), None
    thread = thread_ts or ts or ""
    return thread_key(team, channel, thread), thread


# ----- incoming text -------------------------------------------------------------------------

_ANGLE = re.compile(r"<([^<>\n]+)>")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}


def mention_of(user_id: str) -> re.Pattern[str]:
    """A pattern for Slack's encoded mention of `user_id` (``<@U123>`` or ``<@U123|name>``)."""
    return re.compile(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>")


def mentions(text: str, user_id: str) -> bool:
    """Whether `text` mentions `user_id`."""
    return bool(user_id) and mention_of(user_id).search(text) is not None


def readable_text(text: str, bot_user: str) -> str:
    """What someone wrote, as they saw it: Slack's markup resolved, its escaping undone.

    Slack sends message text with ``&``, ``<`` and ``>`` encoded (``&amp;``, ``&lt;``,
    ``&gt;``) and with links, mentions and channels as ``<...>`` markup. Mentions of the bot
    go; other markup becomes what the person saw (``@name``, ``#channel``, ``label (url)``);
    then the three entities are decoded, once, so ``3 < 5 && 7 > 2`` reaches the model as typed.
    """
    if bot_user:
        text = mention_of(bot_user).sub("", text)
    text = _ANGLE.sub(lambda m: _readable_markup(m.group(1)), text)
    text = re.sub(r"[ \t]{2,}", " ", text).strip().lstrip(":,").strip()
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def _readable_markup(inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):  # a person: <@U123> or <@U123|name>
        return f"@{label or target[1:]}"
    if target.startswith("#"):  # a channel: <#C123|general>
        return f"#{label or target[1:]}"
    if target.startswith("!"):  # <!here>, <!subteam^S1|@team>, <!date^...|fallback>
        special = target[1:]
        if label:
            return label
        return f"@{special}" if special in {"here", "channel", "everyone"} else ""
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    if label and label != target:
        return f"{label} ({target})"
    return target
