"""`Store`: what the core, the commands and the memory planner need from a database.

Two back ends implement it: `SQLiteStore` (one process, one file; the default) and
`PostgresStore` (any number of worker processes on one server). The core is written against
this Protocol alone, so it never knows which one it has.

Both are mostly one implementation: `operations.Operations` writes the contract once over two
primitives a back end supplies (`primitives`), with statements written once per dialect
(`statements`, `dialect`); each back end adds its per-turn hot path. A new back end is a
`Dialect`, the two primitives, that hot path and its schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Protocol

from .records import (
    Author,
    ClearResult,
    DailyUsage,
    DumpedMessage,
    ForgetReport,
    FoundMessage,
    Item,
    MemoryRead,
    PendingApproval,
    SessionInfo,
    StoredItem,
    ThreadCursor,
    ThreadDump,
    ThreadFilter,
    ThreadPage,
    ThreadRow,
    Usage,
    UsageGrouping,
    UsageLine,
    UsageTotals,
    WindowItem,
)
from .session import StoreSession


class ThreadBusyError(RuntimeError):
    """Another turn held the thread for longer than a new one may wait."""


class Store(Protocol):
    """Every thread's memory. Each mutation is one transaction: all of it, or none."""

    @property
    def location(self) -> str:
        """Where the memory lives, for logs (a file path or a URL without password)."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release every connection."""
        ...

    def session(self, session_id: str, *, limit: int | None = None) -> StoreSession:
        """An SDK `Session` for one thread. Cheap: no I/O."""
        ...

    # ----- coordination between turns (and between worker processes) -------------------

    @property
    def claims_contended(self) -> bool:
        """Whether another worker lately claimed an event this one was sent too (Slack sends
        a mention twice, and a balancer may give the two to two workers). Never on SQLite."""
        ...

    def hold_thread(self, session_id: str, *, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold the thread against every other worker for a block (a turn, a command).

        Raises `ThreadBusyError` when it cannot be had within `wait` seconds. While the block
        runs, the holding task's own writes for that thread are stored only if the hold is
        still good (PostgreSQL fences them). One process on its own (SQLite) has nothing to
        coordinate and enters at once.
        """
        ...

    def claim_summary(self, session_id: str) -> AbstractAsyncContextManager[bool]:
        """Claim summarising the thread for a block: True when no other worker is doing it
        (and none can start until the block ends), False when one is."""
        ...

    async def first_delivery(self, key: str) -> bool:
        """True the first time a platform event key is claimed, by this worker or any other."""
        ...

    def delivered(self, key: str) -> bool:
        """Whether this worker has claimed `key` already: a cheap hint, no I/O."""
        ...

    # ----- reads ---------------------------------------------------------------------------

    async def read_items(self, session_id: str, limit: int | None = None) -> list[Item]: ...

    async def read_memory(self, session_id: str, *, density: bool = True) -> MemoryRead: ...

    async def read_window(
        self,
        session_id: str,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        max_chars: int,
    ) -> tuple[list[WindowItem], bool]: ...

    async def read_range(
        self, session_id: str, *, after_id: int, before_id: int, max_chars: int
    ) -> list[WindowItem]: ...

    async def count_messages(self, session_id: str, *, up_to: int) -> int: ...

    async def history(
        self, session_id: str, *, limit: int, offset: int = 0
    ) -> list[StoredItem]: ...

    async def count_items(self, session_id: str) -> int: ...

    async def has_items(self, session_id: str) -> bool: ...

    async def ping(self) -> None:
        """Ask the database something trivial; raises when it cannot answer (readiness)."""
        ...

    async def list_sessions(self) -> list[SessionInfo]: ...

    async def search(self, session_id: str, query: str, *, limit: int) -> list[StoredItem]: ...

    # ----- writes --------------------------------------------------------------------------

    async def append(
        self,
        session_id: str,
        items: Sequence[Item],
        *,
        author: Author | None = None,
        usage: Usage | None = None,
        replace_from: int | None = None,
        settles: str | None = None,
    ) -> None:
        """Add a turn's items in one transaction.

        `replace_from` first deletes the thread's items from that ID on; `settles` deletes that
        pending approval in the same transaction, so a resumed turn is stored exactly once.
        """
        ...

    async def record_usage(
        self, session_id: str, usage: Usage, *, kind: str, author: Author | None = None
    ) -> None: ...

    async def thread_usage(self, session_id: str) -> UsageTotals:
        """What the thread's model calls cost: its turns (undone and forgotten ones too) and
        its summaries."""
        ...

    async def person_usage(self, platform: str, user_id: str, *, since: datetime) -> UsageTotals:
        """What answering one person cost since `since`, in every thread of `platform`."""
        ...

    async def usage_report(
        self, by: UsageGrouping, *, since: datetime | None = None, session_id: str | None = None
    ) -> list[UsageLine]:
        """Usage added up per group, most tokens first (by day: oldest first); with
        `session_id`, of that thread's calls only (as `thread_usage` counts them)."""
        ...

    async def save_summary(
        self, session_id: str, text: str, *, covers_id: int, replaces: int | None
    ) -> bool: ...

    async def pop_item(self, session_id: str) -> Item | None: ...

    async def clear(self, session_id: str) -> ClearResult:
        """Forget a thread, a pending approval in it included."""
        ...

    async def undo_last_exchange(self, session_id: str) -> list[StoredItem]: ...

    async def delete_idle(self, idle_for: timedelta, *, now: datetime | None = None) -> int: ...

    # ----- turns paused for an approval ----------------------------------------------------

    async def save_approval(self, approval: PendingApproval) -> None:
        """Keep a paused turn; it replaces any other pending in the same thread."""
        ...

    async def approval(self, approval_id: str) -> PendingApproval | None: ...

    async def approval_in(self, session_id: str) -> PendingApproval | None:
        """The thread's pending approval, if it has one."""
        ...

    async def approval_running(self, approval_id: str, since: datetime | None) -> None:
        """Mark an approved call as running since `since` (before it runs), or as waiting
        again (None) when it failed before anything ran."""
        ...

    async def withdraw_approval(self, session_id: str) -> PendingApproval | None:
        """Delete the thread's pending approval and return it: its turn is never stored."""
        ...

    async def address_approval(self, approval_id: str, address: str) -> None:
        """Record where the prompt for it was shown."""
        ...

    async def due_approvals(self, now: datetime) -> list[PendingApproval]:
        """Pending approvals whose deadline has passed, oldest first."""
        ...

    # ----- what the model server said about the model -------------------------------------

    async def blind_since(self, model: str, endpoint: str) -> datetime | None:
        """When the model at `endpoint` last said it takes no image input; None if never.
        Shared by every worker, so they agree on what to send it."""
        ...

    async def remember_blind(self, model: str, endpoint: str, *, at: datetime, reason: str) -> None:
        """Record that the model at `endpoint` said it takes no image input (at `at`), with
        what it said; replaces an earlier record."""
        ...

    # ----- profiles chosen in the chat (`/profile NAME`) -----------------------------------

    async def profile_choices(self) -> dict[str, str]:
        """Every place's chosen profile, by place key (`Place.key`): few rows, read whole so
        a worker can keep them all and look one up without a query per message."""
        ...

    async def profile_choice(self, place: str) -> str | None:
        """The profile chosen for one place, read afresh; None when none was chosen."""
        ...

    async def choose_profile(self, place: str, profile: str | None, *, by: str) -> None:
        """Record that `by` (``platform:user_id``) chose `profile` for the place, replacing an
        earlier choice; None drops the choice, so the profiles file's rules apply again."""
        ...

    # ----- what the operator's page reads ------------------------------------------------

    async def thread_page(
        self, where: ThreadFilter, *, after: ThreadCursor | None = None, limit: int = 50
    ) -> ThreadPage:
        """Threads matching `where`, most recently active first, starting after `after` (a
        previous page's `more`); costs what one page costs, however many threads there are."""
        ...

    async def thread_row(self, session_id: str) -> ThreadRow | None:
        """One thread as `thread_page` lists it (items, tokens, recent people); None when it
        holds no memory."""
        ...

    async def thread_rows(
        self, session_id: str, *, before_id: int | None = None, limit: int
    ) -> list[DumpedMessage]:
        """Up to `limit` of a thread's rows below `before_id` (None: the newest), oldest
        first, each with its author, time and recorded usage."""
        ...

    async def search_threads(
        self, query: str, *, before_id: int | None = None, limit: int
    ) -> list[FoundMessage]:
        """Messages of any thread holding every word of `query` (prefixes too), newest
        first, below `before_id` when given (to continue a previous page)."""
        ...

    async def index_for_search(self) -> None:
        """Bring the search index up to date with every stored message: what a search across
        threads does first (in batches), and what a server may start ahead of it."""
        ...

    async def daily_usage(self, since: datetime) -> list[DailyUsage]:
        """Turns and tokens per UTC day, platform and model, from `since` on, oldest first."""
        ...

    async def fold_usage_days(self, before: datetime) -> int:
        """Fold the usage counters of the UTC days before `before`'s into one row per day,
        platform and model (`daily_usage` reads the same either way, only faster); returns
        how many rows there were."""
        ...

    async def active_threads(self, since: datetime) -> int:
        """How many threads were active at or after `since`."""
        ...

    async def waiting_approvals(self) -> list[PendingApproval]:
        """Every pending approval, the soonest to expire first."""
        ...

    # ----- moving memory between databases -------------------------------------------------

    async def dump_thread(self, session_id: str) -> ThreadDump:
        """Everything stored for a thread, exactly: items, authors, times, usage, summaries."""
        ...

    async def all_session_ids(self) -> list[str]:
        """Every thread the database holds anything of, `list_sessions`' and those forgotten
        whose usage the ledger keeps: what a copy of the whole database must carry."""
        ...

    async def load_thread(self, dump: ThreadDump) -> bool:
        """Store a dumped thread as new; False (and nothing written) when it is already here.

        A dump holding nothing but ledger rows (a forgotten thread's) leaves the thread
        forgotten: `list_sessions` does not list it.
        """
        ...

    async def forget_user(
        self, platform: str, user_id: str, *, dry_run: bool, own_session: str | None = None
    ) -> ForgetReport:
        """Delete everything one person wrote in `platform`'s threads, with the turns that
        answered them, one transaction per thread.

        Summaries covering a deleted row go with it; pending approvals they asked for, and any
        in a thread that lost rows, are dropped; a thread left empty goes whole; usage records
        keep their token counts but no longer name them. `own_session` is the session ID of
        their own memory, made of their ID (`BOT_MEMORY_SCOPE=user`): all of it goes, and its
        usage records move to the session ID `PLATFORM:(forgotten)`. With `dry_run`, count
        all that and change nothing.
        """
        ...
