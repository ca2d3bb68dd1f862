"""What the Slack adapter asks Slack, remembered: whether the bot takes part in a thread, and
people's display names.

Both are asked of almost every message, and both rarely change, so each answer is kept (up to
10,000 of each) rather than costing an API call per message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cachetools import LRUCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from .rules import mentions
from .stream import error_code

logger = logging.getLogger(__name__)


class SlackLookups:
    """Thread membership and display names, from the Web API, cached."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        # Whether the bot takes part in a thread: a miss stays until it answers there.
        self._threads: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=10_000)
        self._names: LRUCache[str, str] = LRUCache(maxsize=10_000)

    def joined(self, channel: str, thread_ts: str) -> None:
        """The bot has answered in the thread, so it takes part from now on."""
        self._threads[(channel, thread_ts)] = True

    async def bot_in_thread(
        self, channel: str, thread_ts: str, *, bot_user: str, bot_id: str
    ) -> bool:
        """Whether the bot takes part in a thread: it posted there, or the root mentions it."""
        known = self._threads.get((channel, thread_ts))
        if known is not None:
            return known
        try:
            response = await self._client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200
            )
        except SlackApiError as exc:
            logger.warning(
                "Could not read thread %s in %s: %s", thread_ts, channel, error_code(exc)
            )
            return False
        messages: list[dict[str, Any]] = list(response.get("messages") or [])
        found = any(
            m.get("user") == bot_user
            or (bot_id and m.get("bot_id") == bot_id)
            or (m.get("ts") == thread_ts and mentions(str(m.get("text") or ""), bot_user))
            for m in messages
        )
        self._threads[(channel, thread_ts)] = found
        return found

    async def author_name(self, event: Mapping[str, Any], author: str) -> str:
        """The name to show for `author`: the event's own, else their display name."""
        if event.get("username"):
            return str(event["username"])
        if author in self._names:
            return self._names[author]
        name = author
        try:
            response = await self._client.users_info(user=author)
            user: dict[str, Any] = response.get("user") or {}
            profile: dict[str, Any] = user.get("profile") or {}
            name = str(
                profile.get("display_name")
                or profile.get("real_name")
                or user.get("real_name")
                or user.get("name")
                or author
            )
        except SlackApiError as exc:
            logger.info("Could not look up user %s: %s", author, error_code(exc))
            return name  # not cached: the next message may well succeed
        self._names[author] = name
        return name
