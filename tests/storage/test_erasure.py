"""Forgetting a person in the store, on both back ends: the walk that decides which rows of a
thread go, and what `forget_user` deletes, keeps and anonymises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.storage import (
    Author,
    ForgetReport,
    PendingApproval,
    PostgresStore,
    SQLiteStore,
    Store,
    Usage,
)
from bot.storage.erasure import plan_erasure, platform_prefix
from tests.support.items import msg, tool_call, tool_output
from tests.support.postgres import PostgresSchema
from tests.support.stores import everything, people_in, summary_of, tokens_in

ANN, BO = Author("U-ANN", "Ann"), Author("U-BO", "Bo")

# ----- the walk that decides what goes ---------------------------------------------------------


def _row(row_id: int, role: str | None, author: str | None = None, **extra: Any) -> tuple[Any, ...]:
    return (row_id, role, author, extra.get("asked_by"), extra.get("costed", False))


@pytest.mark.parametrize(
    ("rows", "ids", "counts"),
    [
        # (messages, replies, tool steps, ledger rows, kept rows naming them)
        ([], (), (0, 0, 0, 0, 0)),
        # Rows before any user message belong to no turn.
        ([_row(1, "assistant"), _row(2, "user", "A")], (2,), (1, 0, 0, 0, 0)),
        # Their turn runs to the next user message, whoever wrote it.
        (
            [
                _row(1, "user", "A"),
                _row(2, None),
                _row(3, None),
                _row(4, "assistant", asked_by="A", costed=True),
                _row(5, "user", "B"),
                _row(6, "assistant", asked_by="B", costed=True),
                _row(7, "user", "A"),
            ],
            (1, 2, 3, 4, 7),
            (2, 1, 2, 1, 0),
        ),
        # A user message with no author (the SDK's) ends their turn too, and stays.
        ([_row(1, "user", "A"), _row(2, "user"), _row(3, "assistant")], (1,), (1, 0, 0, 0, 0)),
        # A row attributed to them whose role cannot be read is still theirs; a kept row
        # naming them as asker is counted to be unlinked.
        (
            [_row(1, None, "A"), _row(2, "assistant", asked_by="A", costed=True)],
            (1,),
            (1, 0, 0, 0, 1),
        ),
    ],
)
def test_the_walk_takes_their_turns_whole_and_nothing_else(
    rows: list[tuple[Any, ...]], ids: tuple[int, ...], counts: tuple[int, ...]
) -> None:
    plan = plan_erasure(rows, "A")
    assert plan.ids == ids
    assert (
        plan.messages,
        plan.replies,
        plan.tool_steps,
        plan.ledger_rows,
        plan.unlinked,
    ) == counts


def test_their_own_thread_is_theirs_whole() -> None:
    rows = [
        _row(1, "assistant"),
        _row(2, "user", "A"),
        _row(3, "assistant", costed=True),  # written by the SDK: whom it answered is unknown
        _row(4, "user"),
    ]
    plan = plan_erasure(rows, "A", whole=True)
    assert plan.ids == (1, 2, 3, 4)
    assert (plan.messages, plan.replies, plan.tool_steps, plan.ledger_rows) == (1, 2, 1, 1)


@pytest.mark.parametrize("platform", ["", "discord:1", "a:b"])
def test_a_platform_name_has_no_colon(platform: str) -> None:
    with pytest.raises(ValueError, match="not a platform name"):
        platform_prefix(platform)


# ----- the store, on both back ends ----------------------------------------------------------


def _approval(approval_id: str, session_id: str, requester: Author) -> PendingApproval:
    return PendingApproval(
        approval_id=approval_id,
        session_id=session_id,
        platform=session_id.split(":")[0],
        requester=requester,
        calls="[]",
        state="{}",
        items="[]",
        instructions="",
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10),
    )


async def test_the_store_forgets_one_person_in_one_platform(store: Store) -> None:
    cost = Usage("m", 100, 10, 5, 300)
    thread = "discord:1:2"
    await store.append(thread, [msg("assistant", "welcome, all")])
    await store.append(
        thread, [msg("user", "[Bo] b1"), msg("assistant", "r-b1")], author=BO, usage=cost
    )
    rows = await store.history(thread, limit=10)
    await store.save_summary(thread, "before Ann", covers_id=rows[-1].id, replaces=None)
    await store.append(
        thread,
        [msg("user", "[Ann] a1"), tool_call("c1"), tool_output("c1"), msg("assistant", "r-a1")],
        author=ANN,
        usage=cost,
    )
    await store.append(
        thread, [msg("user", "[Bo] b2"), msg("assistant", "r-b2")], author=BO, usage=cost
    )
    rows = await store.history(thread, limit=20)
    await store.save_summary(thread, "with Ann", covers_id=rows[-1].id, replaces=rows[2].id)
    await store.append(
        thread, [msg("user", "[Ann] a2"), msg("assistant", "r-a2")], author=ANN, usage=cost
    )
    await store.save_approval(_approval("bo-here", thread, BO))  # its run carries Ann's words
    # An undone turn of Ann's is in the ledger under her name already.
    await store.append(
        "discord:1:3", [msg("user", "[Ann] a3"), msg("assistant", "r-a3")], author=ANN, usage=cost
    )
    await store.undo_last_exchange("discord:1:3")
    await store.save_approval(_approval("ann-there", "discord:1:4", ANN))
    await store.save_approval(_approval("bo-there", "discord:1:5", BO))
    # The same ID on another platform is another person.
    await store.append(
        "slack:T:C:1.0", [msg("user", "[Ann] s1"), msg("assistant", "r-s1")], author=ANN, usage=cost
    )
    before = await everything(store)

    dry = await store.forget_user("discord", "U-ANN", dry_run=True)
    assert await everything(store) == before
    assert await store.approval("ann-there") is not None

    done = await store.forget_user("discord", "U-ANN", dry_run=False)
    assert (
        done
        == dry
        == ForgetReport(
            sessions=("discord:1:2", "discord:1:3", "discord:1:4"),
            messages=2,
            replies=2,
            tool_steps=2,
            summaries=1,
            approvals=2,
            usage_records=3,
        )
    )
    assert [s.item for s in await store.history(thread, limit=20)] == [
        msg("assistant", "welcome, all"),
        msg("user", "[Bo] b1"),
        msg("assistant", "r-b1"),
        msg("user", "[Bo] b2"),
        msg("assistant", "r-b2"),
    ]
    summary = await summary_of(store, thread)
    assert summary is not None
    assert summary.text == "before Ann"
    assert await store.approval("bo-here") is None
    assert await store.approval("ann-there") is None
    assert await store.approval("bo-there") is not None
    after = await everything(store)
    assert after["slack:T:C:1.0"] == before["slack:T:C:1.0"]
    # Every token is still counted; none of it names her.
    assert tokens_in(after) == tokens_in(before)
    assert "U-ANN" not in people_in(after, "discord:")
    assert await store.forget_user("discord", "U-ANN", dry_run=False) == ForgetReport()


async def test_no_word_of_theirs_stays_in_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        for n in range(30):
            await store.append("console:t", [msg("user", f"[Bo] hello {n}")], author=BO)
        secret = [msg("user", "[Ann] zebrafish-secret"), msg("assistant", "zebrafish noted")]
        await store.append("console:t", secret, author=ANN)
        assert await store.search("console:t", "zebrafish", limit=5)  # now in the index too
        await store.forget_user("console", "U-ANN", dry_run=False)
        assert await store.search("console:t", "zebrafish", limit=5) == []
    # Closed, the write-ahead log is folded into the file; the file's bytes are all there is.
    assert not path.with_name(path.name + "-wal").exists()
    assert b"zebrafish" not in path.read_bytes()


async def _until_one_waits_for_a_lock(postgres: PostgresSchema) -> None:
    """Return once a connection of the test's store waits for an advisory lock."""
    admin = await asyncpg.connect(postgres.url)
    try:
        async with asyncio.timeout(30):
            while True:
                waiting = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                    postgres.schema,
                )
                if waiting:
                    return
                await asyncio.sleep(0.01)
    finally:
        await admin.close()


