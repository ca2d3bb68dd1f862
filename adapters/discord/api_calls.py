"""Calls to Discord's API: counting failed and retried ones for `/metrics`.

discord.py retries on its own; an aiohttp trace on its HTTP session sees each attempt, so the
counts need nothing of the library's internals.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import aiohttp

from bot.adapter import PlatformApi

RETRIED_STATUSES = frozenset({429, 500, 502, 504, 524})
"""Answers discord.py sends its request again after (its `HTTPClient.request`): rate limits,
and these server errors."""
JSON = "application/json"
"""The one content type discord.py reads as JSON (its `json_or_text` compares it whole)."""
TRIES = 5
"""How many times discord.py sends one call in all before it gives up (its `range(5)`)."""


class _Tries:
    """Which try of its call each request is.

    A trace sees requests, not calls: the tries of one call share nothing the trace is shown.
    They do run one after another in the task that made the call, so a run of retried answers
    in one task is one call's tries; any other answer ends the call, and so does the last try.
    """

    def __init__(self) -> None:
        # Weak, so a task that ends in the middle of a run (cancelled) leaves nothing behind.
        self._failed: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )

    def retried(self, response: aiohttp.ClientResponse | None) -> bool:
        """Whether discord.py sends the call again after this answer (None: no answer)."""
        task = asyncio.current_task()
        if task is None:
            return False
        tries = self._failed.pop(task, 0) + 1
        if response is not None and _sent_again(response) and tries < TRIES:
            self._failed[task] = tries
            return True
        return False


def _sent_again(response: aiohttp.ClientResponse) -> bool:
    """Whether discord.py tries again after `response`, if it has tries left.

    A 429 that is not Discord's own (Cloudflare's ban: no `Via` header, or a page instead of
    JSON) is raised at once, as its `HTTPClient.request` does: that try is the call's last.
    """
    if response.status == 429:
        headers = response.headers
        return bool(headers.get("Via")) and headers.get("Content-Type") == JSON
    return response.status in RETRIED_STATUSES


def api_trace(api: PlatformApi) -> aiohttp.TraceConfig:
    """An aiohttp trace (discord.py's `http_trace`) counting its failed and retried calls."""
    tries = _Tries()

    async def ended(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        if status >= 400:
            api.error(str(status))
        if tries.retried(params.response):
            api.retry()

    async def failed(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        api.error("connection")
        tries.retried(None)  # discord.py gives up (it retries only Windows' and macOS' resets)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace
