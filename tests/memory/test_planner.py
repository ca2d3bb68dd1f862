"""Long-thread memory: the store's window, summaries and search, and the planner that uses them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from agents import SQLiteSession
from aiosqlite import connect as aiosqlite_connect

from bot.app import build_planner
from bot.config import Config
from bot.memory.exchanges import fit_exchanges
from bot.storage import Author, SQLiteStore, Usage
from tests.support.items import msg, tool_call, tool_output
from tests.support.stores import density_of, summary_of

ANN = Author("u1", "Ann")


@pytest.fixture
async def store(tmp_path: Path):
    async with await SQLiteStore.open(tmp_path / "memory.sqlite3") as opened:
        yield opened


def plant_corrupt_rows(path: Path, session_id: str, count: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
            [(session_id, "{not json") for _ in range(count)],
        )


async def test_window_reads_skip_unreadable_rows_and_still_fill(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("t", [msg("user", f"m{n}") for n in range(6)])
    plant_corrupt_rows(path, "t", 2)
    async with await SQLiteStore.open(path) as store:
        await store.append("t", [msg("user", "m6")])
        plant_corrupt_rows(path, "t", 3)
        await store.append("t", [msg("user", "m7")])
        newest = await store.read_items("t", 4)
        assert newest == [msg("user", f"m{n}") for n in (4, 5, 6, 7)]
        sdk = SQLiteSession("t", path)
        try:
            assert await sdk.get_items(4) == newest  # the SDK's own reading of the same rows
        finally:
            sdk.close()
        window, complete = await store.read_window("t", max_chars=10**6)
        assert complete
        assert [stored.item for stored in window] == [msg("user", f"m{n}") for n in range(8)]


async def test_windows_keep_whole_exchanges_and_tool_calls_with_outputs(
    store: SQLiteStore,
) -> None:
    first = [msg("user", "q1"), tool_call("c1"), tool_output("c1"), msg("assistant", "a1")]
    second = [msg("user", "q2"), msg("assistant", "a2")]
    await store.append("t", first + second)
    read, _ = await store.read_window("t", max_chars=10**6)
    second_size = sum(stored.chars for stored in read[-2:])
    # Room for the second exchange and part of the first: the first is left out whole.
    assert [s.item for s in fit_exchanges(read, second_size + 60)] == second
    assert [s.item for s in fit_exchanges(read, 10**6)] == first + second


async def test_a_window_read_costs_the_window_not_the_thread(store: SQLiteStore) -> None:
    await store.append("t", [msg("user", "x" * 100) for _ in range(2_000)])
    window, complete = await store.read_window("t", max_chars=1_000)
    assert not complete
    assert 8 <= len(window) <= 10  # ~115 characters each, stopping at the first past 1,000


async def test_summaries_never_cover_a_message_that_is_gone(store: SQLiteStore) -> None:
    await store.append("t", [msg("user", "q1"), msg("assistant", "a1")])
    await store.append("t", [msg("user", "q2"), msg("assistant", "a2")])
    await store.append("t", [msg("user", "q3"), msg("assistant", "a3")])
    ids = [stored.id for stored in await store.history("t", limit=10)]
    assert await store.save_summary("t", "first", covers_id=ids[1], replaces=None)
    assert await store.save_summary("t", "second", covers_id=ids[3], replaces=ids[1])
    # Built on a summary that is no longer the newest: refused.
    assert not await store.save_summary("t", "stale", covers_id=ids[5], replaces=ids[1])
    await store.undo_last_exchange("t")  # q3/a3 were never summarised
    assert (summary := await summary_of(store, "t")) is not None
    assert summary.text == "second"
    await store.undo_last_exchange("t")  # q2/a2 were: back to the summary before them
    assert (summary := await summary_of(store, "t")) is not None
    assert summary.text == "first"
    await store.clear("t")
    assert await summary_of(store, "t") is None


async def test_a_summary_of_a_thread_forgotten_meanwhile_is_dropped(store: SQLiteStore) -> None:
    await store.append("t", [msg("user", "q1"), msg("assistant", "a1")])
    ids = [stored.id for stored in await store.history("t", limit=10)]
    await store.clear("t")
    assert not await store.save_summary("t", "late", covers_id=ids[1], replaces=None)
    assert await summary_of(store, "t") is None


async def test_search_finds_words_in_its_own_thread_only(store: SQLiteStore) -> None:
    await store.append(
        "a", [msg("user", "[Ann] the launch code is ZX-4471"), msg("assistant", "ok")]
    )
    await store.append("b", [msg("user", "[Bob] the launch code is QQ-0000")])
    await store.append("a", [msg("user", "[Ann] lunch at noon?")])
    found = await store.search("a", "launch code", limit=5)
    assert [stored.item["content"] for stored in found] == ["[Ann] the launch code is ZX-4471"]
    assert [s.item["content"] for s in await store.search("b", "launch", limit=5)] == [
        "[Bob] the launch code is QQ-0000"
    ]
    # Anything people type is a query, never FTS5 syntax that could fail or escape the thread.
    for query in ['"', "NEAR(", "a OR b:*", "'; DROP TABLE x; --", "", "🚀"]:
        await store.search("a", query, limit=5)


async def test_search_reaches_the_words_of_assistant_output_items(store: SQLiteStore) -> None:
    answer = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "the invoice is INV-99812", "annotations": []}],
    }
    await store.append("t", [msg("user", "[Ann] which invoice?"), answer, tool_output("c1")])
    found = await store.search("t", "INV-99812", limit=5)
    assert found[0].item == answer


async def test_an_existing_database_is_indexed_on_open_and_kept_current(tmp_path: Path) -> None:
    path = tmp_path / "sdk-made.sqlite3"
    sdk = SQLiteSession("t", path)
    await sdk.add_items([msg("user", "[Ann] remember the word pelican")])  # type: ignore[list-item]
    async with await SQLiteStore.open(path) as store:
        assert len(await store.search("t", "pelican", limit=5)) == 1
        # The SDK's own writes and deletes keep the index current too (triggers).
        await sdk.add_items([msg("user", "[Ann] and the word walrus")])  # type: ignore[list-item]
        assert len(await store.search("t", "walrus", limit=5)) == 1
        await sdk.pop_item()
        assert await store.search("t", "walrus", limit=5) == []
    sdk.close()


async def test_usage_is_stored_with_the_turn_and_measures_the_thread(store: SQLiteStore) -> None:
    assert await density_of(store, "t") is None
    await store.append(
        "t",
        [msg("user", "hi"), msg("assistant", "hello")],
        author=ANN,
        usage=Usage("m", input_tokens=300, cached_tokens=0, output_tokens=5, input_chars=1_000),
    )
    assert await density_of(store, "t") == pytest.approx(0.3)
    assert await density_of(store, "other") is None


async def test_the_plan_grows_the_window_in_place_until_the_budget_and_cuts_only_then(
    store: SQLiteStore,
) -> None:
    config = Config(context_tokens=8_000, max_output_tokens=1_000, summary_tokens=500)
    memory = build_planner(config, store)
    previous: list[int] = []
    for turn in range(200):
        plan = await memory.plan("t", ANN, f"message {turn}")
        ids = [stored.id for stored in plan.window]
        assert plan.estimated_tokens <= config.context_tokens - config.output_reserve
        if not plan.needs_summary:
            assert ids[: len(previous)] == previous  # the same start: the prefix is unchanged
        previous = ids
        answer = msg("assistant", "an answer of some length " * 10)
        await store.append("t", [plan.item, answer], author=ANN)
    assert plan.needs_summary  # no summary was ever made, so the window had to be cut
    assert plan.window[0].item["role"] == "user"


async def test_images_take_their_tokens_out_of_the_window(store: SQLiteStore) -> None:
    config = Config(context_tokens=8_000, max_output_tokens=1_000, summary_tokens=500)
    memory = build_planner(config, store)
    for turn in range(100):
        await store.append("t", [msg("user", f"q {turn} " * 20), msg("assistant", "a " * 50)])
    plain = await memory.plan("t", ANN, "look")
    pictured = await memory.plan("t", ANN, "look", extra_tokens=3_000)
    assert len(pictured.window) < len(plain.window)
    assert pictured.estimated_tokens <= config.context_tokens - config.output_reserve


async def test_a_message_larger_than_the_budget_is_cut_to_fit(store: SQLiteStore) -> None:
    memory = build_planner(Config(context_tokens=8_000), store)
    plan = await memory.plan("t", ANN, "é" * 50_000)
    assert plan.kept_chars is not None
    assert len(json.dumps(plan.item)) <= memory.history_chars(0.4) // 2


async def test_a_window_longer_than_one_page_skips_corrupt_rows_and_fills(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append(
            "t", [msg("user" if n % 2 == 0 else "assistant", f"m{n}") for n in range(300)]
        )
    plant_corrupt_rows(path, "t", 70)  # more than a whole page of the newest rows
    async with await SQLiteStore.open(path) as store:
        memory = build_planner(Config(), store)
        plan = await memory.plan("t", ANN, "next")
        assert [stored.item["content"] for stored in plan.window] == [f"m{n}" for n in range(300)]
        assert not plan.needs_summary


async def test_deleting_a_turn_keeps_what_it_cost_in_the_ledger(store: SQLiteStore) -> None:
    cost = Usage("m", input_tokens=300, cached_tokens=100, output_tokens=5, input_chars=1_000)
    await store.append("t", [msg("user", "hi"), msg("assistant", "hello")], author=ANN, usage=cost)
    await store.undo_last_exchange("t")
    async with aiosqlite_connect(store.path) as conn:
        rows = await conn.execute_fetchall(
            "SELECT session_id, kind, model, input_tokens, cached_tokens, output_tokens "
            "FROM bot_usage"
        )
    assert list(rows) == [("t", "turn", "m", 300, 100, 5)]


async def test_the_index_stays_exact_through_deletes_before_and_after_indexing(
    store: SQLiteStore,
) -> None:
    await store.append("t", [msg("user", "[Ann] walrus one"), msg("assistant", "walrus two")])
    await store.undo_last_exchange("t")  # deleted before it was ever indexed
    await store.append("t", [msg("user", "[Ann] walrus three"), msg("assistant", "ok")])
    assert [s.item["content"] for s in await store.search("t", "walrus", limit=5)] == [
        "[Ann] walrus three"
    ]
    await store.undo_last_exchange("t")  # deleted after it was indexed
    assert await store.search("t", "walrus", limit=5) == []
    await store.append("t", [msg("user", "[Ann] walrus four")])
    await store.clear("t")
    assert await store.search("t", "walrus", limit=5) == []
    async with aiosqlite_connect(store.path) as conn:
        # FTS5's own consistency check of a contentless index; raises if it is corrupt.
        await conn.execute(
            "INSERT INTO bot_search (bot_search, rank) VALUES ('integrity-check', 0)"
        )
