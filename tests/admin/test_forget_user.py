"""`python -m bot forget-user`: one person's messages and the turns that answered them go,
everyone else's stay, and the token counts stay without their name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from agents import FunctionTool, function_tool

from bot.messages import IncomingMessage, ReplyKind, Surface
from bot.storage import Author, SQLiteStore, Store, Usage
from tests.fakes.openai_server import FakeOpenAI, Fault, ToolCall, message_text
from tests.support.cli import run_bot
from tests.support.items import msg
from tests.support.parts import BotParts, make_config
from tests.support.postgres import fresh_schema
from tests.support.stores import everything, people_in, tokens_in

CHAT = Surface(max_chars=2000)
ANN, BO, CY = Author("U-ANN", "Ann"), Author("U-BO", "Bo"), Author("U-CY", "Cy")
TESS = Author("console:tess", "tess")


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
            before = await everything(store)
            assert "ann-" in json.dumps([d.messages for d in before.values()], default=str)

            dry = await run_bot("forget-user", "discord", "U-ANN", "--dry-run", memory=memory)
            assert dry.code == 0, dry.err
            assert await everything(store) == before
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

            after = await everything(store, list(before))
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
            assert tokens_in(after) == tokens_in(before)
            assert "U-ANN" not in people_in(after, "discord:")

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


async def test_under_user_scope_no_session_id_names_them_afterwards(memory: str) -> None:
    async with FakeOpenAI(answering) as model:
        if memory.startswith("postgresql"):
            config = make_config(model, database_url=memory, memory_scope="user")
        else:
            config = make_config(model, memory, memory_scope="user")
        parts = await BotParts(config).start()
        try:
            # Their own memory is keyed on their ID, wherever they speak.
            await _say(parts, "discord", "discord:g1:c1", ANN, "ann-1 hello")
            await _say(parts, "discord", "discord:g1:c2", ANN, "ann-2 again")
            await _say(parts, "discord", "discord:g1:c2", ANN, "/undo")  # its cost: the ledger
            await _say(parts, "discord", "discord:g1:c1", BO, "bo-1 hi")
            store = parts.store
            await store.record_usage("discord:user:U-ANN", Usage("s", 7, 0, 3, 20), kind="summary")
            before = await store.usage_report("thread")
            assert "discord:user:U-ANN" in {line.key for line in before}

            dry = await run_bot("forget-user", "discord", "U-ANN", "--dry-run", memory=memory)
            real = await run_bot("forget-user", "discord", "U-ANN", memory=memory)
            assert real.code == 0, real.err
            after = await store.usage_report("thread")
            assert [line.key for line in after if "U-ANN" in line.key] == []
            assert {line.key for line in after} == {"discord:user:U-BO", "discord:(forgotten)"}
            assert sum(line.totals.tokens for line in after) == sum(
                line.totals.tokens for line in before
            )
            assert real.out.splitlines()[1:3] == [
                "  1 message(s) they wrote, in 1 thread(s)",
                "  1 bot reply(ies) and 0 tool step(s) answering them",
            ]
            anonymised = (
                "  and anonymised 3 usage record(s) (their token counts stay, naming nobody)"
            )
            assert real.out.splitlines()[5] == anonymised
            assert dry.out.splitlines()[5] == anonymised.replace("anonymised", "would anonymise")
            assert await store.list_sessions() == [await _only(store, "discord:user:U-BO")]
        finally:
            await parts.close()


async def _only(store: Store, session_id: str) -> Any:
    (info,) = [s for s in await store.list_sessions() if s.session_id == session_id]
    return info


async def test_forget_user_on_the_console_takes_the_name_people_chat_under(
    tmp_path: Path,
) -> None:
    # The console stores `console:NAME` as the author: `--name root`, or the login name.
    path = tmp_path / "memory.sqlite3"
    root = Author("console:root", "root")
    async with await SQLiteStore.open(path) as store:
        await store.append("console:default", [msg("user", "[root] hi")], author=root)
        await store.append("console:default", [msg("user", "[tess] yo")], author=TESS)
    ran = await run_bot("forget-user", "console", "root", memory=path)
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[:2] == ["Removed:", "  1 message(s) they wrote, in 1 thread(s)"]
    ran = await run_bot("forget-user", "console", "console:tess", memory=path)  # as stored
    assert ran.out.splitlines()[:2] == ["Removed:", "  1 message(s) they wrote, in 1 thread(s)"]
    help_text = (await run_bot("forget-user", "--help", memory=path)).out
    assert "PERSON" not in help_text
    assert "on the console the name they chatted under" in " ".join(help_text.split())


async def test_usage_by_user_tells_anonymised_turns_from_summaries(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        for author, tokens in ((ANN, 100), (BO, 10)):
            await store.append(
                "discord:g1:c1",
                [msg("user", f"[{author.name}] hi"), msg("assistant", "hello")],
                author=author,
                usage=Usage("m", tokens, 0, 1, 40),
            )
        await store.record_usage("discord:g1:c1", Usage("m", 1000, 0, 2, 10), kind="summary")
    ran = await run_bot("forget-user", "discord", "U-ANN", memory=path)
    assert ran.code == 0, ran.err
    ran = await run_bot("usage", "--by", "user", memory=path)
    assert ran.code == 0, ran.err
    rows = [line.split()[:2] for line in ran.out.splitlines()[1:-2]]
    assert rows == [["(summaries)", "1"], ["(anonymised", "turns)"], ["discord:U-BO", "1"]]
    ran = await run_bot("usage", "--by", "user", "--format", "csv", memory=path)
    keys = [line.split(",")[0] for line in ran.out.splitlines()[1:]]
    assert keys == ["(summaries)", "(anonymised turns)", "discord:U-BO"]
