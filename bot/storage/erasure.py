"""Forgetting a person (`forget_user`): which rows of a thread go, and deleting them.

A turn is appended atomically, one thread at a time: a user message, then everything the
run produced for it (tool calls, their outputs, the answer). So the rows that answered a
person are those after each of their messages up to the next user message, whoever wrote
that. Deciding it here, over rows both stores read in one ordered scan, keeps SQLite and
PostgreSQL from ever disagreeing about what "the replies to them" means, and costs one pass
over the thread rather than a subquery per message.

The operation itself is written once too, over the back ends' primitives; SQLite adds the
wiping of freed pages around it (`_erase`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from .primitives import Primitives, Scope, Transaction
from .records import ForgetReport


@dataclass(frozen=True)
class ErasurePlan:
    """The rows of one thread to delete, and what they are."""

    ids: tuple[int, ...]
    """Rows to delete, ascending."""
    messages: int
    replies: int
    tool_steps: int
    ledger_rows: int
    """Deleted rows carrying a turn's cost asked by the person: the delete copies each into
    the usage ledger under their ID, to be anonymised after it."""
    unlinked: int
    """Kept rows whose cost names the person (none in a thread written turn by turn)."""

    def report(
        self, session_id: str, *, summaries: int, approvals: int, usage_records: int
    ) -> ForgetReport:
        """What forgetting did to the thread; it is named only when something went."""
        found = ForgetReport(
            messages=self.messages,
            replies=self.replies,
            tool_steps=self.tool_steps,
            summaries=summaries,
            approvals=approvals,
            usage_records=usage_records,
        )
        return found if found == ForgetReport() else replace(found, sessions=(session_id,))

    @property
    def first(self) -> int | None:
        """The lowest row deleted: every summary covering it or later goes."""
        return self.ids[0] if self.ids else None


def plan_erasure(rows: Iterable[Any], user_id: str, *, whole: bool = False) -> ErasurePlan:
    """Walk a thread's `Statements.erasure_rows`, oldest first, and pick the person's turns.

    Rows before the thread's first user message belong to no turn and stay. A row attributed
    to the person is theirs even if its role cannot be read. With `whole`, the thread is
    their own memory (its ID is made of theirs) and every row of it is theirs.
    """
    ids: list[int] = []
    messages = replies = steps = ledger = unlinked = 0
    theirs = whole
    for row_id, role, author_id, asked_by, costed in rows:
        if role == "user":
            theirs = whole or author_id == user_id
        if theirs or author_id == user_id:
            ids.append(int(row_id))
            if author_id == user_id:
                messages += 1
            elif role == "assistant":
                replies += 1
            else:
                steps += 1
            if costed and (whole or asked_by == user_id):
                ledger += 1
        elif asked_by == user_id:
            unlinked += 1
    return ErasurePlan(tuple(ids), messages, replies, steps, ledger, unlinked)


FORGOTTEN = "(forgotten)"
"""What follows the platform prefix in the session ID that the usage records of forgotten
people's own memory move to (`discord:(forgotten)`)."""


def platform_prefix(platform: str) -> str:
    """The session-ID prefix of a platform's threads (`discord` -> `discord:`).

    Raises:
        ValueError: `platform` is empty or holds a colon.
    """
    if not platform or ":" in platform:
        raise ValueError(f"not a platform name: {platform!r}")
    return f"{platform}:"


class Erasure(Primitives):
    """`forget_user`, over the back end's primitives."""

    async def forget_user(
        self, platform: str, user_id: str, *, dry_run: bool, own_session: str | None = None
    ) -> ForgetReport:
        """Delete one person's messages and the turns that answered them (see `Store`).

        Each thread is planned and changed in one transaction of its own, under the thread's
        lock, so a turn running meanwhile is wholly seen or not at all. A dry run only reads,
        one snapshot per thread, and takes no lock (on SQLite, it works on a file opened
        read-only).

        The changes run without a snapshot (PostgreSQL's READ COMMITTED): one taken with the
        transaction's first statement, the wait for the lock, would hide the turn that
        committed while it waited, and a summary saved meanwhile (summaries take no thread
        lock) from the delete that must drop it. With the lock held no turn commits in
        between, so each statement seeing what has committed before it is what is wanted.

        Raises:
            ValueError: `platform` is no platform name, or `own_session` is not one of its.
        """
        prefix = platform_prefix(platform)
        if own_session is not None and not own_session.startswith(prefix):
            raise ValueError(f"{own_session!r} is not a session of {platform}")
        threads = await self._read(self._sql.their_threads, prefix, user_id, platform)
        found = {str(row[0]) for row in threads}
        sessions = sorted(found if own_session is None else found | {own_session})

        async def forget_all() -> ForgetReport:
            report = ForgetReport()
            for session_id in sessions:
                forget = partial(
                    self._forget_in,
                    session_id,
                    platform,
                    user_id,
                    dry_run=dry_run,
                    own=session_id == own_session,
                )
                report += await self._transaction(
                    forget,
                    Scope(session_id, snapshot=dry_run, read_only=dry_run, exclusive=not dry_run),
                )
            return report

        return await forget_all() if dry_run else await self._erase(forget_all)

    async def _erase(self, forget: Callable[[], Awaitable[ForgetReport]]) -> ForgetReport:
        """Run `forget`'s deletions; a back end whose deleted bytes could stay readable
        overrides this to wipe them too."""
        return await forget()

    async def _forget_in(
        self,
        session_id: str,
        platform: str,
        user_id: str,
        tx: Transaction,
        *,
        dry_run: bool,
        own: bool,
    ) -> ForgetReport:
        sql = self._sql
        plan = plan_erasure(await tx.rows(sql.erasure_rows, session_id), user_id, whole=own)
        approval_args = (session_id, bool(plan.ids), platform, user_id)
        counts = (await tx.rows(sql.erasure_counts, *approval_args, plan.first, own))[0]
        summaries, approvals, named = (int(count) for count in counts)
        usage_records = named + plan.ledger_rows + plan.unlinked
        if not dry_run:
            # The delete triggers drop the summaries covering these rows, unindex them, and
            # copy each turn's cost into the ledger under whom it answered; so the ledger is
            # anonymised after it.
            await tx.run(sql.erase_rows, sql.dialect.ids(plan.ids))
            if plan.ids:
                await tx.run(sql.drop_emptied, session_id)
            approvals = await tx.run(sql.drop_their_approvals, *approval_args)
            if own:
                # Its ID names them: every usage record of it moves to a name of nobody's.
                forgotten = f"{platform_prefix(platform)}{FORGOTTEN}"
                usage_records = await tx.run(sql.move_ledger, session_id, forgotten)
            else:
                usage_records = 0
                for statement in sql.unname:
                    usage_records += await tx.run(statement, session_id, user_id)
        return plan.report(
            session_id, summaries=summaries, approvals=approvals, usage_records=usage_records
        )
