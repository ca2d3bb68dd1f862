"""PostgreSQL thread locks: every lock of a worker on one connection, taken without blocking,
waiters woken by the release, turns fenced when a lock is lost, one summary at a time, and
event claims that hold when the server has no connection to spare (real server)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.messages import IncomingMessage, ReplyKind
from bot.storage import Failure, PostgresStore, StoreUnavailableError, ThreadBusyError, failure
from bot.storage.failures import ThreadLostError
from bot.storage.postgres.locks import lock_key
from tests.fakes.openai_server import FakeOpenAI, user_texts
from tests.support.items import msg
from tests.support.model import is_summary_request, summarizing
from tests.support.parts import BotParts, make_config
from tests.support.postgres import PostgresSchema

pytestmark = pytest.mark.timeout(60)


async def _admin(postgres: PostgresSchema) -> asyncpg.Connection:
    return await asyncpg.connect(postgres.url)


async def _backends(postgres: PostgresSchema, name: str) -> list[int]:
    """The server processes of connections with this application name."""
    admin = await _admin(postgres)
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
        )
    finally:
        await admin.close()
    return [row[0] for row in rows]


async def _lock_holder(postgres: PostgresSchema, session_id: str) -> int:
    """The server process holding a thread's advisory lock."""
    unsigned = lock_key(session_id) & (2**64 - 1)
    admin = await _admin(postgres)
    try:
        pid = await admin.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = $1 AND objid = $2 AND objsubid = 1",
            unsigned >> 32,
            unsigned & 0xFFFFFFFF,
        )
    finally:
        await admin.close()
    assert pid is not None, f"nobody holds {session_id}"
    return int(pid)


async def _terminate(postgres: PostgresSchema, pid: int) -> None:
    admin = await _admin(postgres)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_a_worker_holds_every_thread_on_one_connection_beside_its_pool(
    postgres: PostgresSchema,
) -> None:
    name = f"n{secrets.token_hex(4)}"
    async with await PostgresStore.open(
        f"{postgres.url}&application_name={name}", pool_size=3
    ) as store:
        inside = asyncio.Event()
        entered = 0

        async def turn(n: int) -> None:
            nonlocal entered
            async with store.hold_thread(f"t{n}", wait=5):
                entered += 1
                if entered == 50:
                    inside.set()
                await inside.wait()  # all 50 hold their thread at once
                await store.append(f"t{n}", [msg("user", f"m{n}")])

        await asyncio.wait_for(asyncio.gather(*(turn(n) for n in range(50))), 20)
        assert len(await _backends(postgres, name)) <= 3 + 1
        for n in (0, 25, 49):
            assert await store.read_items(f"t{n}") == [msg("user", f"m{n}")]


async def test_a_waiter_on_another_worker_is_woken_by_the_release(
    postgres: PostgresSchema,
) -> None:
    first = await PostgresStore.open(postgres.url)
    # Polling so rarely that only the release's notification can wake it within the test.
    second = await PostgresStore.open(postgres.url, lock_poll=60)
    try:
        release = asyncio.Event()

        async def hold() -> None:
            async with first.hold_thread("t", wait=1):
                await release.wait()

        holding = asyncio.create_task(hold())
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(_enter(second, "t", wait=30))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        # Meanwhile the waiting worker takes any other thread at once: nothing is blocked.
        await asyncio.wait_for(_enter(second, "other", wait=30), 2)
        release.set()
        await holding
        await asyncio.wait_for(waiting, 5)
        # And a wait that runs out is the usual busy answer.
        release.clear()
        holding = asyncio.create_task(hold())
        await asyncio.sleep(0.1)
        with pytest.raises(ThreadBusyError):
            await _enter(second, "t", wait=0.3)
        release.set()
        await holding
    finally:
        await first.close()
        await second.close()


async def _enter(store: PostgresStore, thread: str, *, wait: float) -> None:
    async with store.hold_thread(thread, wait=wait):
        pass


