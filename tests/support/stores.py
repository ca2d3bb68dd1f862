"""The store on each back end: tests taking `store` (imported from here) run twice, against a
fresh SQLite file and a fresh PostgreSQL schema (skipped, with the reason, without a server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import PostgresStore, SQLiteStore, Store
from tests.support.postgres import fresh_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each back end in turn, freshly created."""
    if request.param == "sqlite":
        async with await SQLiteStore.open(tmp_path / "memory.sqlite3") as opened:
            yield opened
    else:
        async with fresh_schema() as schema, await PostgresStore.open(schema.url) as opened:
            yield opened
