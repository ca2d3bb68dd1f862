"""What the Slack adapter asks Slack, remembered: whether the bot takes part in a thread, and
people's display names and whether they administer the workspace.

Both are asked of almost every message, and both rarely change, so each answer is kept (up to
10,000 of each) rather than costing an API call per message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
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
        self._people: LRUCache[str, _Person] = LRUCache(maxsize=10_000)

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
        person = await self._person(author)
        return person.name if person else author

    async def administers(self, author: str) -> bool:
        """Whether `author` is a workspace admin or owner (who may switch profiles); from the
        same cached `users.info` answer as their name, so it costs no call of its own."""
        person = await self._person(author)
        return person is not None and person.admin

    async def _person(self, author: str) -> _Person | None:
        if author in self._people:
            return self._people[author]
        try:
            response = await self._client.users_info(user=author)
        except SlackApiError as exc:
            logger.info("Could not look up user %s: %s", author, error_code(exc))
            return None  # not cached: the next message may well succeed
        user: dict[str, Any] = response.get("user") or {}
        profile: dict[str, Any] = user.get("profile") or {}
        person = _Person(
            name=str(
                profile.get("display_name")
                or profile.get("real_name")
                or user.get("real_name")
                or user.get("name")
                or author
            ),
            admin=any(
                user.get(flag) is True for flag in ("is_admin", "is_owner", "is_primary_owner")
            ),
        )
        self._people[author] = person
        return person


@dataclass(frozen=True)
class _Person:
    name: str
    admin: bool
