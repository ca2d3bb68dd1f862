"""`TurnSession`: buffered, atomic turns and a history window that keeps exchanges whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.memory.exchanges import align_to_exchange
from bot.memory.turn_session import TurnSession
from bot.storage import Author, SQLiteStore, WindowItem
from tests.support.items import msg, tool_output

ANN = Author("u1", "Ann")


@pytest.fixture
async def store(tmp_path: Path):
    async with await SQLiteStore.open(tmp_path / "turns.sqlite3") as opened:
        yield opened


async def everything(store: SQLiteStore, session_id: str = "t") -> list[WindowItem]:
    window, complete = await store.read_window(session_id, max_chars=10**9)
    assert complete
    return window


async def test_nothing_is_stored_until_commit(store: SQLiteStore) -> None:
    await store.append("t", [msg("user", "old"), msg("assistant", "old answer")])
    turn = TurnSession(store, "t", author=ANN, window=await everything(store))
    await turn.add_items([msg("user", "new")])  # type: ignore[list-item]
    assert await turn.get_items() == [
        msg("user", "old"),
        msg("assistant", "old answer"),
        msg("user", "new"),
    ]
    assert await store.count_items("t") == 2  # an abandoned turn leaves no trace
    await turn.add_items([msg("assistant", "new answer")])  # type: ignore[list-item]
    await turn.commit()
    history = await store.history("t", limit=10)
    assert [h.item["content"] for h in history] == ["old", "old answer", "new", "new answer"]
    assert history[2].author == ANN
    assert history[3].author is None


async def test_a_committed_turn_cannot_be_written_again(store: SQLiteStore) -> None:
    turn = TurnSession(store, "t", author=ANN, window=await everything(store))
    await turn.commit()
    with pytest.raises(RuntimeError):
        await turn.add_items([msg("user", "late")])  # type: ignore[list-item]


async def test_pop_takes_pending_first_then_stored_and_applies_on_commit(
    store: SQLiteStore,
) -> None:
    await store.append("t", [msg("user", "a"), msg("assistant", "b")])
    turn = TurnSession(store, "t", author=ANN, window=await everything(store))
    await turn.add_items([msg("user", "c")])  # type: ignore[list-item]
    assert await turn.pop_item() == msg("user", "c")
    assert await turn.pop_item() == msg("assistant", "b")
    assert await turn.get_items() == [msg("user", "a")]
    assert await store.count_items("t") == 2  # still untouched
    await turn.add_items([msg("assistant", "b2")])  # type: ignore[list-item]
    await turn.commit()
    assert await store.read_items("t") == [msg("user", "a"), msg("assistant", "b2")]


async def test_clear_inside_a_turn_applies_on_commit(store: SQLiteStore) -> None:
    await store.append("t", [msg("user", "a"), msg("assistant", "b")])
    turn = TurnSession(store, "t", author=ANN, window=await everything(store))
    await turn.clear_session()
    assert await turn.get_items() == []
    await turn.add_items([msg("user", "fresh")])  # type: ignore[list-item]
    await turn.commit()
    assert await store.read_items("t") == [msg("user", "fresh")]


def test_align_keeps_a_window_without_any_user_message() -> None:
    only_tools = [tool_output("c1"), msg("assistant", "x")]
    assert align_to_exchange(only_tools) == only_tools
    assert align_to_exchange([msg("assistant", "a"), msg("user", "q")]) == [msg("user", "q")]
