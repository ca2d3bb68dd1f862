"""A `ReplySink` and an `ApprovalOutlet` that record what the core tells them, for tests of the
core on its own."""

from __future__ import annotations

from bot.messages import ApprovalEnding, ApprovalRequest, Reply


class Recorder:
    """Notes whether a turn started and every text delta; can be told to fail."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.started_turns = 0
        self.deltas: list[str] = []
        self.tools: list[str] = []
        """Tools the core said were running, in order."""
        self._fail_with = fail_with

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    async def started(self) -> None:
        self.started_turns += 1

    async def delta(self, text: str) -> None:
        if self._fail_with is not None:
            raise self._fail_with
        self.deltas.append(text)

    async def tool(self, name: str) -> None:
        self.tools.append(name)


class Outlet:
    """Notes every prompt the core says ended without a click: its approval ID, its address,
    how it ended and the reply to post under it."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, str, ApprovalEnding, Reply | None]] = []

    async def settled(
        self, request: ApprovalRequest, address: str, outcome: ApprovalEnding, reply: Reply | None
    ) -> None:
        self.ended.append((request.approval_id, address, outcome, reply))
