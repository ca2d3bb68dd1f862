"""`StoreSession`: the SDK's `Session` protocol as a cheap view on the shared store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from .records import ClearResult, Item

if TYPE_CHECKING:
    from agents import TResponseInputItem
    from agents.memory import SessionSettings


class Thread(Protocol):
    """What a `StoreSession` asks of the store: the four calls the SDK's protocol maps to."""

    async def read_items(self, session_id: str, limit: int | None = None) -> list[Item]: ...

    async def append(self, session_id: str, items: Sequence[Item]) -> None: ...

    async def pop_item(self, session_id: str) -> Item | None: ...

    async def clear(self, session_id: str) -> ClearResult: ...


class StoreSession:
    """One thread's memory, usable anywhere the SDK takes a `Session`.

    It holds the thread's ID and a reference to the store, nothing else; every call goes to the
    store's shared connections. Each `add_items` is its own durable transaction, as with the
    SDK's `SQLiteSession`.
    """

    def __init__(self, store: Thread, session_id: str, *, limit: int | None = None) -> None:
        self._store = store
        self.session_id = session_id
        # Imported here, not at the top: the SDK takes a second to import, and the admin
        # commands open a store without ever asking it for a session.
        from agents.memory import SessionSettings

        self.session_settings: SessionSettings | None = SessionSettings(limit=limit)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The thread's items, oldest first; the newest `limit` when given (or configured)."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        return cast(
            "list[TResponseInputItem]", await self._store.read_items(self.session_id, limit)
        )

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items durably."""
        await self._store.append(self.session_id, cast("list[dict[str, Any]]", items))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item, or None when the thread is empty."""
        return cast("TResponseInputItem | None", await self._store.pop_item(self.session_id))

    async def clear_session(self) -> None:
        """Forget the thread."""
        await self._store.clear(self.session_id)

    def __repr__(self) -> str:
        return f"StoreSession({self.session_id!r})"