@pytest.mark.parametrize("bo_spoke", [True, False])
async def test_forgetting_on_postgres_erases_a_turn_that_committed_while_it_waited(
    postgres: PostgresSchema, bo_spoke: bool
) -> None:
    thread = "discord:1:2"
    cost = Usage("m", 100, 10, 5, 300)
    # A name of this test's own, so only its connections are watched.
    url = f"{postgres.url}&application_name={postgres.schema}"
    async with await PostgresStore.open(url, pool_size=4) as store:
        bos = [msg("user", "[Bo] b1"), msg("assistant", "r-b1")] if bo_spoke else []
        if bos:
            await store.append(thread, bos, author=BO)
        await store.append(thread, [msg("user", "[Ann] a1"), msg("assistant", "r-a1")], author=ANN)
        async with store.hold_thread(thread, wait=5):  # a turn under way
            forgetting = asyncio.create_task(store.forget_user("discord", "U-ANN", dry_run=False))
            await _until_one_waits_for_a_lock(postgres)
            # The turn stores her next message and its answer, and lets go of the thread.
            await store.append(
                thread, [msg("user", "[Ann] a2"), msg("assistant", "r-a2")], author=ANN, usage=cost
            )
        report = await forgetting
    async with await PostgresStore.open(postgres.url) as store:
        assert await store.read_items(thread) == bos
        assert [s.session_id for s in await store.list_sessions()] == ([thread] if bos else [])
        assert (report.messages, report.replies, report.usage_records) == (2, 2, 1)
        assert "U-ANN" not in people_in(await everything(store, [thread]), "discord:")
