"""Calls to Discord's API: counting failed and retried ones for `/metrics`.

discord.py retries on its own; an aiohttp trace on its HTTP session sees each attempt, so the
counts need nothing of the library's internals.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.adapter import PlatformApi

RETRIED_STATUSES = frozenset({429, 500, 502, 504, 524})
"""Answers discord.py sends its request again after (its `HTTPClient.request`): rate limits,
and these server errors up to its fifth try."""


def api_trace(api: PlatformApi) -> aiohttp.TraceConfig:
    """An aiohttp trace (discord.py's `http_trace`) counting its failed and retried calls."""

    async def ended(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        if status >= 400:
            api.error(str(status))
        if status in RETRIED_STATUSES:
            api.retry()

    async def failed(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        api.error("connection")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace
