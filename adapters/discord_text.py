"""Pure helpers for the Discord adapter: memory keys, mentions, message splitting, throttling.

Nothing here imports discord.py, so all of it is unit-tested without a connection.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

MAX_MESSAGE_CHARS = 2000
"""Discord's limit for one message's content."""

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")


def session_key(guild_id: int | None, channel_id: int) -> str:
    """The memory key for a channel, thread or DM.

    A thread has its own channel ID, so "the channel the message is in" is exactly the
    conversation: a thread is its own session, a channel outside threads one session and a
    DM one session.

    Args:
        guild_id: The guild (server), or None for a DM.
        channel_id: The thread's ID inside a thread, otherwise the channel's (or DM's) ID.
    """
    return f"discord:{'dm' if guild_id is None else guild_id}:{channel_id}"


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


def split_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Split text into Discord messages of at most `limit` characters.

    Cuts fall between lines where possible, else between words, else anywhere. A cut inside a
    code fence closes the fence at the end of one part and reopens it (same language) at the
    start of the next, so every part renders as code. Blank parts are dropped, because
    Discord rejects empty messages.

    Args:
        text: The full text.
        limit: The longest part.

    Returns:
        The parts in order; ``[]`` for blank text.
    """
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    opener: str | None = None  # the fence line open at the end of `current`
    for piece in _pieces(text, max(1, limit // 2)):
        after = _fence_after(opener, piece, max(3, limit // 4))
        reserve = len(_closer(after)) + 1 if after else 0
        if current.strip() and len(current) + len(piece) + reserve > limit:
            parts.append(_close(current, opener))
            current = f"{opener}\n" if opener else ""
        current += piece
        opener = after
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


def _pieces(text: str, size: int) -> list[str]:
    """Lines (with their endings), long lines broken after whitespace into <= size pieces."""
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line) > size:
            cut = max(line.rfind(" ", 0, size), line.rfind("\t", 0, size)) + 1
            if cut <= 0:
                cut = size
            pieces.append(line[:cut])
            line = line[cut:]
        if line:
            pieces.append(line)
    return pieces


def _fence_after(opener: str | None, piece: str, longest: int) -> str | None:
    """The open fence line after `piece`, given the one open before it."""
    match = _FENCE.match(piece)
    if match is None:
        return opener
    line = piece.strip()
    if opener is None:
        # A very long fence line is cut short when reopened, so the reopened part still fits.
        return line[: min(100, longest)]
    marker = _closer(opener)
    if line.startswith(marker) and not line.lstrip(marker[0]):
        return None
    return opener


def _closer(opener: str) -> str:
    match = _FENCE.match(opener)
    return match.group(1) if match else "```"


def _close(part: str, opener: str | None) -> str:
    if opener is None:
        return part
    return f"{part if part.endswith(chr(10)) else part + chr(10)}{_closer(opener)}"


class ChannelThrottle:
    """Spaces writes (sends and edits) to each channel at least `interval` seconds apart.

    Discord limits writes per channel, so streaming replies in two channels must not slow each
    other down, while two replies in one channel share that channel's budget. A reply's *last*
    write may skip the spacing and use the burst Discord allows (5 writes per 5 seconds per
    channel), so a finished answer shows at once instead of up to `interval` later.
    """

    def __init__(
        self,
        interval: float,
        *,
        burst: int = 5,
        window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        capacity: int = 10_000,
    ) -> None:
        self._interval = interval
        self._burst = burst
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._capacity = capacity
        self._next: dict[int, float] = {}
        self._recent: dict[int, deque[float]] = {}

    @property
    def interval(self) -> float:
        return self._interval

    async def wait(self, channel_id: int, *, final: bool = False) -> None:
        """Wait for, and take, the next write slot for `channel_id`.

        The slot is taken only once the wait is over, so a cancelled wait costs nothing.

        Args:
            channel_id: The channel written to.
            final: The reply's last write: only the burst budget applies, not the spacing.
        """
        while True:
            now = self._clock()
            recent = self._recent.setdefault(channel_id, deque(maxlen=self._burst))
            if final:
                full = len(recent) == self._burst
                at = max(now, recent[0] + self._window) if full else now
            else:
                at = max(now, self._next.get(channel_id, now))
            if at <= now:
                break
            await self._sleep(at - now)
        recent.append(now)
        self._next[channel_id] = max(self._next.get(channel_id, now), now + self._interval)
        if len(self._next) > self._capacity:
            self._next = {k: v for k, v in self._next.items() if v > now}
            self._recent = {k: v for k, v in self._recent.items() if k in self._next}
