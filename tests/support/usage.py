"""Usage recorded over a few days by two people on two platforms, for the tests of adding it
up in the store and of the `usage` command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.storage import Author, Store, ThreadDump, Usage
from bot.storage.records import DumpedMessage

# Far from the real date, so rows the tests store right now never fall in "today" by accident.
NOON = datetime(2031, 5, 20, 12, 0, tzinfo=UTC)


def turn(
    number: int, user: str, when: datetime, usage: Usage, *, name: str = ""
) -> tuple[DumpedMessage, DumpedMessage]:
    """A stored exchange as a dump holds it: the person's message, then the answer with its cost."""
    author = Author(user, name or user.title())
    return (
        DumpedMessage(
            2 * number, f'{{"role": "user", "content": "q{number}"}}', author, when, None
        ),
        DumpedMessage(
            2 * number + 1,
            f'{{"role": "assistant", "content": "a{number}"}}',
            None,
            when,
            usage,
            asked_by=user,
        ),
    )


def thread(session_id: str, *turns: tuple[DumpedMessage, DumpedMessage]) -> ThreadDump:
    messages = tuple(m for turn in turns for m in turn)
    return ThreadDump(
        session_id=session_id,
        created_at=messages[0].created_at,
        updated_at=messages[-1].created_at,
        messages=messages,
        summaries=(),
        ledger=(),
    )


def usage(model: str, tokens_in: int, cached: int, tokens_out: int) -> Usage:
    return Usage(model, tokens_in, cached, tokens_out, tokens_in * 4)


async def populate(store: Store) -> None:
    """Ann and Bob on Discord and Ann (another person: another platform) on Slack, over three
    days of NOON's month and one of the month before, plus a summary and an undone turn."""
    today, earlier, last_month = (
        NOON - timedelta(hours=2),
        NOON - timedelta(days=10),
        NOON.replace(month=4, day=28),
    )
    await store.load_thread(
        thread(
            "discord:1:10",
            turn(1, "ann", last_month, usage("gpt-a", 1000, 0, 100)),
            turn(2, "ann", earlier, usage("gpt-a", 2000, 1024, 200)),
            turn(3, "bob", today, usage("gpt-b", 3000, 2048, 300)),
            turn(4, "ann", today, usage("gpt-a", 4000, 3072, 400)),
        )
    )
    await store.load_thread(
        thread("discord:1:20", turn(1, "ann", today, usage("gpt-a", 500, 0, 50)))
    )
    await store.load_thread(
        thread("slack:T1:C1:1.0", turn(1, "ann", today, usage("gpt-a", 7000, 0, 700)))
    )
    # The thread's summary cost, and the undone last turn: both stay in the ledger.
    await store.record_usage("discord:1:10", usage("gpt-mini", 800, 0, 80), kind="summary")
    assert len(await store.undo_last_exchange("discord:1:10")) == 2
