"""Shared fixtures, and a guard that fails any test reaching past the loopback interface."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.agent import build_agent, build_client, build_model
from bot.app import build_core
from bot.config import Config
from bot.core import Core
from bot.storage import SQLiteStore
from tests.fakes.openai_server import FakeOpenAI


class NetworkAccessError(AssertionError):
    """A test tried to reach a non-loopback address."""


def _loopback(host: Any) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _forbid_network() -> Iterator[None]:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise NetworkAccessError(f"test tried to connect to {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not _loopback(name):
            raise NetworkAccessError(f"test tried to resolve {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def make_config(fake: FakeOpenAI, db_path: str | Path = ":memory:", **overrides: Any) -> Config:
    """Settings that point the real openai client at the fake server."""
    settings: dict[str, Any] = {
        "openai_api_key": "sk-test-not-a-real-key",
        "openai_base_url": fake.base_url,
        "model": "fake-model",
        "model_api": "chat_completions",
        "model_retries": 0,
        "model_timeout": 10.0,
        "db_path": str(db_path),
        # Tests send bursts from one author; the rate limit has tests of its own.
        "rate_limit_per_minute": 0,
    }
    settings.update(overrides)
    return Config(**settings)


class BotParts:
    """A real core on a real store and the real openai client, closed in reverse order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.client = build_client(config)
        self.store: SQLiteStore
        self.core: Core

    async def start(self) -> BotParts:
        self.store = await SQLiteStore.open(self.config.db_path)
        model = build_model(self.config, self.client)
        self.core = build_core(self.config, self.store, build_agent(self.config, model))
        return self

    async def close(self) -> None:
        await self.store.close()
        await self.client.close()


@pytest.fixture
async def bot(fake_openai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[BotParts]:
    parts = await BotParts(make_config(fake_openai, tmp_path / "memory.sqlite3")).start()
    yield parts
    await parts.close()
