"""The streamed Discord reply's own part: the tool's status line."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from adapters.discord.stream import DiscordReply, tool_status
from adapters.discord.text import MAX_MESSAGE_CHARS
from adapters.streaming import ChannelThrottle


class Screen:
    """A poster keeping what each message shows; handles are message numbers."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.writes: list[str] = []

    async def send(self, text: str, *, first: bool) -> int:
        self.shown.append(text)
        self.writes.append(text)
        return len(self.shown) - 1

    async def edit(self, handle: int, text: str) -> int:
        self.shown[handle] = text
        self.writes.append(text)
        return handle

    async def delete(self, handle: int) -> None:
        self.shown.pop(handle)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_status_line_goes_under_the_text_and_the_next_delta_drops_it() -> None:
    screen = Screen()
    # Handles are ints here; the reply never looks inside them except to add buttons.
    reply = DiscordReply(cast(Any, screen), ChannelThrottle(0.0), 1, limit=MAX_MESSAGE_CHARS)
    reply.show_status(tool_status("lookup_ticket"))
    await settle()
    assert screen.shown == ["Using `lookup_ticket`…"]
    await reply.add("Let me check. ")
    await settle()
    assert screen.shown == ["Let me check. "]
    reply.show_status(tool_status("search_thread"))
    await settle()
    assert screen.shown == ["Let me check.\n\nUsing `search_thread`…"]
    assert await reply.finish("Done.")
    assert screen.shown == ["Done."]
    reply.show_status(tool_status("late"))  # after the final text: nothing changes
    await settle()
    assert screen.shown == ["Done."]
