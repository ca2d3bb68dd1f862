"""What the store keeps of profiles, on both back ends: each turn's and summary's profile
(kept in the ledger when the turn is deleted), paused turns', and the choices made in the chat."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite

from bot.storage import Author, PendingApproval, SQLiteStore, Store, Usage
from bot.storage.sqlite.schema import MIGRATIONS
from tests.support.items import msg
from tests.support.stores import everything

ANN = Author("u1", "Ann")


async def turn(store: Store, session_id: str, usage: Usage) -> None:
    await store.append(
        session_id, [msg("user", "hi"), msg("assistant", "hello")], author=ANN, usage=usage
    )


async def test_usage_adds_up_by_profile_and_outlives_the_turns(store: Store) -> None:
    await turn(store, "discord:1:a", Usage("m", 100, 0, 10, 400, profile="support"))
    await turn(store, "discord:1:a", Usage("m", 50, 0, 5, 200))
    await turn(store, "discord:1:b", Usage("m", 7, 0, 3, 20, profile="support"))
    await store.record_usage(
        "discord:1:a", Usage("s", 20, 0, 2, 80, profile="support"), kind="summary"
    )
    before = {line.key: line.totals.tokens for line in await store.usage_report("profile")}
    assert before == {"support": 142, "": 55}
    thread = await store.usage_report("profile", session_id="discord:1:a")
    assert {line.key: line.totals.tokens for line in thread} == {"support": 132, "": 55}
    since = await store.usage_report(
        "profile", since=datetime.now(UTC) - timedelta(hours=1), session_id="discord:1:b"
    )
    assert [(line.key, line.totals.calls) for line in since] == [("support", 1)]
    # Undone and forgotten turns keep their profile in the ledger.
    await store.undo_last_exchange("discord:1:a")
    await store.clear("discord:1:b")
    after = {line.key: line.totals.tokens for line in await store.usage_report("profile")}
    assert after == before


async def test_a_dump_carries_the_profile(store: Store) -> None:
    await turn(store, "t", Usage("m", 10, 0, 1, 40, profile="support"))
    await store.record_usage("t", Usage("s", 5, 0, 1, 20, profile="support"), kind="summary")
    dumped = (await everything(store))["t"]
    assert dumped.messages[-1].usage == Usage("m", 10, 0, 1, 40, profile="support")
    assert [entry.usage.profile for entry in dumped.ledger] == ["support"]


async def test_a_paused_turn_keeps_its_profile(store: Store) -> None:
    record = PendingApproval(
        approval_id="a1",
        session_id="t",
        platform="discord",
        requester=ANN,
        calls="[]",
        state="{}",
        items="[]",
        instructions="x",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        profile="support",
    )
    await store.save_approval(record)
    found = await store.approval("a1")
    assert found is not None
    assert found.profile == "support"


async def test_choices_are_set_replaced_and_dropped(store: Store) -> None:
    assert await store.profile_choices() == {}
    await store.choose_profile("discord:1:c", "support", by="discord:u1")
    await store.choose_profile("slack:T1:C1", "general", by="slack:U1")
    await store.choose_profile("discord:1:c", "general", by="discord:u2")
    assert await store.profile_choices() == {"discord:1:c": "general", "slack:T1:C1": "general"}
    assert await store.profile_choice("discord:1:c") == "general"
    await store.choose_profile("discord:1:c", None, by="discord:u2")
    assert await store.profile_choice("discord:1:c") is None
    assert await store.profile_choices() == {"slack:T1:C1": "general"}


async def test_a_file_from_before_profiles_is_upgraded_with_its_usage(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    async with aiosqlite.connect(path) as conn:
        for number, step in enumerate(MIGRATIONS[:5], start=1):
            await step(conn)
            await conn.execute(f"PRAGMA user_version = {number}")
        await conn.execute(
            "INSERT INTO agent_messages (session_id, message_data, model, input_tokens, "
            "cached_tokens, output_tokens, input_chars, asked_by) "
            "VALUES ('t', '{\"role\": \"user\", \"content\": \"hi\"}', 'm', 10, 0, 2, 30, 'u1')"
        )
        await conn.commit()
    async with await SQLiteStore.open(path) as opened:
        report = await opened.usage_report("profile")
        assert [(line.key, line.totals.tokens) for line in report] == [("", 12)]
        await opened.choose_profile("console:-:desk", "support", by="console:root")
        # Version 7 counted what the file held into its day counters.
        days = await opened.daily_usage(datetime(2000, 1, 1, tzinfo=UTC))
        assert [(d.platform, d.model, d.turns, d.tokens) for d in days] == [("", "m", 1, 12)]
        # And each thread's totals, on its row.
        row = await opened.thread_row("t")
        assert row is not None
        assert (row.items, row.tokens) == (1, 12)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
