"""The commands that only read the memory (`sessions`, `history`, `usage`, `export`, a dry
run of `forget-user`) never create or upgrade its schema: on memory this release has not
opened yet, they say so in one line and what to run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from bot.storage import PostgresStore, SQLiteStore
from bot.storage.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from bot.storage.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.support.cli import run_bot
from tests.support.items import msg
from tests.support.postgres import PostgresSchema

READING = (
    ("sessions",),
    ("history", "console:default"),
    ("usage",),
    ("export", "--all"),
    ("forget-user", "console", "U1", "--dry-run"),
)


async def _tables(postgres: PostgresSchema) -> list[str]:
    conn = await asyncpg.connect(postgres.url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            postgres.schema,
        )
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def _version(postgres: PostgresSchema) -> int:
    conn = await asyncpg.connect(postgres.url)
    try:
        return int(await conn.fetchval("SELECT max(version) FROM bot_schema"))
    finally:
        await conn.close()


async def test_reading_an_empty_postgres_schema_creates_nothing(postgres: PostgresSchema) -> None:
    for command in READING:
        ran = await run_bot(*command, memory=postgres.url)
        assert ran.code == 2, (command, ran.err)
        assert ran.err == (
            f"error: the memory at {postgres.url} holds nothing of this bot yet (no schema): "
            "check that it is the right one, or start the bot once with it to create one\n"
        ), command
        assert ran.out == ""
        assert await _tables(postgres) == [], command


async def test_reading_an_older_postgres_schema_leaves_it_as_it_is(
    postgres: PostgresSchema,
) -> None:
    conn = await asyncpg.connect(postgres.url)
    try:
        # What the release before the newest left: every version but the last.
        await conn.execute("CREATE TABLE bot_schema (version INTEGER NOT NULL)")
        for number, statements in enumerate(POSTGRES_MIGRATIONS[:-1], start=1):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO bot_schema (version) VALUES ($1)", number)
    finally:
        await conn.close()
    tables = await _tables(postgres)
    older = len(POSTGRES_MIGRATIONS) - 1
    for command in READING[:2]:
        ran = await run_bot(*command, memory=postgres.url)
        assert ran.code == 2, (command, ran.err)
        assert ran.err == (
            f"error: the memory at {postgres.url} is at schema version {older}, older than "
            f"this bot's {older + 1}: start the bot once with it (it upgrades the schema as "
            "it starts), then run this again\n"
        ), command
        assert await _version(postgres) == older, command
        assert await _tables(postgres) == tables
    # Once a start has upgraded it, the same commands read it.
    async with await PostgresStore.open(postgres.url) as store:
        await store.append("console:default", [msg("user", "hello")])
    ran = await run_bot("sessions", memory=postgres.url)
    assert ran.code == 0, ran.err
    assert "console:default" in ran.out


async def test_reading_an_older_sqlite_file_says_what_to_run(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("console:default", [msg("user", "hello")])
    older = len(SQLITE_MIGRATIONS) - 1
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {older}")
    ran = await run_bot("sessions", memory=path)
    assert ran.code == 2, ran.err
    assert ran.err == (
        f"error: the memory at {path} is at schema version {older}, older than this bot's "
        f"{older + 1}: start the bot once with it (it upgrades the schema as it starts), "
        "then run this again\n"
    )
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == older


async def test_reading_leaves_no_wal_files_beside_a_file_that_had_none(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("console:default", [msg("user", "hello")])
    beside = _files(tmp_path)
    assert beside == ["memory.sqlite3"]  # the writer, closing last, folded its log in
    for command in READING:
        ran = await run_bot(*command, memory=path)
        assert ran.code == 0, (command, ran.err)
        assert _files(tmp_path) == beside, (command, _files(tmp_path))


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


async def test_reading_beside_a_running_bot_leaves_its_wal_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("console:default", [msg("user", "hello")])
        ran = await run_bot("history", "console:default", memory=path)
        assert ran.code == 0, ran.err
        await store.append("console:default", [msg("user", "still writing")])
        assert len(await store.read_items("console:default")) == 2
        assert (tmp_path / "memory.sqlite3-wal").exists()


async def test_history_of_an_unknown_thread_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("console:default", [msg("user", "hello")])
    ran = await run_bot("history", "console:nope", memory=path)
    assert (ran.code, ran.out) == (1, "")
    assert ran.err == "error: No memory stored for 'console:nope': see `python -m bot sessions`.\n"


async def test_history_takes_only_a_positive_limit(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("console:default", [msg("user", f"m{n}") for n in range(4)])
    for limit in ("0", "-1", "some"):
        ran = await run_bot("history", "console:default", "--limit", limit, memory=path)
        assert (ran.code, ran.out) == (2, ""), (limit, ran.out)
        assert ran.err.splitlines()[-1] == (
            "python -m bot history: error: argument --limit: must be a whole number of at "
            f"least 1, got {limit!r}"
        )
    ran = await run_bot("history", "console:default", "--limit", "1", memory=path)
    assert ran.code == 0, ran.err
    assert "console:default (the newest 1 of 4 items, newest last):" in ran.out
