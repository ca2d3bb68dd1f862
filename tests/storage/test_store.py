"""The store contract, on both back ends: every test takes `store` and runs against SQLite and
PostgreSQL alike (the same functions, parametrised). SQLite files have `test_sqlite.py`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agents.memory import Session

from bot.storage import (
    Author,
    ClearResult,
    ForgetReport,
    PendingApproval,
    PostgresStore,
    SQLiteStore,
    Store,
    ThreadBusyError,
    Usage,
)
from tests.support.items import TRICKY, msg, tool_call, tool_output
from tests.support.stores import insert_raw, summary_of


async def test_store_session_satisfies_the_sdk_protocol(store: Store) -> None:
    assert isinstance(store.session("t"), Session)


async def test_round_trip_keeps_order_unicode_and_sql_looking_text(store: Store) -> None:
    session = store.session("thread-1")
    await session.add_items(TRICKY)  # type: ignore[arg-type]
    assert await session.get_items() == TRICKY


@pytest.mark.parametrize(
    "session_id",
    ["a'b", 'x"; DROP TABLE agent_sessions; --', "../../etc/passwd", "slack:T1:C1:1700.01", "🧵"],
)
async def test_session_ids_with_sql_and_path_characters(store: Store, session_id: str) -> None:
    session = store.session(session_id)
    await session.add_items([msg("user", "hi")])  # type: ignore[list-item]
    assert await session.get_items() == [msg("user", "hi")]
    assert [s.session_id for s in await store.list_sessions()] == [session_id]


async def test_session_settings_limit_applies_when_no_limit_is_passed(store: Store) -> None:
    items = [msg("user", str(i)) for i in range(5)]
    await store.session("t").add_items(items)  # type: ignore[arg-type]
    assert await store.session("t", limit=2).get_items() == items[-2:]


async def test_pop_item_matches_sqlite_session(store: Store) -> None:
    session = store.session("t")
    assert await session.pop_item() is None
    await session.add_items([msg("user", "a"), msg("assistant", "b")])  # type: ignore[list-item]
    assert await session.pop_item() == msg("assistant", "b")
    assert await session.get_items() == [msg("user", "a")]
    assert await session.pop_item() == msg("user", "a")
    assert await session.pop_item() is None


async def test_clear_session_only_touches_its_thread(store: Store) -> None:
    await store.session("a").add_items([msg("user", "a")])  # type: ignore[list-item]
    await store.session("b").add_items([msg("user", "b")])  # type: ignore[list-item]
    await store.session("a").clear_session()
    assert await store.session("a").get_items() == []
    assert await store.session("b").get_items() == [msg("user", "b")]
    assert [s.session_id for s in await store.list_sessions()] == ["b"]


async def test_undo_removes_the_last_exchange_with_its_tool_steps(store: Store) -> None:
    first = [msg("user", "[A] one"), msg("assistant", "first answer")]
    last = [msg("user", "[A] two"), tool_call("c1"), tool_output("c1"), msg("assistant", "done")]
    await store.append("t", first, author=Author("a", "A"))
    await store.append("t", last, author=Author("a", "A"))
    removed = await store.undo_last_exchange("t")
    assert [r.item for r in removed] == last
    assert removed[0].author == Author("a", "A")
    assert await store.read_items("t") == first
    assert [r.item for r in await store.undo_last_exchange("t")] == first
    assert await store.undo_last_exchange("t") == []


async def test_history_has_authors_and_times(store: Store) -> None:
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    await store.append(
        "t", [msg("user", "[Ann] hi"), msg("assistant", "hello")], author=Author("u1", "Ann")
    )
    entries = await store.history("t", limit=10)
    assert [e.author for e in entries] == [Author("u1", "Ann"), None]
    assert all(before <= e.created_at <= datetime.now(UTC) for e in entries)
    assert [e.item for e in await store.history("t", limit=1)] == [msg("assistant", "hello")]
    assert [e.item for e in await store.history("t", limit=1, offset=1)] == [
        msg("user", "[Ann] hi")
    ]


async def test_list_sessions_counts_items_newest_first(store: Store) -> None:
    await store.append("old", [msg("user", "a")])
    await store.append("new", [msg("user", "a"), msg("assistant", "b")])
    listed = {s.session_id: s.items for s in await store.list_sessions()}
    assert listed == {"old": 1, "new": 2}
    assert await store.has_items("new")
    assert not await store.has_items("never")


async def test_delete_idle_is_the_only_way_sessions_expire(store: Store) -> None:
    await store.append("a", [msg("user", "a")])
    await store.append("b", [msg("user", "b")])
    assert await store.delete_idle(timedelta(days=1)) == 0
    later = datetime.now(UTC) + timedelta(days=2)
    assert await store.delete_idle(timedelta(days=1), now=later) == 2
    assert await store.list_sessions() == []
    assert await store.read_items("a") == []


async def test_concurrent_appends_all_land_in_order(store: Store) -> None:
    async def thread_writer(name: str) -> None:
        for i in range(20):
            await store.append(name, [msg("user", f"{name}-{i}"), msg("assistant", f"ok {i}")])

    await asyncio.gather(*(thread_writer(f"t{n}") for n in range(25)))
    for n in range(25):
        items = await store.read_items(f"t{n}")
        assert [m["content"] for m in items[::2]] == [f"t{n}-{i}" for i in range(20)]


async def test_a_turn_replacing_its_tail_is_one_transaction(store: Store) -> None:
    await store.append("t", [msg("user", "a"), msg("assistant", "old answer")])
    old = (await store.history("t", limit=1))[0]
    await store.append("t", [msg("assistant", "new answer")], replace_from=old.id)
    assert await store.read_items("t") == [msg("user", "a"), msg("assistant", "new answer")]
    # A failing write leaves the thread exactly as it was: nothing deleted, nothing added.
    with pytest.raises(TypeError):
        await store.append("t", [{"role": "user", "content": object()}], replace_from=1)
    assert await store.read_items("t") == [msg("user", "a"), msg("assistant", "new answer")]


async def test_windows_read_newest_first_up_to_a_budget(store: Store) -> None:
    items = [msg("user" if i % 2 == 0 else "assistant", f"m{i:03}") for i in range(200)]
    await store.append("t", items)
    size = len(json.dumps(items[0]))  # a user item; an assistant item is longer
    window, complete = await store.read_window("t", max_chars=10 * size)
    assert not complete
    assert sum(w.chars for w in window[1:]) <= 10 * size < sum(w.chars for w in window)
    assert [w.item for w in window] == items[-len(window) :]
    read = await store.read_memory("t")
    assert read.summary is None
    assert [w.item for w in read.newest] == items[-64:]
    assert read.continue_below == read.newest[0].id
    older, _ = await store.read_window("t", before_id=read.continue_below, max_chars=size)
    assert [w.item for w in older] == items[-65:-64]  # one item already overflows
    first, last = read.newest[0].id, read.newest[-1].id
    middle = await store.read_range("t", after_id=first, before_id=last, max_chars=size)
    assert [w.item for w in middle] == items[-63:-62]  # oldest first
    assert await store.count_messages("t", up_to=first) == 200 - 63


async def test_summaries_are_compare_and_set_and_die_with_their_messages(store: Store) -> None:
    await store.append("t", [msg("user", "one"), msg("assistant", "two")])
    await store.append("t", [msg("user", "three"), msg("assistant", "four")])
    rows = await store.history("t", limit=10)
    assert await store.save_summary("t", "S1", covers_id=rows[1].id, replaces=None)
    assert not await store.save_summary("t", "stale", covers_id=rows[3].id, replaces=None)
    assert await store.save_summary("t", "S2", covers_id=rows[3].id, replaces=rows[1].id)
    summary = await summary_of(store, "t")
    assert summary is not None
    assert (summary.text, summary.covers_id) == ("S2", rows[3].id)
    read = await store.read_memory("t")
    assert read.summary == summary
    assert read.newest == []  # everything is covered
    await store.undo_last_exchange("t")  # deletes what S2 covered: back to S1
    fallback = await summary_of(store, "t")
    assert fallback is not None
    assert fallback.text == "S1"
    assert not await store.save_summary("t", "gone", covers_id=rows[3].id, replaces=rows[1].id)
    await store.clear("t")
    assert await summary_of(store, "t") is None


async def test_search_finds_words_and_prefixes_in_this_thread_only(store: Store) -> None:
    await store.append(
        "t", [msg("user", "the deploy key is purple-falcon"), msg("assistant", "ok")]
    )
    await store.append("t", [msg("user", "Café opening hours?"), tool_call("c1", "secret")])
    await store.append("other", [msg("user", "purple elsewhere")])
    found = await store.search("t", "PURPLE falc", limit=5)
    assert [f.item["content"] for f in found] == ["the deploy key is purple-falcon"]
    assert [f.item["content"] for f in await store.search("t", "café", limit=5)] == [
        "Café opening hours?"
    ]
    # Some words match: the OR fallback; query syntax is just words.
    either = await store.search("t", 'purple OR "hours" AND) NOT(', limit=5)
    assert {f.item["content"] for f in either} >= {"the deploy key is purple-falcon"}
    assert await store.search("t", "secret", limit=5) == []  # tool calls are not searched
    assert await store.search("t", "   ", limit=5) == []
    await store.undo_last_exchange("t")
    assert await store.search("t", "café", limit=5) == []


async def test_usage_is_kept_with_the_turn_and_outlives_it_in_the_ledger(store: Store) -> None:
    cost = Usage("m", input_tokens=100, cached_tokens=40, output_tokens=7, input_chars=300)
    await store.append("t", [msg("user", "hi"), msg("assistant", "yo")], usage=cost)
    await store.record_usage("t", Usage("s", 50, 0, 5, 120), kind="summary")
    assert await store.read_memory("t") == await store.read_memory("t")
    assert (await store.read_memory("t")).tokens_per_char == pytest.approx(100 / 300)
    dumped = await store.dump_thread("t")
    assert dumped.messages[-1].usage == cost
    assert [e.kind for e in dumped.ledger] == ["summary"]
    await store.undo_last_exchange("t")
    ledger = (await store.dump_thread("t")).ledger
    assert [(e.kind, e.usage.input_tokens) for e in ledger] == [("summary", 50), ("turn", 100)]


async def test_deliveries_are_claimed_once(store: Store) -> None:
    assert not store.delivered("slack:Ev1")
    assert await store.first_delivery("slack:Ev1")
    assert store.delivered("slack:Ev1")
    assert not await store.first_delivery("slack:Ev1")
    assert await store.first_delivery("discord:Ev1")


async def test_holding_a_thread_serialises_and_gives_up_when_busy(store: Store) -> None:
    async with store.hold_thread("t", wait=1.0):
        await store.append("t", [msg("user", "a")])
        if isinstance(store, PostgresStore):  # one process has nothing to hold across workers
            with pytest.raises(ThreadBusyError):
                async with store.hold_thread("t", wait=0.1):
                    pass
        async with store.hold_thread("another thread", wait=0.1):
            pass
    async with store.hold_thread("t", wait=0.1):
        pass
    assert await store.read_items("t") == [msg("user", "a")]


async def test_a_dumped_thread_loads_identically_once(store: Store, tmp_path: Path) -> None:
    await store.append("t", TRICKY[:2], author=Author("u1", "Ann"))
    await store.append("t", TRICKY[2:], usage=Usage("m", 10, 0, 2, 40))
    rows = await store.history("t", limit=10)
    await store.save_summary("t", "summary", covers_id=rows[1].id, replaces=None)
    await store.record_usage("t", Usage("s", 5, 0, 1, 9), kind="summary")
    dump = await store.dump_thread("t")
    async with await SQLiteStore.open(tmp_path / "copy.sqlite3") as copy:
        assert await copy.load_thread(dump)
        assert not await copy.load_thread(dump)
        again = await copy.dump_thread("t")
        assert again.same_memory(dump)
        assert await copy.read_items("t") == TRICKY
        assert len(again.messages) == len(dump.messages)


async def test_two_copies_of_a_thread_loading_at_once_store_it_once(
    store: Store, tmp_path: Path
) -> None:
    async with await SQLiteStore.open(tmp_path / "source.sqlite3") as source:
        await source.append("t", TRICKY, author=Author("u1", "Ann"), usage=Usage("m", 9))
        dump = await source.dump_thread("t")
    loaded = await asyncio.gather(*(store.load_thread(dump) for _ in range(4)))
    assert sorted(loaded) == [False, False, False, True]
    assert (await store.dump_thread("t")).same_memory(dump)


async def test_rows_that_are_no_json_trip_no_operation(store: Store) -> None:
    await store.append("t", [msg("user", "keep"), msg("assistant", "x")])
    await insert_raw(store, "t", "{not json")
    assert await store.count_items("t") == 3
    assert await store.count_messages("t", up_to=2**31 - 1) == 2  # it has no role
    assert [s.item for s in await store.history("t", limit=10)] == [
        msg("user", "keep"),
        msg("assistant", "x"),
    ]
    assert await store.read_items("t") == [msg("user", "keep"), msg("assistant", "x")]
    # Popping skips it, as the SDK's sessions do; /undo walks back over it.
    assert await store.pop_item("t") == msg("assistant", "x")
    await insert_raw(store, "t", "[1, 2]")
    assert [r.item for r in await store.undo_last_exchange("t")] == [msg("user", "keep"), [1, 2]]
    assert await store.count_items("t") == 0
    thread = "console:u"
    await store.append(thread, [msg("user", "a"), msg("assistant", "b")], author=Author("p", "P"))
    await insert_raw(store, thread, "\\x00 not json")
    # Forgetting reads it as a step of their turn.
    assert await store.forget_user("console", "p", dry_run=True) == ForgetReport(
        sessions=(thread,), messages=1, replies=1, tool_steps=1
    )
    assert await store.clear(thread) == ClearResult(items=3, messages=2)


def _approval(approval_id: str, session_id: str, *, minutes: float = 15) -> PendingApproval:
    return PendingApproval(
        approval_id=approval_id,
        session_id=session_id,
        platform="slack",
        requester=Author("U1", "Zoë ✓"),
        calls='[{"name": "delete", "arguments": "{}", "call_id": "c1"}]',
        state='{"state": "ünïcode \\u2713"}',
        items=json.dumps([msg("user", "delete it"), tool_call("c1", "delete")]),
        instructions="be careful",
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes),
    )


async def test_a_paused_turn_is_kept_found_and_settled_with_its_turn(store: Store) -> None:
    first = _approval("a1", "t")
    await store.save_approval(first)
    assert await store.approval("a1") == first
    assert await store.approval_in("t") == first
    assert await store.approval("nope") is None
    await store.address_approval("a1", '{"ts": "1.2"}')
    found = await store.approval("a1")
    assert found is not None
    assert found.address == '{"ts": "1.2"}'
    # One per thread: pausing again replaces it.
    await store.save_approval(_approval("a2", "t"))
    assert await store.approval("a1") is None
    # Settling stores the turn and drops the approval in one transaction.
    items = [msg("user", "delete it"), tool_call("c1", "delete"), tool_output("c1")]
    await store.append("t", items, settles="a2")
    assert await store.approval_in("t") is None
    assert [s.item for s in await store.history("t", limit=10)] == items


async def test_due_approvals_and_forgetting_a_thread(store: Store) -> None:
    await store.save_approval(_approval("late", "t1", minutes=-1))
    await store.save_approval(_approval("later", "t2", minutes=-0.5))
    await store.save_approval(_approval("fresh", "t3", minutes=10))
    due = await store.due_approvals(datetime.now(UTC))
    assert [a.approval_id for a in due] == ["late", "later"]
    await store.append("t1", [], settles="late")  # settled by a turn storing nothing
    assert await store.approval("late") is None
    await store.clear("t2")
    assert await store.approval("later") is None
    assert await store.approval("fresh") is not None
    withdrawn = await store.withdraw_approval("t3")
    assert withdrawn is not None
    assert withdrawn.approval_id == "fresh"
    assert await store.approval("fresh") is None
    assert await store.withdraw_approval("t3") is None


async def test_an_approval_marked_running_is_due_until_marked_waiting_again(
    store: Store,
) -> None:
    await store.save_approval(_approval("a1", "t", minutes=10))
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    await store.approval_running("a1", since)
    running = await store.approval_in("t")
    assert running is not None
    assert running.running_since == since
    # Due before its deadline: the sweep tells of a call whose process died inside it.
    assert [a.approval_id for a in await store.due_approvals(datetime.now(UTC))] == ["a1"]
    await store.approval_running("a1", None)  # nothing ran after all: it waits again
    waiting = await store.approval("a1")
    assert waiting is not None
    assert waiting.running_since is None
    assert await store.due_approvals(datetime.now(UTC)) == []


async def test_a_model_that_cannot_see_is_kept_per_model_and_endpoint(store: Store) -> None:
    at = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert await store.blind_since("m", "http://127.0.0.1:8000/v1") is None
    await store.remember_blind("m", "http://127.0.0.1:8000/v1", at=at, reason="no image input")
    later = at + timedelta(hours=3)
    await store.remember_blind("m", "http://127.0.0.1:8000/v1", at=later, reason="still none")
    assert await store.blind_since("m", "http://127.0.0.1:8000/v1") == later
    assert await store.blind_since("m", "http://127.0.0.1:9000/v1") is None
    assert await store.blind_since("m2", "http://127.0.0.1:8000/v1") is None
