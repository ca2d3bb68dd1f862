"""`TurnSession`: a thread's memory for the length of one turn, stored all at once or not at all.

The SDK appends the user's message to the session *before* calling the model, and the model's
output after, so a failed call would leave a dangling user message and a crash could leave
half a turn. Here the SDK's writes stay in memory until `commit()` stores the whole turn in one
transaction; a turn that fails or is cancelled is simply never committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from agents.memory import SessionSettings

from ..storage import Author, Item, Store, Usage, WindowItem

if TYPE_CHECKING:
    from agents import TResponseInputItem


class TurnSession:
    """An SDK `Session` that shows the model a chosen window and buffers writes until `commit()`.

    The window (whole exchanges, chosen by the memory planner before the turn) is read once;
    reads see it plus this turn's pending items, so the SDK's repeated reads during a run
    cost nothing and always agree.
    """

    def __init__(
        self,
        store: Store,
        session_id: str,
        *,
        author: Author,
        window: Sequence[WindowItem] = (),
        pending: Sequence[Item] = (),
        keep: Callable[[Item], Item] | None = None,
    ) -> None:
        """
        Args:
            store: Where `commit()` writes.
            session_id: The thread.
            author: Who wrote the turn's message.
            window: The stored history the model sees.
            pending: Items a paused run wrote before it paused (a resumed turn goes on from
                them, and stores them with the rest).
            keep: What memory keeps of each item (e.g. images replaced by a placeholder).
        """
        self._store = store
        self.session_id = session_id
        self.session_settings: SessionSettings | None = SessionSettings()
        self._author = author
        self._window = list(window)
        self._pending: list[Item] = list(pending)
        self._keep = keep
        self._replace_from: int | None = None  # stored items popped by the SDK go from here on
        self._committed = False

    @property
    def author(self) -> Author:
        """Who wrote the turn's message."""
        return self._author

    @property
    def pending(self) -> Sequence[Item]:
        """This turn's items, not yet stored."""
        return tuple(self._pending)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        items = [stored.item for stored in self._window] + self._pending
        if limit is not None and limit >= 0:  # the SDK's convention: negative means everything
            items = items[-limit:] if limit else []
        return cast("list[TResponseInputItem]", items)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        self._check_open()
        self._pending.extend(cast("list[Item]", items))

    async def pop_item(self) -> TResponseInputItem | None:
        self._check_open()
        if self._pending:
            return cast("TResponseInputItem", self._pending.pop())
        if not self._window:
            return None
        popped = self._window.pop()
        self._replace_from = popped.id
        return cast("TResponseInputItem", popped.item)

    async def clear_session(self) -> None:
        # The runner never clears a session mid-run; supported for completeness, applied at commit.
        self._check_open()
        self._pending.clear()
        self._window.clear()
        self._replace_from = 0

    @property
    def kept(self) -> list[Item]:
        """This turn's items as memory keeps them."""
        keep = self._keep
        return [keep(item) for item in self._pending] if keep else list(self._pending)

    def keeping(self, data: Any) -> Any:
        """`data` (JSON values, e.g. a paused run's state) with every message in it as memory
        keeps it: what is kept beside the thread keeps no more than the thread does."""
        keep = self._keep
        if keep is None:
            return data
        if isinstance(data, list):
            return [self.keeping(value) for value in data]
        if not isinstance(data, dict):
            return data
        if isinstance(data.get("content"), list):
            data = keep(data)
        return {key: self.keeping(value) for key, value in data.items()}

    async def commit(self, usage: Usage | None = None, *, settles: str | None = None) -> None:
        """Store the whole turn, and what it cost, durably in one transaction.

        `settles` names the pending approval this turn finishes, deleted in the same
        transaction.
        """
        self._check_open()
        self._committed = True
        if (
            self._pending
            or self._replace_from is not None
            or usage is not None
            or settles is not None
        ):
            await self._store.append(
                self.session_id,
                self.kept,
                author=self._author,
                usage=usage,
                replace_from=self._replace_from,
                settles=settles,
            )

    def _check_open(self) -> None:
        if self._committed:
            raise RuntimeError("this turn is already committed")
