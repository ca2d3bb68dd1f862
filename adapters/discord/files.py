"""Files attached to Discord messages: described for the core, downloaded only when it asks.

Discord serves attachments from its CDN at signed URLs that need no token but expire (about a
day), so the core gets the bytes, never the URL. One aiohttp session, owned by the adapter,
serves every download; each is read in chunks and stopped as soon as it passes the limit the
core gives, so a file that lies about its size cannot fill memory.
"""

from __future__ import annotations

import functools

import discord

from bot.adapter import Attachment

from ..downloads import Downloads


class DiscordFiles(Downloads):
    """Attachments described for the core and fetched from Discord's CDN on request."""

    async def fetch(self, url: str, limit: int) -> bytes:
        """Download `url` with at most `limit` bytes (an `Attachment.fetch`)."""
        return await self.get(url, limit)

    def describe(self, attachment: discord.Attachment) -> Attachment:
        """The core's view of a Discord attachment; nothing is downloaded yet."""
        return Attachment(
            name=attachment.filename,
            content_type=attachment.content_type or "",
            size=attachment.size,
            fetch=functools.partial(self.fetch, attachment.url),
        )
