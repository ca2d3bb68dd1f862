"""The contract's operations written once, over each back end's `_read` and `_transaction`.

Commands (`/forget`, `/undo`, `/history`...), summaries, pending approvals and usage run here
for SQLite and PostgreSQL alike; what a back end still writes itself is the per-turn hot path
(`append`, thread locks, deliveries, search), where its own way measurably wins.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from .browsing import Browsing
from .codec import approval_of, decode, decode_stored, lines_of, totals_of
from .deliveries import RecentKeys
from .dumping import Dumps
from .erasure import Erasure
from .primitives import Scope, Transaction
from .reading import PagedReads
from .records import (
    Author,
    ClearResult,
    Item,
    PendingApproval,
    SessionInfo,
    StoredItem,
    Usage,
    UsageGrouping,
    UsageLine,
    UsageTotals,
)
from .session import StoreSession, Thread

KEPT_SUMMARIES = 4
"""Summaries kept per thread: the one in use and a few to fall back on after /undo."""


class Operations(PagedReads, Dumps, Erasure, Browsing):
    """Everything of `Store` but the hot path, for a back end that supplies the primitives."""

    _recent: RecentKeys
    """Event keys this process has claimed (set by the back end)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def close(self) -> None:
        """Finish queued writes and release every connection."""

    def session(self: Thread, session_id: str, *, limit: int | None = None) -> StoreSession:
        """An SDK `Session` for one thread. Cheap: no I/O, no connection, no thread."""
        return StoreSession(self, session_id, limit=limit)

    def delivered(self, key: str) -> bool:
        """Whether this process has claimed `key` already: a cheap hint, no I/O."""
        return key in self._recent

    # ----- reads ---------------------------------------------------------------------------

    async def count_messages(self, session_id: str, *, up_to: int) -> int:
        """How many people's and the bot's messages a thread holds up to an item ID."""
        rows = await self._read(self._sql.count_messages, session_id, up_to, thread=session_id)
        return int(rows[0][0])

    async def history(self, session_id: str, *, limit: int, offset: int = 0) -> list[StoredItem]:
        """Up to `limit` stored items, skipping the newest `offset`; oldest first."""
        rows = await self._read(self._sql.history, session_id, limit, offset, thread=session_id)
        return decode_stored(reversed(rows), self._sql.dialect.time_of)

    async def count_items(self, session_id: str) -> int:
        """How many items a thread holds."""
        rows = await self._read(self._sql.count_items, session_id, thread=session_id)
        return int(rows[0][0])

    async def has_items(self, session_id: str) -> bool:
        """Whether a thread holds anything, at the cost of one index probe."""
        rows = await self._read(self._sql.has_items, session_id, thread=session_id)
        return bool(rows[0][0])

    async def list_sessions(self) -> list[SessionInfo]:
        """Every thread with stored memory, most recently active first."""
        time_of = self._sql.dialect.time_of
        return [
            SessionInfo(sid, int(count), time_of(created), time_of(updated))
            for sid, count, created, updated in await self._read(self._sql.list_sessions)
        ]

    # ----- changes -------------------------------------------------------------------------

    async def save_summary(
        self, session_id: str, text: str, *, covers_id: int, replaces: int | None
    ) -> bool:
        """Store a new summary, unless the thread changed under it; says whether it was stored.

        It is stored only if the summary it was built on (`replaces`, a `covers_id`, or None
        for none) is still the newest and the last message it covers still exists: a /forget
        or /undo while it was being written makes it void.
        """
        sql = self._sql

        async def save(tx: Transaction) -> bool:
            if sql.lock_thread_row is not None:
                await tx.run(sql.lock_thread_row, session_id)
            newest, exists = (await tx.rows(sql.summary_basis, session_id, covers_id))[0]
            if newest != replaces or not exists:
                return False
            await tx.run(sql.insert_summary, session_id, covers_id, text)
            await tx.run(sql.prune_summaries, session_id, KEPT_SUMMARIES)
            return True

        return await self._transaction(save, Scope(session_id))

    async def pop_item(self, session_id: str) -> Item | None:
        """Remove and return a thread's newest item (skipping unreadable rows, as the SDK does)."""

        async def pop(tx: Transaction) -> Item | None:
            while True:
                rows = await tx.rows(self._sql.pop_newest, session_id)
                if not rows:
                    return None
                item = decode(rows[0][0])
                if item is not None:
                    return item

        return await self._transaction(pop, Scope(session_id))

    async def clear(self, session_id: str) -> ClearResult:
        """Forget a thread entirely, a pending approval in it included; says what went."""

        async def clear(tx: Transaction) -> ClearResult:
            items, messages = (await tx.rows(self._sql.clear_counts, session_id))[0]
            for statement in self._sql.clear:
                await tx.run(statement, session_id)
            return ClearResult(items=int(items), messages=int(messages))

        return await self._transaction(clear, Scope(session_id))

    async def undo_last_exchange(self, session_id: str) -> list[StoredItem]:
        """Remove the last user message and everything after it, atomically.

        Returns the removed items, oldest first; empty when there is no user message to undo.
        """

        async def undo(tx: Transaction) -> list[StoredItem]:
            rows = await tx.rows(self._sql.undo, session_id)
            return sorted(decode_stored(rows, self._sql.dialect.time_of), key=lambda s: s.id)

        return await self._transaction(undo, Scope(session_id))

    async def delete_idle(self, idle_for: timedelta, *, now: datetime | None = None) -> int:
        """Delete threads untouched for longer than `idle_for`; returns how many went."""
        cutoff = self._sql.dialect.stamp((now or datetime.now(UTC)) - idle_for)

        async def sweep(tx: Transaction) -> int:
            await tx.run(self._sql.idle_messages, cutoff)
            return await tx.run(self._sql.idle_sessions, cutoff)

        return await self._transaction(sweep, Scope())

    # ----- turns paused for an approval ----------------------------------------------------

    async def save_approval(self, approval: PendingApproval) -> None:
        """Keep a paused turn; it replaces any other pending in the same thread."""
        values = (
            approval.approval_id,
            approval.session_id,
            approval.platform,
            approval.requester.id,
            approval.requester.name,
            approval.calls,
            approval.state,
            approval.items,
            approval.instructions,
            self._sql.dialect.zoned(approval.expires_at),
            approval.address,
            None,  # it runs once someone approves it
            approval.profile,
        )

        async def save(tx: Transaction) -> None:
            await tx.run(self._sql.replace_approval, approval.session_id, approval.approval_id)
            await tx.run(self._sql.insert_approval, *values)

        await self._transaction(save, Scope(approval.session_id))

    async def approval(self, approval_id: str) -> PendingApproval | None:
        """The pending approval with this ID, if it is still pending."""
        rows = await self._read(self._sql.approval, approval_id)
        return approval_of(rows[0], self._sql.dialect.time_of) if rows else None

    async def approval_in(self, session_id: str) -> PendingApproval | None:
        """The thread's pending approval, if it has one."""
        rows = await self._read(self._sql.approval_in, session_id, thread=session_id)
        return approval_of(rows[0], self._sql.dialect.time_of) if rows else None

    async def withdraw_approval(self, session_id: str) -> PendingApproval | None:
        """Take back the thread's pending approval, if it has one: none of its turn is kept."""

        async def withdraw(tx: Transaction) -> PendingApproval | None:
            rows = await tx.rows(self._sql.approval_in, session_id)
            if not rows:
                return None
            record = approval_of(rows[0], self._sql.dialect.time_of)
            await tx.run(self._sql.settle, record.approval_id)
            return record

        return await self._transaction(withdraw, Scope(session_id))

    async def address_approval(self, approval_id: str, address: str) -> None:
        """Record where the prompt for it was shown."""

        async def address_it(tx: Transaction) -> None:
            await tx.run(self._sql.address_approval, approval_id, address)

        await self._transaction(address_it, Scope())

    async def approval_running(self, approval_id: str, since: datetime | None) -> None:
        """Mark an approved call as running since `since`, or (None) as waiting again."""
        value = None if since is None else self._sql.dialect.zoned(since)

        async def mark(tx: Transaction) -> None:
            await tx.run(self._sql.approval_running, approval_id, value)

        await self._transaction(mark, Scope())

    async def due_approvals(self, now: datetime) -> list[PendingApproval]:
        """Pending approvals whose deadline has passed, and approved ones marked running (the
        sweep tells those whose process died), oldest first."""
        rows = await self._read(self._sql.due_approvals, self._sql.dialect.zoned(now))
        return [approval_of(row, self._sql.dialect.time_of) for row in rows]

    # ----- what the model server said about the model -------------------------------------

    async def blind_since(self, model: str, endpoint: str) -> datetime | None:
        """When the model at `endpoint` last said it takes no image input; None if never."""
        rows = await self._read(self._sql.blind_since, model, endpoint)
        return self._sql.dialect.time_of(rows[0][0]) if rows else None

    async def remember_blind(self, model: str, endpoint: str, *, at: datetime, reason: str) -> None:
        """Record that the model at `endpoint` said it takes no image input (at `at`)."""
        values = (model, endpoint, self._sql.dialect.stamp(at), reason)

        async def remember(tx: Transaction) -> None:
            await tx.run(self._sql.remember_blind, *values)

        await self._transaction(remember, Scope())

    # ----- usage ---------------------------------------------------------------------------

    async def record_usage(
        self, session_id: str, usage: Usage, *, kind: str, author: Author | None = None
    ) -> None:
        """Record a model call made outside a turn (a summary), for cost accounting."""
        values = (
            session_id,
            author.id if author else None,
            kind,
            usage.model,
            usage.input_tokens,
            usage.cached_tokens,
            usage.output_tokens,
            usage.input_chars,
            usage.profile,
        )

        async def record(tx: Transaction) -> None:
            await tx.run(self._sql.record_usage, *values)

        await self._transaction(record, Scope(session_id))

    async def thread_usage(self, session_id: str) -> UsageTotals:
        """What the thread's model calls cost: its turns (undone and forgotten ones too) and
        its summaries."""
        rows = await self._read(self._sql.thread_usage, session_id)
        return totals_of(rows[0] if rows else None)

    async def person_usage(self, platform: str, user_id: str, *, since: datetime) -> UsageTotals:
        """What answering one person cost since `since`, in every thread of `platform`."""
        rows = await self._read(
            self._sql.person_usage, user_id, self._sql.dialect.stamp(since), f"{platform}:"
        )
        return totals_of(rows[0] if rows else None)

    async def usage_report(
        self, by: UsageGrouping, *, since: datetime | None = None, session_id: str | None = None
    ) -> list[UsageLine]:
        """Usage added up per group, most tokens first (by day: oldest first); with
        `session_id`, of that thread's calls only."""
        statement = self._sql.usage_report[by, since is not None, session_id is not None]
        args = [] if since is None else [self._sql.dialect.stamp(since)]
        if session_id is not None:
            args.append(session_id)
        return lines_of(await self._read(statement, *args))

    # ----- profiles chosen in the chat -----------------------------------------------------

    async def profile_choices(self) -> dict[str, str]:
        """Every place's chosen profile, by place key."""
        return {
            str(place): str(profile)
            for place, profile in await self._read(self._sql.profile_choices)
        }

    async def profile_choice(self, place: str) -> str | None:
        """The profile chosen for one place, read afresh; None when none was."""
        rows = await self._read(self._sql.profile_choice, place)
        return str(rows[0][0]) if rows else None

    async def choose_profile(self, place: str, profile: str | None, *, by: str) -> None:
        """Record `by`'s choice of `profile` for the place (None drops the choice)."""
        stamp = self._sql.dialect.stamp(datetime.now(UTC))

        async def choose(tx: Transaction) -> None:
            if profile is None:
                await tx.run(self._sql.drop_profile_choice, place)
            else:
                await tx.run(self._sql.choose_profile, place, profile, by, stamp)

        await self._transaction(choose, Scope())