async def test_a_turn_whose_lock_was_lost_is_not_stored_after_another_worker_took_the_thread(
    postgres: PostgresSchema,
) -> None:
    first = await PostgresStore.open(postgres.url)
    second = await PostgresStore.open(postgres.url)
    try:
        await first.append("t", [msg("user", "before")])
        async with first.hold_thread("t", wait=1):
            await _terminate(postgres, await _lock_holder(postgres, "t"))
            async with second.hold_thread("t", wait=5):
                await second.append("t", [msg("user", "second")])
            with pytest.raises(ThreadLostError) as caught:
                await first.append("t", [msg("user", "first")])
            assert failure(caught.value) is Failure.UNAVAILABLE
        assert await first.read_items("t") == [msg("user", "before"), msg("user", "second")]
        # The worker opened its lock connection again and goes on.
        async with first.hold_thread("t", wait=5):
            await first.append("t", [msg("user", "after")])
        assert (await first.read_items("t"))[-1] == msg("user", "after")
    finally:
        await first.close()
        await second.close()


async def test_the_fence_refuses_a_turn_whose_worker_has_not_noticed_the_loss(
    postgres: PostgresSchema,
) -> None:
    # What the fence is for: the lock connection died a moment ago, this worker has not
    # heard, and another worker took the thread (its epoch moved on).
    async with await PostgresStore.open(postgres.url) as store:
        await store.append("t", [msg("user", "a"), msg("assistant", "b")])
        async with store.hold_thread("t", wait=1):
            admin = await _admin(postgres)
            try:
                await admin.execute(
                    "UPDATE bot_thread_fences SET epoch = epoch + 1 WHERE lock_key = $1",
                    lock_key("t"),
                )
            finally:
                await admin.close()
            with pytest.raises(ThreadLostError):
                await store.append("t", [msg("user", "fast path")])
            with pytest.raises(ThreadLostError):
                await store.append("t", [msg("user", "x")], replace_from=1)
            with pytest.raises(ThreadLostError):
                await store.undo_last_exchange("t")
        assert await store.read_items("t") == [msg("user", "a"), msg("assistant", "b")]


async def test_a_worker_taking_a_thread_waits_for_a_commit_under_way_and_reads_it(
    postgres: PostgresSchema,
) -> None:
    # The commit holds the epoch row; the taker's epoch advance waits for it, so whatever
    # the taker plans from includes that turn.
    first = await PostgresStore.open(postgres.url)
    second = await PostgresStore.open(postgres.url)
    admin = await _admin(postgres)
    try:
        async with first.hold_thread("t", wait=1):
            commit = admin.transaction()
            await commit.start()
            # Another session holds the epoch row, as a commit under way does.
            await admin.execute(
                "SELECT 1 FROM bot_thread_fences WHERE lock_key = $1 FOR UPDATE", lock_key("t")
            )
            await _terminate(postgres, await _lock_holder(postgres, "t"))
            taking = asyncio.create_task(_enter(second, "t", wait=10))
            await asyncio.sleep(0.3)
            assert not taking.done()
            await commit.rollback()
            await asyncio.wait_for(taking, 5)
    finally:
        await admin.close()
        await first.close()
        await second.close()


async def test_one_worker_at_a_time_summarises_a_thread(postgres: PostgresSchema) -> None:
    first = await PostgresStore.open(postgres.url)
    second = await PostgresStore.open(postgres.url)
    try:
        async with first.claim_summary("t") as mine:
            assert mine
            async with second.claim_summary("t") as theirs:
                assert not theirs
            async with second.claim_summary("other") as theirs:
                assert theirs
        # Given back in the locker's next round trip.
        async with asyncio.timeout(5):
            while True:
                async with second.claim_summary("t") as theirs:
                    if theirs:
                        break
                await asyncio.sleep(0.01)
    finally:
        await first.close()
        await second.close()


