"""`TurnSession`: a thread's memory for the length of one turn, stored all at once or not at all.

The SDK appends the user's message to the session *before* calling the model, and the model's
output after, so a failed call would leave a dangling user message and a crash could leave
half a turn. Here the SDK's writes stay in memory until `commit()` stores the whole turn in one
transaction; a turn that fails or is cancelled is simply never committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from agents.memory import SessionSettings

from .storage import Author, Item, SQLiteStore

if TYPE_CHECKING:
    from agents import TResponseInputItem


class TurnSession:
    """An SDK `Session` that buffers one turn's writes until `commit()`.

    Reads see the stored history plus this turn's pending items. The history window handed to
    the model is bounded by `window` items and starts at a user message, so it never opens
    with a tool output whose call was cut off, nor with half of an earlier exchange.
    """

    def __init__(
        self, store: SQLiteStore, session_id: str, *, author: Author, window: int | None
    ) -> None:
        self._store = store
        self.session_id = session_id
        self.session_settings: SessionSettings | None = SessionSettings(limit=window)
        self._author = author
        self._pending: list[Item] = []
        self._hidden_tail = 0  # stored items popped by the SDK; deleted for real on commit
        self._committed = False

    @property
    def pending(self) -> Sequence[Item]:
        """This turn's items, not yet stored."""
        return tuple(self._pending)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        if limit is not None and limit < 0:
            limit = None  # the SDK's convention: a negative limit means everything
        if limit == 0:
            return []
        fetch = None if limit is None else limit + self._hidden_tail
        raw = await self._store.read_items(self.session_id, fetch)
        items = raw[: max(0, len(raw) - self._hidden_tail)] + self._pending
        if limit is None:
            return cast("list[TResponseInputItem]", items)
        window = items[-limit:]
        if len(raw) == fetch or len(items) > limit:  # older items exist beyond the window
            window = align_to_exchange(window)
        return cast("list[TResponseInputItem]", window)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        self._check_open()
        self._pending.extend(cast("list[Item]", items))

    async def pop_item(self) -> TResponseInputItem | None:
        self._check_open()
        if self._pending:
            return cast("TResponseInputItem", self._pending.pop())
        stored = await self._store.read_items(self.session_id, self._hidden_tail + 1)
        if len(stored) <= self._hidden_tail:
            return None
        self._hidden_tail += 1
        return cast("TResponseInputItem", stored[0])

    async def clear_session(self) -> None:
        # The runner never clears a session mid-run; supported for completeness, applied at commit.
        self._check_open()
        self._pending.clear()
        self._hidden_tail = await self._store.count_items(self.session_id)

    async def commit(self) -> None:
        """Store the whole turn durably in one transaction."""
        self._check_open()
        self._committed = True
        if self._pending or self._hidden_tail:
            await self._store.append(
                self.session_id,
                self._pending,
                author=self._author,
                drop_tail=self._hidden_tail,
            )

    def _check_open(self) -> None:
        if self._committed:
            raise RuntimeError("this turn is already committed")


def align_to_exchange(items: list[Item]) -> list[Item]:
    """Drop a cut-off window's leading items up to its first user message.

    A window that starts mid-exchange would show the model answers without their question or
    tool outputs without their call. If the window has no user message at all (one very long
    exchange), it is returned whole and the SDK drops any orphaned tool output.
    """
    for index, item in enumerate(items):
        if _is_user_message(item):
            return items[index:]
    return items


def _is_user_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") == "user"
