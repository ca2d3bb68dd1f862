"""A fresh PostgreSQL schema per test, on the server named by `BOT_TEST_DATABASE_URL`.

Without a server the tests that need one are skipped with the reason, so the suite passes on
a laptop; `BOT_REQUIRE_POSTGRES=1` (set by `.ci/run`) turns that skip into a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("BOT_TEST_DATABASE_URL") or DEFAULT_URL


@dataclass(frozen=True)
class PostgresSchema:
    """One test's own schema: a URL that uses it, and its name for other clients."""

    url: str
    schema: str

    @property
    def sqlalchemy_url(self) -> str:
        return urlunsplit(urlsplit(self.url)._replace(scheme="postgresql+asyncpg", query=""))


async def _connect_or_skip(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"no PostgreSQL server at {url} ({type(exc).__name__}: {exc})"
        if os.environ.get("BOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}; BOT_REQUIRE_POSTGRES=1 requires one")
        pytest.skip(reason)


@pytest.fixture
async def postgres() -> AsyncIterator[PostgresSchema]:
    """A new, empty schema, dropped with everything in it after the test."""
    async with fresh_schema() as schema:
        yield schema


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[PostgresSchema]:
    """A new, empty schema for a block (skips the test when there is no server)."""
    base = server_url()
    admin = await _connect_or_skip(base)
    schema = f"memorybot_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        parts = urlsplit(base)
        url = urlunsplit(parts._replace(query=urlencode({"search_path": schema})))
        yield PostgresSchema(url, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
