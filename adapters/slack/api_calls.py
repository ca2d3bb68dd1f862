"""Calls to Slack's Web API: the one HTTP session they share, which ones slack_sdk tries
again, and counting failed and retried ones for `/metrics`.

slack_sdk asks each retry handler of the client, in order, about every response and failure;
the counters ride on that, so they see every call without wrapping the client.
"""

from __future__ import annotations

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    async_default_handlers,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import PlatformApi


def open_session(client: AsyncWebClient) -> None:
    """Give `client` one HTTP session for all its calls, kept until `close_session`; without
    one, slack_sdk opens a session, so a connection, for every call and closes it after.

    Bolt's per-request clients and the Socket Mode handler's `apps.connections.open` take the
    session from this client too. Call it in the running loop, as aiohttp requires.
    """
    if client.session is None or client.session.closed:
        # The timeout slack_sdk gives the session it would open for each call.
        timeout = aiohttp.ClientTimeout(total=client.timeout)
        client.session = aiohttp.ClientSession(timeout=timeout)


async def close_session(client: AsyncWebClient) -> None:
    """Close the session `open_session` gave `client`; safe to call more than once."""
    session, client.session = client.session, None
    if session is not None:
        await session.close()


def retry_handlers(api: PlatformApi | None) -> list[AsyncRetryHandler]:
    """The client's retry handlers: connection errors, and Retry-After on HTTP 429 on top of
    them; counted through `api` when metrics are on."""
    handlers: list[AsyncRetryHandler] = [
        *async_default_handlers(),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
    ]
    return handlers if api is None else counted(api, handlers)


def counted(api: PlatformApi, handlers: list[AsyncRetryHandler]) -> list[AsyncRetryHandler]:
    """slack_sdk retry handlers that also count failed calls (`api.error`) and the retries
    `handlers` make (`api.retry`)."""
    return [_ErrorCounter(api), *(_RetryCounter(api, handler) for handler in handlers)]


class _ErrorCounter(AsyncRetryHandler):
    """Asked first about every response and failure slack_sdk gets; counts the failed ones
    and never retries itself."""

    def __init__(self, api: PlatformApi) -> None:
        super().__init__(max_retry_count=0)
        self._api = api

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if error is not None:
            self._api.error("connection")
        elif response is not None:
            body = response.body or {}
            if response.status_code >= 400:
                self._api.error(str(response.status_code))
            elif body.get("ok") is False:
                # Slack answers most failures 200 with its own code ("missing_scope").
                self._api.error(str(body.get("error") or "unknown"))
        return False


class _RetryCounter(AsyncRetryHandler):
    """One of slack_sdk's retry handlers, counting each retry it makes."""

    def __init__(self, api: PlatformApi, handler: AsyncRetryHandler) -> None:
        super().__init__(handler.max_retry_count, handler.interval_calculator)
        self._api = api
        self._handler = handler

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return await self._handler.can_retry_async(
            state=state, request=request, response=response, error=error
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self._api.retry()
        await self._handler.prepare_for_next_attempt_async(
            state=state, request=request, response=response, error=error
        )
