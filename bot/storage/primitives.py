"""The two primitives each back end supplies, over which every shared operation is written.

`_read` runs one statement and returns its rows; `_transaction` runs a piece of work in one
transaction, handing it a `Transaction`. How they do it is the back end's business: SQLite
reads on its reader connection and queues every transaction on its single `Writer`;
PostgreSQL borrows a pooled connection, or the one holding the thread's lock when the task
calling holds it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from .statements import Statements

T = TypeVar("T")


class Transaction(Protocol):
    """A connection inside one transaction, seen the same way on every back end."""

    async def rows(self, statement: str, *args: Any) -> Sequence[Any]:
        """The rows `statement` returns (a SELECT, or a change with RETURNING)."""
        ...

    async def run(self, statement: str, *args: Any) -> int:
        """Run a change; returns how many rows it changed."""
        ...

    async def run_many(self, statement: str, args: Iterable[Sequence[Any]]) -> None:
        """Run a change once per set of parameters."""
        ...


Work = Callable[[Transaction], Awaitable[T]]


@dataclass(frozen=True)
class Scope:
    """What a transaction is about, and how it must run."""

    thread: str | None = None
    """The thread the work is about (see `Primitives._read`)."""
    snapshot: bool = False
    """Every statement sees the same snapshot (PostgreSQL's REPEATABLE READ; SQLite's writer
    runs one transaction at a time anyway). Not for `exclusive` work: the snapshot would be
    the lock statement's, taken before its wait, and hide what committed during it."""
    read_only: bool = False
    """The work only reads: it may run where writes cannot (SQLite's reader, also on a file
    opened read-only)."""
    exclusive: bool = False
    """Take `thread`'s lock for the transaction first, so no turn of another worker runs
    meanwhile (PostgreSQL; one SQLite process has nothing to wait for)."""


class Primitives(ABC):
    """What a back end gives the shared operations: its statements and the two primitives."""

    _sql: ClassVar[Statements]

    @abstractmethod
    async def _read(self, statement: str, *args: Any, thread: str | None = None) -> Sequence[Any]:
        """The rows of one statement, run on its own (no transaction of ours around it).

        `thread` names the thread the read is about: a task holding that thread reads on the
        connection of its hold (PostgreSQL).
        """

    @abstractmethod
    async def _transaction(self, work: Work[T], scope: Scope) -> T:
        """Run `work` in one transaction, as `scope` says: all of its changes, or none."""
