"""Pure text helpers for the Discord adapter: message size, mentions, thread titles.

Splitting and throttling are shared with the other platforms (`adapters.text`,
`adapters.streaming`).

Nothing here imports discord.py, so all of it is unit-tested without a connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.adapter import Surface

MAX_MESSAGE_CHARS = 2000
"""Discord's limit for one message's content."""
SURFACE = Surface(max_chars=MAX_MESSAGE_CHARS, command_prefix="/")
"""What Discord shows, as the core needs to know it."""


def strip_mentions(content: str, user_id: int, role_ids: Iterable[int] = ()) -> str:
    """The message text without mentions of the bot (as a user or by its managed role)."""
    patterns = [rf"<@!?{user_id}>", *(rf"<@&{role}>" for role in role_ids)]
    stripped = re.sub("|".join(patterns), " ", content)
    # Collapse only the gap a leading mention leaves, keeping the rest of the layout.
    return re.sub(r"[ \t]{2,}", " ", stripped).strip()


def thread_title(text: str, limit: int = 80) -> str:
    """A thread name from the message that starts it: its first line, shortened."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first or "Conversation"
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"