async def test_two_workers_finishing_turns_in_one_long_thread_pay_for_one_summary(
    postgres: PostgresSchema,
) -> None:
    async with FakeOpenAI(summarizing(lambda m: f"Noted: {user_texts(m)[-1][:40]}")) as fake:
        fake.latency = 0.3  # the summary is still being written when the other turn ends
        config = make_config(
            fake, database_url=postgres.url, context_tokens=4_000, max_output_tokens=500
        )
        workers = [await BotParts(config).start(), await BotParts(config).start()]
        try:
            long = "a long message about the logs " * 60
            for n in range(6):
                await workers[n % 2].core.handle(
                    IncomingMessage("slack", "t", "u1", "Ann", f"{n} {long}", f"Ev{n}")
                )
            for parts in workers:
                await parts.core.idle()
            summaries = [r for r in fake.requests if is_summary_request(r.messages)]
            turns = len(fake.requests) - len(summaries)
            assert turns == 6
            assert len(summaries) >= 1
            # Both workers asked after each turn; a summary under way is never paid twice.
            covered = [user_texts(r.messages)[-1] for r in summaries]
            assert len(covered) == len(set(covered)), covered
        finally:
            for parts in workers:
                await parts.close()


async def test_fifty_turns_at_once_on_a_pool_of_three(postgres: PostgresSchema) -> None:
    async with FakeOpenAI(latency=1.0) as fake:
        config = make_config(
            fake, database_url=postgres.url, database_pool=3, max_concurrency=50, thread_wait=30
        )
        parts = await BotParts(config).start()
        try:
            for round_ in range(2):
                replies = await asyncio.gather(
                    *(
                        parts.core.handle(
                            IncomingMessage(
                                "slack", f"t{n}", "u", "Ann", f"m{round_}", f"Ev{round_}-{n}"
                            )
                        )
                        for n in range(50)
                    )
                )
                assert [r.kind for r in replies] == [ReplyKind.ANSWER] * 50
            assert fake.max_in_flight == 50  # every model call in flight together
            for n in range(50):
                items = await parts.store.read_items(f"t{n}")
                assert [item.get("role") for item in items] == ["user", "assistant"] * 2
                assert [item.get("content") for item in items[::2]] == [
                    "[Ann] m0",
                    "[Ann] m1",
                ]
        finally:
            await parts.close()


# ----- a server with no connection to spare ------------------------------------------------


@contextlib.asynccontextmanager
async def _limited_role(postgres: PostgresSchema, limit: int) -> AsyncIterator[tuple[str, str]]:
    """A role that may open only `limit` connections (the server refuses more, as it does
    past `max_connections`), on this test's schema; yields its URL and name."""
    role = f"bot_limited_{secrets.token_hex(4)}"
    admin = await _admin(postgres)
    try:
        async with await PostgresStore.open(postgres.url):
            pass  # the schema, made by its owner
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}")
        for grant in (
            f"GRANT ALL ON SCHEMA {postgres.schema} TO {role}",
            f"GRANT ALL ON ALL TABLES IN SCHEMA {postgres.schema} TO {role}",
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {postgres.schema} TO {role}",
        ):
            await admin.execute(grant)
        parts = urlsplit(postgres.url)
        url = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        try:
            yield url, role
        finally:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            await admin.execute(f"DROP OWNED BY {role}")
            await admin.execute(f"DROP ROLE {role}")
    finally:
        await admin.close()


async def test_an_event_is_claimed_once_when_the_server_has_no_connection_to_spare(
    postgres: PostgresSchema,
) -> None:
    async with _limited_role(postgres, limit=4) as (url, role):
        first = await PostgresStore.open(f"{url}&application_name=w1", pool_size=3)
        second = await PostgresStore.open(f"{url}&application_name=w2", pool_size=3)
        try:
            # Each worker has a pooled connection and its lock connection. From now on the
            # server refuses the role any more than the two it has left, as it does past
            # `max_connections`, and the pooled ones drop.
            await _set_limit(postgres, role, 2)
            for name in ("w1", "w2"):
                for pid in await _backends(postgres, name):
                    await _terminate(postgres, pid)
            with pytest.raises(StoreUnavailableError):
                await first.read_items("t")  # the pool cannot get a connection
            # Slack's two events of one mention, one to each worker.
            claims = await asyncio.gather(
                first.first_delivery("slack:C1:1.0"), second.first_delivery("slack:C1:1.0")
            )
            assert sorted(claims) == [False, True]
        finally:
            await first.close()
            await second.close()


