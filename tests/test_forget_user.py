"""`python -m bot forget-user`: one person's messages and the turns that answered them go,
everyone else's stay, and the token counts stay without their name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agents import FunctionTool, function_tool

from bot.messages import IncomingMessage, ReplyKind, Surface
from bot.storage import (
    Author,
    ForgetReport,
    PendingApproval,
    SQLiteStore,
    Store,
    ThreadDump,
    Usage,
)
from bot.storage.erasure import plan_erasure, platform_prefix
from tests.fakes.openai_server import FakeOpenAI, Fault, ToolCall, message_text
from tests.support.cli import run_bot
from tests.support.items import msg, tool_call, tool_output
from tests.support.parts import BotParts, make_config
from tests.support.postgres import fresh_schema
from tests.support.stores import summary_of

CHAT = Surface(max_chars=2000)
ANN, BO, CY = Author("U-ANN", "Ann"), Author("U-BO", "Bo"), Author("U-CY", "Cy")


# ----- the walk that decides what goes ---------------------------------------------------------


def _row(row_id: int, role: str | None, author: str | None = None, **extra: Any) -> tuple[Any, ...]:
    return (row_id, role, author, extra.get("asked_by"), extra.get("costed", False))


@pytest.mark.parametrize(
    ("rows", "ids", "counts"),
    [
        # (messages, replies, tool steps, ledger rows, kept rows naming them)
        ([], (), (0, 0, 0, 0, 0)),
        # Rows before any user message belong to no turn.
        ([_row(1, "assistant"), _row(2, "user", "A")], (2,), (1, 0, 0, 0, 0)),
        # Their turn runs to the next user message, whoever wrote it.
        (
            [
                _row(1, "user", "A"),
                _row(2, None),
                _row(3, None),
                _row(4, "assistant", asked_by="A", costed=True),
                _row(5, "user", "B"),
                _row(6, "assistant", asked_by="B", costed=True),
                _row(7, "user", "A"),
            ],
            (1, 2, 3, 4, 7),
            (2, 1, 2, 1, 0),
        ),
        # A user message with no author (the SDK's) ends their turn too, and stays.
        ([_row(1, "user", "A"), _row(2, "user"), _row(3, "assistant")], (1,), (1, 0, 0, 0, 0)),
        # A row attributed to them whose role cannot be read is still theirs; a kept row
        # naming them as asker is counted to be unlinked.
        (
            [_row(1, None, "A"), _row(2, "assistant", asked_by="A", costed=True)],
            (1,),
            (1, 0, 0, 0, 1),
        ),
    ],
)
def test_the_walk_takes_their_turns_whole_and_nothing_else(
    rows: list[tuple[Any, ...]], ids: tuple[int, ...], counts: tuple[int, ...]
) -> None:
    plan = plan_erasure(rows, "A")
    assert plan.ids == ids
    assert (
        plan.messages,
        plan.replies,
        plan.tool_steps,
        plan.ledger_rows,
        plan.unlinked,
    ) == counts


@pytest.mark.parametrize("platform", ["", "discord:1", "a:b"])
def test_a_platform_name_has_no_colon(platform: str) -> None:
    with pytest.raises(ValueError, match="not a platform name"):
        platform_prefix(platform)


# ----- the store, on both back ends ----------------------------------------------------------


def _approval(approval_id: str, session_id: str, requester: Author) -> PendingApproval:
    return PendingApproval(
        approval_id=approval_id,
        session_id=session_id,
        platform=session_id.split(":")[0],
        requester=requester,
        calls="[]",
        state="{}",
        items="[]",
        instructions="",
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10),
    )


async def _everything(store: Store, sessions: list[str] | None = None) -> dict[str, ThreadDump]:
    """Every thread's dump (or these threads', listed or not: a ledger outlives its thread)."""
    if sessions is None:
        sessions = [s.session_id for s in await store.list_sessions()]
    return {session_id: await store.dump_thread(session_id) for session_id in sessions}


async def test_the_store_forgets_one_person_in_one_platform(store: Store) -> None:
    cost = Usage("m", 100, 10, 5, 300)
    thread = "discord:1:2"
    await store.append(thread, [msg("assistant", "welcome, all")])
    await store.append(
        thread, [msg("user", "[Bo] b1"), msg("assistant", "r-b1")], author=BO, usage=cost
    )
    rows = await store.history(thread, limit=10)
    await store.save_summary(thread, "before Ann", covers_id=rows[-1].id, replaces=None)
    await store.append(
        thread,
        [msg("user", "[Ann] a1"), tool_call("c1"), tool_output("c1"), msg("assistant", "r-a1")],
        author=ANN,
        usage=cost,
    )
    await store.append(
        thread, [msg("user", "[Bo] b2"), msg("assistant", "r-b2")], author=BO, usage=cost
    )
    rows = await store.history(thread, limit=20)
    await store.save_summary(thread, "with Ann", covers_id=rows[-1].id, replaces=rows[2].id)
    await store.append(
        thread, [msg("user", "[Ann] a2"), msg("assistant", "r-a2")], author=ANN, usage=cost
    )
    await store.save_approval(_approval("bo-here", thread, BO))  # its run carries Ann's words
    # An undone turn of Ann's is in the ledger under her name already.
    await store.append(
        "discord:1:3", [msg("user", "[Ann] a3"), msg("assistant", "r-a3")], author=ANN, usage=cost
    )
    await store.undo_last_exchange("discord:1:3")
    await store.save_approval(_approval("ann-there", "discord:1:4", ANN))
    await store.save_approval(_approval("bo-there", "discord:1:5", BO))
    # The same ID on another platform is another person.
    await store.append(
        "slack:T:C:1.0", [msg("user", "[Ann] s1"), msg("assistant", "r-s1")], author=ANN, usage=cost
    )
    before = await _everything(store)

    dry = await store.forget_user("discord", "U-ANN", dry_run=True)
    assert await _everything(store) == before
    assert await store.approval("ann-there") is not None

    done = await store.forget_user("discord", "U-ANN", dry_run=False)
    assert (
        done
        == dry
        == ForgetReport(
            sessions=("discord:1:2", "discord:1:3", "discord:1:4"),
            messages=2,
            replies=2,
            tool_steps=2,
            summaries=1,
            approvals=2,
            usage_records=3,
        )
    )
    assert [s.item for s in await store.history(thread, limit=20)] == [
        msg("assistant", "welcome, all"),
        msg("user", "[Bo] b1"),
        msg("assistant", "r-b1"),
        msg("user", "[Bo] b2"),
        msg("assistant", "r-b2"),
    ]
    summary = await summary_of(store, thread)
    assert summary is not None
    assert summary.text == "before Ann"
    assert await store.approval("bo-here") is None
    assert await store.approval("ann-there") is None
    assert await store.approval("bo-there") is not None
    after = await _everything(store)
    assert after["slack:T:C:1.0"] == before["slack:T:C:1.0"]
    # Every token is still counted; none of it names her.
    assert _tokens(after) == _tokens(before)
    assert "U-ANN" not in _people(after, "discord:")
    assert await store.forget_user("discord", "U-ANN", dry_run=False) == ForgetReport()


async def test_no_word_of_theirs_stays_in_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        for n in range(30):
            await store.append("console:t", [msg("user", f"[Bo] hello {n}")], author=BO)
        secret = [msg("user", "[Ann] zebrafish-secret"), msg("assistant", "zebrafish noted")]
        await store.append("console:t", secret, author=ANN)
        assert await store.search("console:t", "zebrafish", limit=5)  # now in the index too
        await store.forget_user("console", "U-ANN", dry_run=False)
        assert await store.search("console:t", "zebrafish", limit=5) == []
    # Closed, the write-ahead log is folded into the file; the file's bytes are all there is.
    assert not path.with_name(path.name + "-wal").exists()
    assert b"zebrafish" not in path.read_bytes()


def _tokens(dumps: dict[str, ThreadDump]) -> int:
    return sum(
        [m.usage.input_tokens for d in dumps.values() for m in d.messages if m.usage]
        + [e.usage.input_tokens for d in dumps.values() for e in d.ledger]
    )


def _people(dumps: dict[str, ThreadDump], prefix: str) -> set[str | None]:
    """Every person ID the platform's threads still hold, anywhere."""
    found: set[str | None] = set()
    for session_id, dump in dumps.items():
        if session_id.startswith(prefix):
            found |= {m.author.id for m in dump.messages if m.author}
            found |= {m.asked_by for m in dump.messages}
            found |= {e.author_id for e in dump.ledger}
    return found


