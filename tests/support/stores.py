"""The store on each back end: tests taking `store` (imported from here) run twice, against a
fresh SQLite file and a fresh PostgreSQL schema (skipped, with the reason, without a server);
and what store tests read through the contract (summaries, dumps) or write past it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.storage import PostgresStore, SQLiteStore, Store, Summary, ThreadDump
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


@pytest.fixture(params=["sqlite", "postgres"])
async def memory_at(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where memory lives on each back end in turn, nothing in it yet, for a bot (or a bot
    process) to open: a SQLite file's path, or a PostgreSQL schema's URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "memory.sqlite3")
    else:
        async with fresh_schema() as schema:
            yield schema.url


async def summary_of(store: Store, session_id: str) -> Summary | None:
    """The thread's newest summary, as the memory planner reads it."""
    return (await store.read_memory(session_id, density=False)).summary


async def density_of(store: Store, session_id: str) -> float | None:
    """The thread's measured tokens per stored character, as the memory planner reads it."""
    return (await store.read_memory(session_id)).tokens_per_char


async def insert_raw(store: Store, session_id: str, data: str) -> None:
    """A row written past the store (as another program might), e.g. text that is no JSON."""
    statement = "INSERT INTO agent_messages (session_id, message_data) VALUES ($1, $2)"
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as file:
            file.execute(statement.replace("$", "?"), (session_id, data))
        return
    server = await asyncpg.connect(store.location)  # the test server needs no password
    try:
        await server.execute(statement, session_id, data)
    finally:
        await server.close()


async def everything(store: Store, sessions: list[str] | None = None) -> dict[str, ThreadDump]:
    """Every thread's dump (or these threads', listed or not: a ledger outlives its thread)."""
    if sessions is None:
        sessions = [s.session_id for s in await store.list_sessions()]
    return {session_id: await store.dump_thread(session_id) for session_id in sessions}


def tokens_in(dumps: dict[str, ThreadDump]) -> int:
    """Input tokens recorded anywhere in the dumps: on turns' rows and in the ledger."""
    return sum(
        [m.usage.input_tokens for d in dumps.values() for m in d.messages if m.usage]
        + [e.usage.input_tokens for d in dumps.values() for e in d.ledger]
    )


def people_in(dumps: dict[str, ThreadDump], prefix: str) -> set[str | None]:
    """Every person ID the platform's threads still hold, anywhere."""
    found: set[str | None] = set()
    for session_id, dump in dumps.items():
        if session_id.startswith(prefix):
            found |= {m.author.id for m in dump.messages if m.author}
            found |= {m.asked_by for m in dump.messages}
            found |= {e.author_id for e in dump.ledger}
    return found
