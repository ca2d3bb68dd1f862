"""Usage added up in the store, on both back ends: turns, undone turns and summaries, per
thread, person, day and model; and a file from the release before `asked_by`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.storage import Author, SQLiteStore, Store, Usage, UsageTotals
from bot.storage.sqlite.schema import MIGRATIONS
from tests.support.items import msg
from tests.support.usage import NOON, populate

V2_KEEP_USAGE = """
CREATE TRIGGER agent_messages_keep_usage AFTER DELETE ON agent_messages
WHEN OLD.input_tokens IS NOT NULL
BEGIN
    INSERT INTO bot_usage (session_id, author_id, kind, model, input_tokens, cached_tokens,
        output_tokens, input_chars, created_at)
    VALUES (OLD.session_id, NULL, 'turn', OLD.model, OLD.input_tokens,
        coalesce(OLD.cached_tokens, 0), coalesce(OLD.output_tokens, 0),
        coalesce(OLD.input_chars, 0), OLD.created_at);
END
"""


async def test_usage_adds_up_turns_undone_turns_and_summaries(store: Store) -> None:
    await populate(store)
    thread = await store.thread_usage("discord:1:10")
    assert thread == UsageTotals(5, 1000 + 2000 + 3000 + 4000 + 800, 1024 + 2048 + 3072, 1080)
    assert thread.tokens == 10_800 + 1080
    # Ann on Discord, today: turn 4 (undone, kept in the ledger) and her turn in thread 20;
    # never the Slack user who happens to have the same ID, never Bob.
    today = await store.person_usage("discord", "ann", since=NOON.replace(hour=0))
    assert today == UsageTotals(2, 4500, 3072, 450)
    month = await store.person_usage("discord", "ann", since=NOON.replace(day=1, hour=0))
    assert month.tokens == 2200 + 4400 + 550
    assert await store.person_usage("slack", "ann", since=NOON.replace(hour=0)) == UsageTotals(
        1, 7000, 0, 700
    )
    assert await store.person_usage("discord", "carol", since=NOON) == UsageTotals()


async def test_usage_report_groups_by_thread_user_day_and_model(store: Store) -> None:
    await populate(store)
    by_thread = {line.key: line.totals.tokens for line in await store.usage_report("thread")}
    assert by_thread == {"discord:1:10": 11_880, "discord:1:20": 550, "slack:T1:C1:1.0": 7700}
    report = await store.usage_report("user")
    assert [line.key for line in report] == ["discord:ann", "slack:ann", "discord:bob", "summary"]
    by_user = {line.key: line.totals.tokens for line in report}
    assert by_user == {
        "slack:ann": 7700,
        "discord:ann": 1100 + 2200 + 4400 + 550,
        "discord:bob": 3300,
        "summary": 880,  # the summary answered no one: it is named by its kind
    }
    days = await store.usage_report("day")
    # The summary was recorded just now, by the database's clock: its day comes first.
    assert [line.key for line in days[1:]] == ["2031-04-28", "2031-05-10", "2031-05-20"]
    assert days[0].key <= f"{datetime.now(UTC):%Y-%m-%d}"
    assert days[0].totals == UsageTotals(1, 800, 0, 80)
    assert sum(line.totals.calls for line in days) == 7
    models = {line.key: line.totals.calls for line in await store.usage_report("model")}
    assert models == {"gpt-a": 5, "gpt-b": 1, "gpt-mini": 1}
    # Bob forgotten, his turns' cost stays, naming no one: a group of its own, not the summary's.
    await store.forget_user("discord", "bob", dry_run=False)
    anonymised = {line.key: line.totals.tokens for line in await store.usage_report("user")}
    assert anonymised == {**{k: v for k, v in by_user.items() if k != "discord:bob"}, "turn": 3300}
    since = await store.usage_report("thread", since=NOON.replace(hour=0))
    assert {line.key: line.totals.tokens for line in since} == {
        "discord:1:10": 3300 + 4400,  # the summary was recorded now, years before NOON
        "discord:1:20": 550,
        "slack:T1:C1:1.0": 7700,
    }


async def test_a_file_from_the_previous_release_learns_whom_turns_answered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("t", [msg("user", "old")], author=Author("u", "U"))
    with sqlite3.connect(path) as conn:  # back to what version 2 left
        conn.execute("DROP INDEX idx_agent_messages_asked_by")
        conn.execute("DROP TRIGGER agent_messages_keep_usage")
        conn.execute("ALTER TABLE agent_messages DROP COLUMN asked_by")
        conn.execute(V2_KEEP_USAGE)
        conn.execute("PRAGMA user_version = 2")
    async with await SQLiteStore.open(path) as store:
        await store.append(
            "t",
            [msg("user", "new"), msg("assistant", "answer")],
            author=Author("u", "U"),
            usage=Usage("m", 10, 0, 5, 40),
        )
        await store.undo_last_exchange("t")
        assert await store.person_usage("console", "u", since=NOON - timedelta(days=3650)) == (
            UsageTotals()
        )
        assert (await store.thread_usage("t")).tokens == 15
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT author_id FROM bot_usage").fetchall() == [("u",)]