# ----- a shared thread, through the real core, the fake model and the command --------------


@dataclass
class Tickets:
    deleted: list[str] = field(default_factory=list)

    def tools(self) -> list[FunctionTool]:
        @function_tool(needs_approval=True)
        async def delete_ticket(ticket: str) -> str:
            """Delete a ticket for good.

            Args:
                ticket: The ticket's ID.
            """
            self.deleted.append(ticket)
            return f"Ticket {ticket} deleted."

        @function_tool
        async def lookup_ticket(ticket: str) -> str:
            """Look a ticket up.

            Args:
                ticket: The ticket's ID.
            """
            return f"Ticket {ticket}: open."

        return [delete_ticket, lookup_ticket]


def answering(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
    """Answers quoting the last message only, so a reply carries the words of whom it answers."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"The tool said: {message_text(last)}"
    text = message_text(last) if last.get("role") == "user" else ""
    if "look up " in text:
        return ToolCall("lookup_ticket", {"ticket": "T-1"})
    if "delete " in text:
        return ToolCall("delete_ticket", {"ticket": "T-9"})
    return f"Answering: {text}"


class Outlet:
    async def settled(self, *args: Any) -> None:
        pass


@pytest.fixture(params=["sqlite", "postgres"])
async def memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where the bot and the command keep memory: a file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "memory.sqlite3")
    else:
        async with fresh_schema() as schema:
            yield schema.url


async def test_forget_user_removes_exactly_one_persons_turns_from_a_shared_thread(
    memory: str,
) -> None:
    async with FakeOpenAI(answering) as model:
        if memory.startswith("postgresql"):
            config = make_config(model, database_url=memory)
        else:
            config = make_config(model, memory)
        parts = await BotParts(config, tools=Tickets().tools()).start()
        try:
            parts.core.attach_outlet("discord", Outlet())
            await _converse(parts)
            store = parts.store
            shared = "discord:g1:c1"
            kept_turns = {
                text: await _turn(store, shared, text)
                for text in ("bo-1 hi", "bo-2 now?", "cy-1 yo")
            }
            before = await _everything(store)
            assert "ann-" in json.dumps([d.messages for d in before.values()], default=str)

            dry = await run_bot("forget-user", "discord", "U-ANN", "--dry-run", memory=memory)
            assert dry.code == 0, dry.err
            assert await _everything(store) == before
            real = await run_bot("forget-user", "discord", "U-ANN", memory=memory)
            assert real.code == 0, real.err
            expected = [
                "  4 message(s) they wrote, in 3 thread(s)",
                "  4 bot reply(ies) and 2 tool step(s) answering them",
                "  1 thread summary(ies) that covered them (rebuilt as threads go on)",
                "  1 pending tool approval(s)",
            ]
            assert dry.out.splitlines()[1:5] == expected
            assert real.out.splitlines()[1:5] == expected
            assert dry.out.splitlines()[5] == (
                "  and would anonymise 5 usage record(s) (their token counts stay, naming nobody)"
            )
            assert real.out.splitlines()[5] == (
                "  and anonymised 5 usage record(s) (their token counts stay, naming nobody)"
            )
            assert real.out.splitlines()[7:] == [
                "  discord:g1:c1",
                "  discord:g1:c2",
                "  discord:g1:c3",
            ]
            assert "Forgot a person's data on discord: 3 thread(s), 4 message(s)" in real.err
            assert "ann-" not in real.err
            assert "U-ANN" not in real.err

            after = await _everything(store, list(before))
            # Her own other thread held nothing else, so it went whole.
            assert after["discord:g1:c2"].messages == ()
            listed = {s.session_id for s in await store.list_sessions()}
            assert listed == {shared, "slack:T1:C1:1.0"}
            discord_rows = json.dumps(
                [m.data for k, d in after.items() if k.startswith("discord:") for m in d.messages]
            )
            assert "ann-" not in discord_rows
            assert "Ann" not in discord_rows
            for text, turn in kept_turns.items():
                assert await _turn(store, shared, text) == turn
            assert after["slack:T1:C1:1.0"] == before["slack:T1:C1:1.0"]
            assert [s.text for s in after[shared].summaries] == ["before Ann spoke"]
            assert await store.approval_in("discord:g1:c3") is None
            assert await store.approval_in("discord:g1:c4") is not None  # Bo's own
            assert _tokens(after) == _tokens(before)
            assert "U-ANN" not in _people(after, "discord:")

            # The thread goes on, and the model never sees her again.
            reply = await _say(parts, "discord", shared, BO, "bo-3 and now?")
            assert reply.kind is ReplyKind.ANSWER
            assert "ann-" not in json.dumps(model.requests[-1].messages)
            again = await run_bot("forget-user", "discord", "U-ANN", memory=memory)
            assert again.out == "Nothing stored for that person: nothing to remove.\n"
        finally:
            await parts.close()


async def _converse(parts: BotParts) -> None:
    """Ann, Bo and Cy in one Discord thread; Ann and Bo elsewhere; Ann on Slack too."""
    shared = "discord:g1:c1"
    assert (await _say(parts, "discord", shared, BO, "bo-1 hi")).kind is ReplyKind.ANSWER
    rows = await parts.store.history(shared, limit=10)
    await parts.store.save_summary(shared, "before Ann spoke", covers_id=rows[-1].id, replaces=None)
    await _say(parts, "discord", shared, ANN, "ann-1 my address is 1 Elm St")
    await _say(parts, "discord", shared, ANN, "ann-2 look up my ticket")
    await _say(parts, "discord", shared, BO, "bo-2 now?")
    rows = await parts.store.history(shared, limit=20)
    await parts.store.save_summary(
        shared, "Ann lives on Elm St", covers_id=rows[-1].id, replaces=rows[1].id
    )
    await _say(parts, "discord", shared, CY, "cy-1 yo")
    await _say(parts, "discord", shared, ANN, "ann-3 thanks")
    # An exchange she undid: its cost is in the ledger under her name.
    await _say(parts, "discord", "discord:g1:c2", ANN, "ann-0 oops")
    assert (await _say(parts, "discord", "discord:g1:c2", ANN, "/undo")).kind is ReplyKind.COMMAND
    await _say(parts, "discord", "discord:g1:c2", ANN, "ann-4 elsewhere")
    paused = await _say(parts, "discord", "discord:g1:c3", ANN, "ann-5 delete T-9")
    assert paused.kind is ReplyKind.APPROVAL
    bos = await _say(parts, "discord", "discord:g1:c4", BO, "bo-4 delete T-8")
    assert bos.kind is ReplyKind.APPROVAL
    await _say(parts, "slack", "slack:T1:C1:1.0", ANN, "ann-slack same ID, other platform")


async def _say(parts: BotParts, platform: str, thread: str, who: Author, text: str) -> Any:
    message = IncomingMessage(platform, thread, who.id, who.name, text)
    return await parts.core.handle(message, CHAT)


async def _turn(store: Store, session_id: str, text: str) -> list[Any]:
    """The rows of the turn that `text` started, as (item, author)."""
    rows = await store.history(session_id, limit=100)
    start = next(i for i, r in enumerate(rows) if r.role == "user" and text in str(r.item))
    end = next((i for i in range(start + 1, len(rows)) if rows[i].role == "user"), len(rows))
    return [(r.item, r.author) for r in rows[start:end]]
