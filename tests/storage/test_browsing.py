"""The operator page's reads, on both back ends: the thread list a page at a time with its
filters, a thread's rows with their usage, searching every thread, the days' usage and the
approvals waiting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from bot.storage import Author, PendingApproval, PostgresStore, Store, ThreadFilter, Usage
from bot.storage.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from tests.support.items import msg
from tests.support.postgres import PostgresSchema
from tests.support.usage import NOON, populate


async def test_the_thread_list_pages_by_activity_with_counts_people_and_tokens(
    store: Store,
) -> None:
    await populate(store)
    first = await store.thread_page(ThreadFilter(), limit=2)
    assert [row.session_id for row in first.rows] == ["slack:T1:C1:1.0", "discord:1:20"]
    assert first.more is not None
    rest = await store.thread_page(ThreadFilter(), after=first.more, limit=2)
    assert [row.session_id for row in rest.rows] == ["discord:1:10"]
    assert rest.more is None
    busy = rest.rows[0]
    # Three turns left (the fourth was undone): six rows, two people; the tokens count the
    # undone turn and the summary too, as /usage does.
    assert busy.items == 6
    assert [a.id for a in busy.people] == ["ann", "bob"]
    assert busy.tokens == (await store.thread_usage("discord:1:10")).tokens


async def test_the_thread_list_filters_by_platform_person_and_time(store: Store) -> None:
    await populate(store)

    async def ids(where: ThreadFilter) -> list[str]:
        return [row.session_id for row in (await store.thread_page(where)).rows]

    assert await ids(ThreadFilter(platform="slack")) == ["slack:T1:C1:1.0"]
    assert await ids(ThreadFilter(platform="discord", person="bob")) == ["discord:1:10"]
    assert await ids(ThreadFilter(person="nobody")) == []
    # Every thread's last turn was two hours before NOON.
    assert len(await ids(ThreadFilter(active_from=NOON - timedelta(hours=3)))) == 3
    assert await ids(ThreadFilter(active_from=NOON - timedelta(hours=1))) == []
    assert await ids(ThreadFilter(platform="slack", active_before=NOON)) == ["slack:T1:C1:1.0"]


async def test_a_threads_rows_come_a_page_at_a_time_with_their_usage(store: Store) -> None:
    await populate(store)
    newest = await store.thread_rows("discord:1:10", limit=4)
    assert len(newest) == 4
    assert [m.id for m in newest] == sorted(m.id for m in newest)
    older = await store.thread_rows("discord:1:10", before_id=newest[0].id, limit=4)
    assert len(older) == 2
    answers = [m for m in older + newest if m.usage is not None]
    assert [m.usage.model for m in answers if m.usage] == ["gpt-a", "gpt-a", "gpt-b"]
    assert older[0].author == Author("ann", "Ann")


async def test_search_finds_words_in_every_thread_newest_first_and_never_forgotten_ones(
    store: Store,
) -> None:
    await store.append("a", [msg("user", "the blue heron lands"), msg("assistant", "ok")])
    await store.append("b", [msg("user", "a heronry by the lake")])
    await store.append("c", [msg("user", "nothing to see")])
    found = await store.search_threads("heron", limit=10)
    assert [(f.session_id, f.stored.role) for f in found] == [("b", "user"), ("a", "user")]
    more = await store.search_threads("heron", before_id=found[0].stored.id, limit=10)
    assert [f.session_id for f in more] == ["a"]
    assert [f.session_id for f in await store.search_threads("blue heron", limit=10)] == ["a"]
    assert await store.search_threads("<script>", limit=10) == []
    await store.clear("a")
    await store.append("d", [msg("user", "heron again")])
    assert [f.session_id for f in await store.search_threads("heron", limit=10)] == ["d", "b"]


async def test_daily_usage_adds_up_turns_and_tokens_by_platform_and_model(store: Store) -> None:
    await populate(store)
    days = await store.daily_usage(NOON - timedelta(days=30))
    by = {(d.day, d.platform, d.model): (d.turns, d.tokens) for d in days}
    today, earlier = NOON.strftime("%Y-%m-%d"), (NOON - timedelta(days=10)).strftime("%Y-%m-%d")
    assert by[today, "discord", "gpt-a"] == (2, 4400 + 550)
    assert by[today, "discord", "gpt-b"] == (1, 3300)
    assert by[today, "slack", "gpt-a"] == (1, 7700)
    assert by[earlier, "discord", "gpt-a"] == (1, 2200)
    assert all(d.day >= (NOON - timedelta(days=30)).strftime("%Y-%m-%d") for d in days)
    assert await store.active_threads(NOON.replace(hour=0)) == 3
    assert await store.active_threads(NOON) == 0


async def test_waiting_approvals_are_listed_soonest_first(store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for approval_id, session_id, minutes in (("late", "t1", 30), ("soon", "t2", 5)):
        await store.save_approval(
            PendingApproval(
                approval_id=approval_id,
                session_id=session_id,
                platform="slack",
                requester=Author("U1", "Ann"),
                calls=json.dumps([{"name": "delete", "arguments": "{}"}]),
                state="{}",
                items="[]",
                instructions="",
                expires_at=now + timedelta(minutes=minutes),
            )
        )
    assert [a.approval_id for a in await store.waiting_approvals()] == ["soon", "late"]
    assert (await store.waiting_approvals())[0].requester == Author("U1", "Ann")
    await store.record_usage("t1", Usage("m", 1, 0, 1), kind="summary")


async def day_counters_agree(store: Store) -> None:
    """The day counters and each thread's totals the triggers keep say what adding up every
    row says."""
    for info in await store.list_sessions():
        row = await store.thread_row(info.session_id)
        assert row is not None
        assert row.items == await store.count_items(info.session_id), info.session_id
        assert row.tokens == (await store.thread_usage(info.session_id)).tokens, info.session_id
    days = await store.daily_usage(datetime(2000, 1, 1, tzinfo=UTC))
    by_day: dict[str, int] = {}
    by_model: dict[str, int] = {}
    for d in days:
        by_day[d.day] = by_day.get(d.day, 0) + d.tokens
        by_model[d.model] = by_model.get(d.model, 0) + d.tokens
    assert by_day == {line.key: line.totals.tokens for line in await store.usage_report("day")}
    assert by_model == {line.key: line.totals.tokens for line in await store.usage_report("model")}


async def test_the_day_counters_follow_every_change_to_the_rows(store: Store) -> None:
    await populate(store)
    await day_counters_agree(store)
    await store.append(
        "slack:T1:C2:2.0",
        [msg("user", "hi"), msg("assistant", "yo")],
        author=Author("U1", "Ann"),
        usage=Usage("gpt-c", 10, 0, 5),
    )
    await store.record_usage("slack:T1:C2:2.0", Usage("gpt-mini", 7, 0, 1), kind="summary")
    await day_counters_agree(store)
    await store.undo_last_exchange("slack:T1:C2:2.0")
    await store.pop_item("discord:1:10")
    await store.clear("discord:1:20")
    assert await store.thread_row("discord:1:20") is None
    await store.forget_user("discord", "bob", dry_run=False)
    await day_counters_agree(store)
    turns = sum(d.turns for d in await store.daily_usage(datetime(2000, 1, 1, tzinfo=UTC)))
    assert turns == 7  # six seeded turns and the new one; undone and forgotten ones count


async def test_folding_the_day_counters_changes_no_figure(store: Store) -> None:
    await populate(store)
    await store.append(
        "slack:T1:C2:2.0",
        [msg("user", "hi"), msg("assistant", "yo")],
        author=Author("U1", "Ann"),
        usage=Usage("gpt-c", 10, 0, 5),
    )
    await store.undo_last_exchange("slack:T1:C2:2.0")
    since = datetime(2000, 1, 1, tzinfo=UTC)
    before = await store.daily_usage(since)
    assert await store.fold_usage_days(NOON + timedelta(days=1)) > len(before)
    assert await store.daily_usage(since) == before
    # Folded once, there is one row per day, platform and model; folding again keeps them.
    assert await store.fold_usage_days(NOON + timedelta(days=1)) <= len(before)
    assert await store.daily_usage(since) == before
    await day_counters_agree(store)


async def test_a_postgres_schema_from_before_counts_what_it_holds(
    postgres: PostgresSchema,
) -> None:
    conn = await asyncpg.connect(postgres.url)
    try:
        # What the release before this one left, with a turn and a summary's cost in it.
        await conn.execute("CREATE TABLE bot_schema (version INTEGER NOT NULL)")
        for number, statements in enumerate(POSTGRES_MIGRATIONS[:7], start=1):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO bot_schema (version) VALUES ($1)", number)
        await conn.execute("INSERT INTO agent_sessions (session_id) VALUES ('slack:T:C:1')")
        await conn.execute(
            "INSERT INTO agent_messages (session_id, message_data, model, input_tokens, "
            "cached_tokens, output_tokens, input_chars) VALUES "
            '(\'slack:T:C:1\', \'{"role": "user", "content": "hi"}\', NULL, NULL, NULL, '
            'NULL, NULL), (\'slack:T:C:1\', \'{"role": "assistant", "content": "yo"}\', '
            "'m', 10, 0, 2, 30)"
        )
        await conn.execute(
            "INSERT INTO bot_usage (session_id, kind, model, input_tokens, cached_tokens, "
            "output_tokens, input_chars) VALUES ('slack:T:C:1', 'summary', 's', 5, 0, 1, 9)"
        )
    finally:
        await conn.close()
    async with await PostgresStore.open(postgres.url) as store:
        row = await store.thread_row("slack:T:C:1")
        assert row is not None
        assert (row.items, row.tokens) == (2, 18)
        days = await store.daily_usage(datetime(2000, 1, 1, tzinfo=UTC))
        assert sorted((d.platform, d.model, d.turns, d.tokens) for d in days) == [
            ("slack", "m", 1, 12),
            ("slack", "s", 0, 6),
        ]
        await day_counters_agree(store)
