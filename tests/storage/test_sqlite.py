"""SQLite files: the SDK's `SQLiteSession` on the bot's memory and back, WAL and the window
index, schema versions, the single writer, read-only and closed stores."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import aiosqlite
import pytest
from agents import SQLiteSession

from bot.storage import Author, SQLiteStore, Store, StoreClosedError, StoreReadOnlyError
from bot.storage.layout import SchemaTooNewError
from bot.storage.sqlite.schema import MIGRATIONS
from bot.storage.sqlite.writer import Writer
from tests.support.items import TRICKY, msg


async def test_sdk_reads_what_the_store_wrote(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.session("t1").add_items(TRICKY)  # type: ignore[arg-type]
        await store.append("t2", [msg("user", "[Ann] hi")], author=Author("u1", "Ann"))
    sdk = SQLiteSession("t1", path)
    try:
        assert await sdk.get_items() == TRICKY
        assert await sdk.get_items(limit=2) == TRICKY[-2:]
        assert await sdk.pop_item() == TRICKY[-1]
    finally:
        sdk.close()
    other = SQLiteSession("t2", path)
    try:
        assert await other.get_items() == [msg("user", "[Ann] hi")]
    finally:
        other.close()


async def test_store_reads_what_the_sdk_wrote(tmp_path: Path) -> None:
    path = tmp_path / "sdk-first.sqlite3"
    sdk = SQLiteSession("t1", path)
    try:
        await sdk.add_items(TRICKY)  # type: ignore[arg-type]
    finally:
        sdk.close()
    async with await SQLiteStore.open(path) as store:
        session = store.session("t1")
        assert await session.get_items() == TRICKY
        # The bot's extra columns were added to the SDK's table in place.
        await store.append("t1", [msg("user", "[Bo] more")], author=Author("u2", "Bo"))
        history = await store.history("t1", limit=10)
        assert history[-1].author == Author("u2", "Bo")
        assert history[0].author is None
    sdk = SQLiteSession("t1", path)
    try:
        assert len(await sdk.get_items()) == len(TRICKY) + 1
    finally:
        sdk.close()


@pytest.mark.parametrize("limit", [None, 0, 1, 2, 3, 5, 6, 50, -1])
async def test_get_items_limit_matches_sqlite_session(tmp_path: Path, limit: int | None) -> None:
    items = [msg("user" if i % 2 == 0 else "assistant", f"item {i}") for i in range(6)]
    sdk = SQLiteSession("t", tmp_path / "sdk.sqlite3")
    try:
        await sdk.add_items(items)  # type: ignore[arg-type]
        expected = await sdk.get_items(limit)
    finally:
        sdk.close()
    async with await SQLiteStore.open(tmp_path / "ours.sqlite3") as store:
        session = store.session("t")
        await session.add_items(items)  # type: ignore[arg-type]
        assert await session.get_items(limit) == expected
    if limit is not None and limit > 0:
        assert expected == items[-limit:]


async def test_undo_does_not_trip_over_a_corrupt_row(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("t", [msg("user", "keep"), msg("assistant", "x")])
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO agent_messages (session_id, message_data) VALUES ('t', '{not json')"
        )
    async with await SQLiteStore.open(path) as store:
        removed = await store.undo_last_exchange("t")
        assert [r.item for r in removed] == [msg("user", "keep"), msg("assistant", "x")]
        assert await store.count_items("t") == 0


async def test_file_database_uses_wal_and_the_window_index(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite3"
    async with await SQLiteStore.open(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT message_data FROM agent_messages "
                "WHERE session_id = ? ORDER BY id DESC LIMIT 40",
                ("t",),
            )
        )
    assert "idx_agent_messages_session_id" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index already yields newest first


async def test_memory_survives_reopening_a_file(tmp_path: Path) -> None:
    path = tmp_path / "persist.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.session("t").add_items([msg("user", "remember me")])  # type: ignore[list-item]
    async with await SQLiteStore.open(path) as store:
        assert await store.session("t").get_items() == [msg("user", "remember me")]


async def test_in_memory_store_works_and_is_private() -> None:
    async with await SQLiteStore.open(":memory:") as store:
        await store.session("t").add_items([msg("user", "x")])  # type: ignore[list-item]
        assert await store.session("t").get_items() == [msg("user", "x")]
    async with await SQLiteStore.open(":memory:") as fresh:
        assert await fresh.session("t").get_items() == []


async def test_sessions_cost_no_connection_and_no_thread(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "memory.sqlite3") as store:
        await _sessions_cost_nothing(store)


async def _sessions_cost_nothing(store: Store) -> None:
    await store.session("warm").get_items()
    threads = threading.active_count()
    for i in range(500):
        session = store.session(f"t{i % 7}")
        await session.add_items([msg("user", str(i))])  # type: ignore[list-item]
        await session.get_items(limit=5)
    assert threading.active_count() == threads
    assert await store.count_items("t0") == len(range(0, 500, 7))


async def test_one_bad_append_does_not_sink_the_batch_it_shared(tmp_path: Path) -> None:
    conn = await aiosqlite.connect(tmp_path / "w.sqlite3")
    try:
        await conn.execute(
            "CREATE TABLE agent_sessions (session_id TEXT PRIMARY KEY, "
            "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
            "updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
        )
        await conn.execute(
            "CREATE TABLE agent_messages (id INTEGER PRIMARY KEY, "
            "session_id TEXT NOT NULL, message_data TEXT NOT NULL, "
            "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, author_id TEXT, "
            "author_name TEXT, model TEXT, input_tokens INTEGER, cached_tokens INTEGER, "
            "output_tokens INTEGER, input_chars INTEGER, profile TEXT, asked_by TEXT)"
        )
        writer = Writer(conn)
        no_cost = (None, None, None, None, None, None, None)
        bad_row = ("t", None, None, None, *no_cost)  # violates NOT NULL on message_data
        results = await asyncio.gather(
            writer.append([("t", '"a"', None, None, *no_cost)]),
            writer.append([bad_row]),  # type: ignore[list-item]
            writer.append([("t", '"b"', None, None, *no_cost)]),
            return_exceptions=True,
        )
        assert results[0] is None
        assert results[2] is None
        assert isinstance(results[1], sqlite3.IntegrityError)
        rows = await conn.execute_fetchall("SELECT message_data FROM agent_messages ORDER BY id")
        assert [r[0] for r in rows] == ['"a"', '"b"']
        await writer.close()
    finally:
        await conn.close()


async def test_read_only_store_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("t", [msg("user", "x")])
    async with await SQLiteStore.open(path, read_only=True) as readonly:
        assert await readonly.read_items("t") == [msg("user", "x")]
        with pytest.raises(StoreReadOnlyError):
            await readonly.clear("t")


async def test_writes_after_close_fail_clearly(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "closed.sqlite3")
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.append("t", [msg("user", "late")])


async def test_a_sqlite_file_from_before_versioning_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("t", [msg("user", "kept")], author=Author("u", "U"))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 0")  # what the previous release left
    async with await SQLiteStore.open(path) as store:
        assert await store.read_items("t") == [msg("user", "kept")]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNewError):
        await SQLiteStore.open(path)