async def _set_limit(postgres: PostgresSchema, role: str, limit: int) -> None:
    admin = await _admin(postgres)
    try:
        await admin.execute(f"ALTER ROLE {role} CONNECTION LIMIT {limit}")
    finally:
        await admin.close()


async def _lock_pid(postgres: PostgresSchema, name: str) -> int | None:
    pids = await _backends(postgres, f"{name}-locks")
    return pids[0] if pids else None


async def test_readiness_says_when_the_lock_connection_cannot_be_had_and_it_comes_back(
    postgres: PostgresSchema,
) -> None:
    async with _limited_role(postgres, limit=2) as (url, role):
        store = await PostgresStore.open(f"{url}&application_name=w1", pool_size=1)
        try:
            await store.ping()
            lock_pid = await _lock_pid(postgres, "w1")
            assert lock_pid is not None
            await _set_limit(postgres, role, 1)  # the pooled connection and no other
            await _terminate(postgres, lock_pid)
            await asyncio.sleep(0.3)
            with pytest.raises(StoreUnavailableError, match="thread-lock connection"):
                await store.ping()
            await _set_limit(postgres, role, 2)
            async with asyncio.timeout(15):
                while True:  # re-opened in the background, with growing pauses
                    try:
                        await store.ping()
                        break
                    except StoreUnavailableError:
                        await asyncio.sleep(0.2)
            async with store.hold_thread("t", wait=2):
                await store.append("t", [msg("user", "still here")])
        finally:
            await store.close()


async def test_of_two_workers_sent_one_message_the_less_busy_one_answers_it(
    postgres: PostgresSchema,
) -> None:
    # A balancer gave Slack's two events of one mention to two workers, the first of them to
    # the busier one: it lets the other take the message.
    async with FakeOpenAI(latency=3.0) as fake:
        config = make_config(fake, database_url=postgres.url, max_concurrency=64)
        busy, idle = await BotParts(config).start(), await BotParts(config).start()
        try:
            turns = [
                asyncio.create_task(
                    busy.core.handle(IncomingMessage("slack", f"b{n}", "u", "Ann", "hi", f"B{n}"))
                )
                for n in range(40)
            ]
            async with asyncio.timeout(10):
                while fake.in_flight < 40:
                    fake.request_seen.clear()
                    await fake.request_seen.wait()
            fake.latency = 0.0
            # A worker that never loses a claim has no reason to wait: the busy one takes a
            # message it is sent first...
            warm_up = IncomingMessage("slack", "w", "u", "Ann", "hello", "Ev0")
            first = await busy.core.handle(warm_up)
            second = await idle.core.handle(warm_up)
            assert (first.kind, second.kind) == (ReplyKind.ANSWER, ReplyKind.REPEAT)
            # ...and once it sees the other worker take a message it was sent too, it lets the
            # less busy one claim first.
            taken = IncomingMessage("slack", "v", "u", "Ann", "hello", "Ev1")
            await idle.core.handle(taken)
            assert (await busy.core.handle(taken)).kind is ReplyKind.REPEAT
            message = IncomingMessage("slack", "t", "u", "Ann", "who takes this?", "Ev2")
            first, second = await asyncio.gather(
                busy.core.handle(message), idle.core.handle(message)
            )
            assert (first.kind, second.kind) == (ReplyKind.REPEAT, ReplyKind.ANSWER)
            await asyncio.gather(*turns)
        finally:
            await busy.close()
            await idle.close()
