"""Shared fixtures, and a guard that fails any test reaching past the loopback interface."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.support.discord import fake_discord  # noqa: F401 (a fixture for every module)
from tests.support.parts import BotParts, make_config
from tests.support.postgres import postgres  # noqa: F401 (a fixture for every module)
from tests.support.slack import slack  # noqa: F401 (a fixture for every module)
from tests.support.stores import store  # noqa: F401 (each back end; modules may override)


class NetworkAccessError(AssertionError):
    """A test tried to reach a non-loopback address."""


def _loopback(host: Any) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _root_logging_as_it_was() -> Iterator[None]:
    """Undo a test's `configure_logging` (the CLI's commands run in process): its handler
    writes to that test's captured stderr, which is closed once the test ends."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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


@pytest.fixture
async def bot(fake_openai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[BotParts]:
    parts = await BotParts(make_config(fake_openai, tmp_path / "memory.sqlite3")).start()
    yield parts
    await parts.close()
