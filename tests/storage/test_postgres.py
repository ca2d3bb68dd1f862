"""PostgreSQL: the SDK's `SQLAlchemySession` on the bot's memory and back, versioned schema
migrations, losing the server's connections, and a core serving turns from it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from agents.extensions.memory import SQLAlchemySession
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.messages import IncomingMessage, ReplyKind
from bot.storage import (
    Author,
    Failure,
    PostgresStore,
    StoreUnavailableError,
    failure,
)
from bot.storage.layout import SchemaTooNewError
from bot.storage.postgres.schema import MIGRATIONS
from bot.texts import BUSY
from tests.fakes.openai_server import FakeOpenAI
from tests.support.items import msg, tool_call, tool_output
from tests.support.parts import BotParts, make_config
from tests.support.postgres import PostgresSchema
from tests.support.stores import summary_of

TRICKY = [
    msg("user", "héllo — 你好 — 🎉 — '); DROP TABLE agent_messages; --"),
    tool_call("c1"),
    tool_output("c1"),
    msg("assistant", 'quote " backslash \\ NUL \x00 and lone \ud800'),
]


_DROPPED = (StoreUnavailableError, asyncpg.PostgresError)
"""What a call after the server ended the connections raises, depending on timing: the
server's own "terminating connection" error, or the store's word for a lost lock or
connection."""


def _engine(postgres: PostgresSchema) -> AsyncEngine:
    return create_async_engine(
        postgres.sqlalchemy_url,
        connect_args={"server_settings": {"search_path": postgres.schema}},
    )


async def test_the_sdk_reads_and_writes_memory_the_bot_created(postgres: PostgresSchema) -> None:
    async with await PostgresStore.open(postgres.url) as store:
        await store.append("t", TRICKY, author=Author("u1", "Ann"))
    engine = _engine(postgres)
    try:
        sdk = SQLAlchemySession("t", engine=engine, create_tables=True)
        assert await sdk.get_items() == TRICKY
        assert await sdk.get_items(limit=1) == TRICKY[-1:]
        assert await sdk.pop_item() == TRICKY[-1]
        await sdk.add_items([msg("assistant", "from the SDK")])  # type: ignore[list-item]
        other = SQLAlchemySession("sdk-made", engine=engine)
        await other.add_items([msg("user", "made by the SDK")])  # type: ignore[list-item]
    finally:
        await engine.dispose()
    async with await PostgresStore.open(postgres.url) as store:
        assert await store.read_items("t") == [*TRICKY[:-1], msg("assistant", "from the SDK")]
        history = await store.history("t", limit=10)
        assert history[0].author == Author("u1", "Ann")
        assert await store.read_items("sdk-made") == [msg("user", "made by the SDK")]
        assert [f.item for f in await store.search("sdk-made", "made", limit=3)] == [
            msg("user", "made by the SDK")
        ]


async def test_the_bot_opens_memory_the_sdk_created(postgres: PostgresSchema) -> None:
    engine = _engine(postgres)
    try:
        sdk = SQLAlchemySession("t", engine=engine, create_tables=True)
        await sdk.add_items(TRICKY)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    async with await PostgresStore.open(postgres.url) as store:
        assert await store.read_items("t") == TRICKY
        await store.append("t", [msg("user", "[Bo] more")], author=Author("u2", "Bo"))
        assert (await store.history("t", limit=1))[0].author == Author("u2", "Bo")
        removed = await store.undo_last_exchange("t")
        assert [r.item for r in removed] == [msg("user", "[Bo] more")]
    engine = _engine(postgres)
    try:
        sdk = SQLAlchemySession("t", engine=engine)
        assert await sdk.get_items() == TRICKY
        await sdk.clear_session()  # the SDK's delete cascades through the bot's trigger
    finally:
        await engine.dispose()
    async with await PostgresStore.open(postgres.url) as store:
        assert await store.list_sessions() == []


async def test_schema_versions_run_once_even_when_workers_start_together(
    postgres: PostgresSchema,
) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(postgres.url) for _ in range(4)))
    for store in stores:
        await store.close()
    conn = await asyncpg.connect(postgres.url)
    try:
        versions = await conn.fetch("SELECT version FROM bot_schema ORDER BY version")
        assert [row[0] for row in versions] == list(range(1, len(MIGRATIONS) + 1))
        await conn.execute("INSERT INTO bot_schema (version) VALUES ($1)", len(MIGRATIONS) + 1)
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNewError, match="upgrade the bot"):
        await PostgresStore.open(postgres.url)


async def test_a_store_opened_to_read_refuses_writes_at_the_server(
    postgres: PostgresSchema,
) -> None:
    async with await PostgresStore.open(postgres.url) as store:
        await store.append("t", [msg("user", "x")])
    async with await PostgresStore.open(postgres.url, read_only=True) as readonly:
        assert await readonly.read_items("t") == [msg("user", "x")]
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            await readonly.clear("t")
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            await readonly.append("t", [msg("user", "y")])
        assert await readonly.read_items("t") == [msg("user", "x")]


async def test_a_dropped_connection_fails_the_write_and_the_pool_recovers(
    postgres: PostgresSchema,
) -> None:
    # A name of this test's own, so only its connections are ended.
    url = f"{postgres.url}&application_name={postgres.schema}"
    async with await PostgresStore.open(url, pool_size=3) as store:
        await store.append("t", [msg("user", "before")])
        async with store.hold_thread("t", wait=1):
            await _terminate_bot_connections(postgres)
            # The lock connection went with the rest, and the worker hears of it at once: a
            # turn holding the thread is refused. (One that commits before the loss is heard
            # is safe while no other worker took the thread: tests/storage/test_thread_locks.)
            await asyncio.sleep(0.2)
            with pytest.raises(_DROPPED) as caught:
                await store.append("t", [msg("user", "lost")])
        assert failure(caught.value) is Failure.UNAVAILABLE
        # Nothing of the failed write, and the next operations get fresh connections.
        assert await store.read_items("t") == [msg("user", "before")]
        async with store.hold_thread("t", wait=1):
            await store.append("t", [msg("user", "after")])
        assert await store.read_items("t") == [msg("user", "before"), msg("user", "after")]


async def test_an_unreachable_server_is_a_friendly_failure() -> None:
    with pytest.raises(StoreUnavailableError, match="cannot connect"):
        await PostgresStore.open("postgresql://postgres@127.0.0.1:9/none", connect_timeout=2)


async def test_a_core_on_postgres_answers_dedups_and_serialises(
    fake_openai: FakeOpenAI, postgres: PostgresSchema
) -> None:
    config = make_config(fake_openai, database_url=postgres.url, thread_wait=0.5)
    parts = await BotParts(config).start()
    try:
        core = parts.core
        first = IncomingMessage("slack", "t", "u1", "Ann", "hello", message_id="Ev1")
        reply = await core.handle(first)
        assert reply.kind is ReplyKind.ANSWER
        assert (await core.handle(first)).kind is ReplyKind.REPEAT
        assert await parts.store.count_items("t") == 2
        # Another worker holding the thread: this one waits its bounded time, then says so.
        other = await PostgresStore.open(postgres.url)
        try:
            async with other.hold_thread("t", wait=1):
                busy = await core.handle(IncomingMessage("slack", "t", "u1", "Ann", "again"))
            assert (busy.kind, busy.text) == (ReplyKind.NOTICE, BUSY)
        finally:
            await other.close()
        assert await parts.store.count_items("t") == 2  # nothing of the refused message
        assert (await core.handle(IncomingMessage("slack", "t", "u", "A", "now"))).text
        assert await parts.store.count_items("t") == 4
    finally:
        await parts.close()


async def _terminate_bot_connections(postgres: PostgresSchema) -> None:
    admin = await asyncpg.connect(postgres.url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name IN ($1, $1 || '-locks') AND pid <> pg_backend_pid()",
            postgres.schema,
        )
    finally:
        await admin.close()


async def test_a_summary_of_a_row_an_undo_is_deleting_waits_and_is_void(
    postgres: PostgresSchema,
) -> None:
    # Another worker's /undo deletes the row the summary covers and has not committed yet.
    async with await PostgresStore.open(postgres.url) as store:
        await store.append("t", [msg("user", "a"), msg("assistant", "b")])
        covered = (await store.history("t", limit=1))[0].id
        other = await asyncpg.connect(postgres.url)
        try:
            undo = other.transaction()
            await undo.start()
            await other.execute("DELETE FROM agent_messages WHERE id = $1", covered)
            save = asyncio.create_task(
                store.save_summary("t", "S", covers_id=covered, replaces=None)
            )
            await asyncio.sleep(0.3)
            assert not save.done()  # it waits for the row, not for a stale snapshot of it
            await undo.commit()
            assert not await save
        finally:
            await other.close()
        assert await summary_of(store, "t") is None


async def test_delivery_keys_older_than_a_day_are_pruned(postgres: PostgresSchema) -> None:
    async with await PostgresStore.open(postgres.url) as store:
        assert await store.first_delivery("slack:recent")
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute(
            "INSERT INTO bot_deliveries (key, taken_at) "
            "VALUES ('slack:old', now() - '25 hours'::interval)"
        )
        async with await PostgresStore.open(postgres.url) as store:  # a worker starting later
            assert not await store.first_delivery("slack:recent")  # another worker's claim holds
        keys = {row[0] for row in await conn.fetch("SELECT key FROM bot_deliveries")}
        assert keys == {"slack:recent"}
    finally:
        await conn.close()


async def test_many_holders_on_a_small_pool_never_deadlock(postgres: PostgresSchema) -> None:
    async with await PostgresStore.open(postgres.url, pool_size=3) as store:

        async def command(n: int) -> None:
            # What /undo does: hold the thread, then read and write on other connections.
            async with store.hold_thread(f"t{n}", wait=10):
                await store.append(f"t{n}", [msg("user", "x")])
                await store.undo_last_exchange(f"t{n}")

        await asyncio.wait_for(asyncio.gather(*(command(n) for n in range(20))), 20)


async def test_a_held_threads_writes_wait_for_row_locks_however_long(
    postgres: PostgresSchema,
) -> None:
    # The lock wait's lock_timeout must end with the wait: a turn's own writes never time out.
    async with await PostgresStore.open(postgres.url) as store:
        await store.append("t", [msg("user", "a")])
        other = await asyncpg.connect(postgres.url)
        try:
            async with store.hold_thread("t", wait=0.05):
                transaction = other.transaction()
                await transaction.start()
                await other.execute(
                    "SELECT 1 FROM agent_sessions WHERE session_id = 't' FOR UPDATE"
                )
                write = asyncio.create_task(store.append("t", [msg("user", "b")]))
                await asyncio.sleep(0.3)  # well past the 50 ms the lock wait was allowed
                assert not write.done()
                await transaction.rollback()
                await write
        finally:
            await other.close()
        assert await store.read_items("t") == [msg("user", "a"), msg("user", "b")]


async def test_waiting_for_a_connection_is_not_a_busy_thread(
    fake_openai: FakeOpenAI, postgres: PostgresSchema
) -> None:
    # More turns at once than connections: they queue for one, however long the wait, and
    # nobody is told their (idle) thread is busy.
    fake_openai.latency = 0.5
    config = make_config(
        fake_openai, database_url=postgres.url, database_pool=2, max_concurrency=8, thread_wait=0.3
    )
    parts = await BotParts(config).start()
    try:
        replies = await asyncio.gather(
            *(
                parts.core.handle(IncomingMessage("slack", f"t{n}", "u", "A", "hi", f"Ev{n}"))
                for n in range(6)
            )
        )
        assert [r.kind for r in replies] == [ReplyKind.ANSWER] * 6
    finally:
        await parts.close()
