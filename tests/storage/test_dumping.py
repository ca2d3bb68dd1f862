"""Loading a dumped thread costs the same few statements however long the thread is (the
rows themselves are checked on both back ends in test_store.py and tests/admin)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.storage import Author, ThreadDump, Usage
from bot.storage.dialect import SQLITE
from bot.storage.dumping import Dumps
from bot.storage.primitives import Scope, Work
from bot.storage.records import DumpedMessage, DumpedSummary, LedgerEntry
from bot.storage.statements import Statements

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Counting(Dumps):
    """The shared load over a transaction that counts its trips to the database and answers
    as a database holding nothing of the thread would."""

    _sql = Statements(SQLITE)

    def __init__(self) -> None:
        self.trips = 0
        self.inserted = 0

    async def _read(self, statement: str, *args: Any, thread: str | None = None) -> list[Any]:
        raise AssertionError("a load reads inside its transaction")

    async def _transaction(self, work: Work[Any], scope: Scope) -> Any:
        return await work(self)

    async def rows(self, statement: str, *args: Any) -> list[Any]:
        self.trips += 1
        if statement == self._sql.thread_known:
            return [(False,)]
        if statement.startswith("INSERT"):  # one row, with its new ID
            self.inserted += 1
            return [(self.inserted,)]
        return [(n,) for n in range(1, self.inserted + 1)]

    async def run(self, statement: str, *args: Any) -> int:
        self.trips += 1
        return 1

    async def run_many(self, statement: str, args: Iterable[Sequence[Any]]) -> None:
        self.trips += 1
        if statement == self._sql.load_message:
            self.inserted += len(list(args))


def _dump(messages: int) -> ThreadDump:
    return ThreadDump(
        "t",
        NOW,
        NOW,
        tuple(
            DumpedMessage(n, f'{{"role": "user", "content": "{n}"}}', Author("u", "U"), NOW, None)
            for n in range(1, messages + 1)
        ),
        (DumpedSummary(1, "summary", NOW),),
        (LedgerEntry("summary", None, Usage("m", 1, 0, 1, 4), NOW),),
    )


async def test_a_thread_loads_in_the_same_trips_however_many_messages_it_has() -> None:
    short, long = Counting(), Counting()
    assert await short.load_thread(_dump(1))
    assert await long.load_thread(_dump(1_000))
    assert long.inserted == 1_000
    assert long.trips == short.trips
