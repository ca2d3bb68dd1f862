"""A fresh PostgreSQL schema per test, on the server named by `BOT_TEST_DATABASE_URL`.

Without a server the tests that need one are skipped with the reason, so the suite passes on
a laptop; `BOT_REQUIRE_POSTGRES=1` (set by `.ci/run`) turns that skip into a failure. The
benches make their schemas with `schema_on`, which has no pytest in it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("BOT_TEST_DATABASE_URL") or DEFAULT_URL


def _other_parameters(url: str) -> list[tuple[str, str]]:
    """The URL's query parameters but `search_path`."""
    return [(k, v) for k, v in parse_qsl(urlsplit(url).query) if k != "search_path"]


@dataclass(frozen=True)
class PostgresSchema:
    """One test's own schema: a URL that uses it, and its name for other clients."""

    url: str
    schema: str

    @property
    def sqlalchemy_url(self) -> str:
        """The server's URL for SQLAlchemy's asyncpg dialect (which takes no `search_path`)."""
        parts = urlsplit(self.url)
        query = urlencode(_other_parameters(self.url))
        return urlunsplit(parts._replace(scheme="postgresql+asyncpg", query=query))


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
    async with schema_on(base, admin=await _connect_or_skip(base)) as schema:
        yield schema


@asynccontextmanager
async def schema_on(
    base_url: str,
    *,
    prefix: str = "memorybot_test",
    admin: asyncpg.Connection | None = None,
    connect_timeout: float = 5.0,
) -> AsyncIterator[PostgresSchema]:
    """A new, empty schema on the server at `base_url`, dropped with everything in it afterwards.

    The URL it yields is `base_url` with `search_path` set to the schema (its other query
    parameters kept). `admin`, a connection to the server, creates and drops the schema and is
    closed afterwards; without one, one is opened (waiting up to `connect_timeout` seconds).
    """
    if admin is None:
        admin = await asyncpg.connect(base_url, timeout=connect_timeout)
    schema = f"{prefix}_{secrets.token_hex(6)}"
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        parts = urlsplit(base_url)
        query = urlencode([*_other_parameters(base_url), ("search_path", schema)])
        yield PostgresSchema(urlunsplit(parts._replace(query=query)), schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
