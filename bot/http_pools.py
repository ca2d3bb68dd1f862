"""The model client's connections, kept in several small pools instead of one large one.

httpcore's pool re-plans every waiting request and every connection it holds each time a
request starts or a response closes, so each model call costs time in proportion to the calls
in flight: with 2,000 turns at once that was a quarter of the bot's CPU
(`bench.e2e_bench concurrency`). Each request goes to the pool with the fewest requests open,
so that work stays a tenth as large, and the pools share the openai client's connection limits
between them: no more connections in all, and a request waits for one only when every pool
is full.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx2
from openai import DEFAULT_CONNECTION_LIMITS, DefaultAsyncHttpxClient

POOLS = 10
"""Divides the openai client's limits (1,000 connections, 100 kept alive) evenly."""


class PooledHttpClient(DefaultAsyncHttpxClient):
    """openai's own HTTP client (its timeouts, limits and redirects, proxies from the
    environment), with its direct connections spread over `POOLS` pools."""

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: str | tuple[str, str] | tuple[str, str, str] | None = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx2.Limits = DEFAULT_CONNECTION_LIMITS,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> httpx2.AsyncBaseTransport:
        # httpx builds its transport here, and only when not given one: proxies from the
        # environment are still honoured, through transports of their own.
        if transport is not None:
            return transport
        share = _share(limits, POOLS)
        # One TLS context for all the pools: each costs start-up time and memory to build.
        context = httpx2.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        direct = super()._init_transport
        return SpreadTransport(
            [
                direct(verify=context, trust_env=trust_env, http1=http1, http2=http2, limits=share)
                for _ in range(POOLS)
            ]
        )


def _share(limits: httpx2.Limits, pools: int) -> httpx2.Limits:
    """One pool's part of `limits` (None stays unlimited)."""

    def part(total: int | None) -> int | None:
        return None if total is None else max(1, math.ceil(total / pools))

    return httpx2.Limits(
        max_connections=part(limits.max_connections),
        max_keepalive_connections=part(limits.max_keepalive_connections),
        keepalive_expiry=limits.keepalive_expiry,
    )


class SpreadTransport(httpx2.AsyncBaseTransport):
    """Sends each request through the pool with the fewest requests open.

    A request stays open until its response is closed (a streamed answer, until its last
    chunk is read), as it holds its pool's connection until then. With nothing else open the
    first pool is chosen, so one conversation at a time keeps reusing one connection.
    """

    def __init__(self, pools: Sequence[httpx2.AsyncBaseTransport]) -> None:
        self._pools = list(pools)
        self._open = [0] * len(self._pools)

    @property
    def open_requests(self) -> list[int]:
        """Requests open in each pool, for tests."""
        return list(self._open)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = self._open.index(min(self._open))
        self._open[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._open[index] -= 1
            raise
        response.stream = _Closing(response.stream, lambda: self._close(index))
        return response

    def _close(self, index: int) -> None:
        self._open[index] -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Closing(httpx2.AsyncByteStream):
    """A response's body that tells its transport, once, when it is closed."""

    def __init__(self, stream: Any, closed: Callable[[], None]) -> None:
        self._stream = stream
        self._closed: Callable[[], None] | None = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            closed, self._closed = self._closed, None
            if closed is not None:
                closed()
