"""The model client's connections spread over several pools: the same requests and answers,
the same limits in all, proxies from the environment still honoured."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from openai import DEFAULT_CONNECTION_LIMITS

from bot.agent import build_client
from bot.http_pools import POOLS, PooledHttpClient, SpreadTransport
from tests.fakes.openai_server import FakeOpenAI
from tests.support.parts import make_config


class _Body(httpx2.AsyncByteStream):
    """A body read from the network, as a pool's are (a mock's own is read already)."""

    def __init__(self, text: str) -> None:
        self._text = text

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._text.encode()


def _answering(name: str) -> httpx2.MockTransport:
    return httpx2.MockTransport(lambda request: httpx2.Response(200, stream=_Body(name)))


@pytest.fixture
async def spread() -> AsyncIterator[SpreadTransport]:
    transport = SpreadTransport([_answering("a"), _answering("b"), _answering("c")])
    yield transport
    await transport.aclose()


async def test_each_request_goes_to_the_pool_with_the_fewest_open(
    spread: SpreadTransport,
) -> None:
    async with httpx2.AsyncClient(transport=spread) as client:
        request = client.build_request("GET", "http://model.test/")
        responses = [await client.send(request, stream=True) for _ in range(5)]
        assert spread.open_requests == [2, 2, 1]
        assert await responses[1].aread() == b"b"  # read to its end, so closed
        await responses[1].aclose()  # and closing it again counts once
        assert spread.open_requests == [2, 1, 1]
        assert [await r.aread() for r in responses] == [b"a", b"b", b"c", b"a", b"b"]
        assert spread.open_requests == [0, 0, 0]


async def test_one_request_at_a_time_stays_in_the_first_pool(spread: SpreadTransport) -> None:
    async with httpx2.AsyncClient(transport=spread) as client:
        answers = []
        for _ in range(4):
            async with client.stream("GET", "http://model.test/") as response:
                answers.append((await response.aread()).decode())
    assert answers == ["a"] * 4
    assert spread.open_requests == [0, 0, 0]


async def test_a_failed_request_leaves_its_pool() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    spread = SpreadTransport([httpx2.MockTransport(refuse), _answering("b")])
    async with httpx2.AsyncClient(transport=spread) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get("http://model.test/")
        assert spread.open_requests == [0, 0]


def test_the_pools_share_the_openai_clients_limits() -> None:
    client = PooledHttpClient()
    transport = client._transport
    assert isinstance(transport, SpreadTransport)
    assert len(transport.open_requests) == POOLS
    limits = DEFAULT_CONNECTION_LIMITS
    assert limits.max_connections is not None
    assert limits.max_keepalive_connections is not None
    assert POOLS * math.ceil(limits.max_connections / POOLS) == limits.max_connections
    assert POOLS * math.ceil(limits.max_keepalive_connections / POOLS) == (
        limits.max_keepalive_connections
    )


def test_proxies_from_the_environment_are_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    client = PooledHttpClient()
    assert any(pattern.scheme == "https" for pattern in client._mounts)


async def test_streamed_answers_from_many_calls_at_once(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    client = build_client(make_config(fake_openai, tmp_path / "memory.sqlite3"))
    transport = client._client._transport
    assert isinstance(transport, SpreadTransport)
    try:
        streams = [
            await client.chat.completions.create(
                model="fake-model",
                messages=[{"role": "user", "content": f"number {n}"}],
                stream=True,
            )
            for n in range(2 * POOLS)
        ]
        assert transport.open_requests == [2] * POOLS
        for n, stream in enumerate(streams):
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
            assert text.startswith(f"You said: number {n}.")
        assert transport.open_requests == [0] * POOLS
    finally:
        await client.close()
