"""Which rows forgetting a person removes from one thread: the same walk on every back end.

A turn is appended atomically, one thread at a time: a user message, then everything the
run produced for it (tool calls, their outputs, the answer). So the rows that answered a
person are those after each of their messages up to the next user message, whoever wrote
that. Deciding it here, over rows both stores read in one ordered scan, keeps SQLite and
PostgreSQL from ever disagreeing about what "the replies to them" means, and costs one pass
over the thread rather than a subquery per message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .records import ForgetReport

COLUMNS = "id, {role}, author_id, asked_by, input_tokens IS NOT NULL"
"""What `plan_erasure` reads per row, in thread order; `{role}` is the back end's expression
for the item's role (NULL for a row that is not a JSON object)."""


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


def plan_erasure(rows: Iterable[Any], user_id: str) -> ErasurePlan:
    """Walk a thread's `COLUMNS` rows, oldest first, and pick the person's turns.

    Rows before the thread's first user message belong to no turn and stay. A row attributed
    to the person is theirs even if its role cannot be read.
    """
    ids: list[int] = []
    messages = replies = steps = ledger = unlinked = 0
    theirs = False
    for row_id, role, author_id, asked_by, costed in rows:
        if role == "user":
            theirs = author_id == user_id
        if theirs or author_id == user_id:
            ids.append(int(row_id))
            if author_id == user_id:
                messages += 1
            elif role == "assistant":
                replies += 1
            else:
                steps += 1
            if costed and asked_by == user_id:
                ledger += 1
        elif asked_by == user_id:
            unlinked += 1
    return ErasurePlan(tuple(ids), messages, replies, steps, ledger, unlinked)


def platform_prefix(platform: str) -> str:
    """The session-ID prefix of a platform's threads (`discord` -> `discord:`).

    Raises:
        ValueError: `platform` is empty or holds a colon.
    """
    if not platform or ":" in platform:
        raise ValueError(f"not a platform name: {platform!r}")
    return f"{platform}:"
