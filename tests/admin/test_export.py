"""`python -m bot export` / `import`: JSON Lines that read back into the very rows written,
and a Markdown transcript for people."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.admin.portable import FormatError, Placed, jsonl, place, read_threads
from bot.memory.transcript import user_item
from bot.storage import Author, PostgresStore, SQLiteStore, Store, ThreadDump, Usage
from bot.storage.records import DumpedMessage, DumpedSummary, LedgerEntry
from tests.support.cli import run_bot
from tests.support.items import tool_call, tool_output
from tests.support.postgres import PostgresSchema, fresh_schema

# Every code point, lone surrogates and NUL included (the store keeps them as JSON escapes).
ANY_TEXT = st.text(st.characters(codec=None), max_size=40)
# What platforms give as names and IDs, and what the database holds as plain text columns.
PLAIN = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
USAGES = st.builds(
    Usage,
    st.none() | PLAIN,
    *[st.integers(0, 2**31 - 1)] * 4,
)
# Stored texts the bot would never write itself (the SDK, an older release, another tool):
# they must come back byte for byte, not re-encoded.
RAW_DATA = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30) | (
    st.sampled_from(
        [
            '{"role":"user","content":"compact"}',
            '{"x": NaN}',
            "[1, 2]",
            '"just a string"',
            "not json at all",
            '{"role": "user", "content": "raw ü, not escaped"}',
            '{"a": 1, "a": 2}',
            '{"role": "assistant", "content": "caf\\u00e9"}',
        ]
    )
)
TIMES = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


@dataclass(frozen=True)
class Turn:
    author: int
    text: str
    reply: str
    tool: bool
    cost: Usage | None


@dataclass(frozen=True)
class Thread:
    authors: list[Author]
    turns: list[Turn]
    summary_at: int | None
    summary_cost: Usage | None
    undo: bool


THREADS = st.builds(
    Thread,
    authors=st.lists(st.builds(Author, PLAIN, PLAIN), min_size=1, max_size=3),
    turns=st.lists(
        st.builds(Turn, st.integers(0, 2), ANY_TEXT, ANY_TEXT, st.booleans(), st.none() | USAGES),
        max_size=5,
    ),
    summary_at=st.none() | st.integers(0, 30),
    summary_cost=st.none() | USAGES,
    undo=st.booleans(),
)


@st.composite
def raw_threads(draw: st.DrawFn) -> ThreadDump:
    """A dumped thread of any stored rows, loaded as `migrate` would load it."""
    messages = tuple(
        DumpedMessage(
            id=index + 1,
            data=draw(RAW_DATA),
            author=draw(st.none() | st.builds(Author, PLAIN, PLAIN)),
            created_at=draw(TIMES),
            usage=draw(st.none() | USAGES),
            asked_by=draw(st.none() | PLAIN),
        )
        for index in range(draw(st.integers(0, 5)))
    )
    covered = draw(st.sets(st.integers(1, len(messages)), max_size=2)) if messages else set()
    summaries = tuple(DumpedSummary(covers, draw(PLAIN), draw(TIMES)) for covers in sorted(covered))
    ledger = tuple(
        LedgerEntry(draw(st.sampled_from(["turn", "summary"])), draw(st.none() | PLAIN), usage, t)
        for usage, t in draw(st.lists(st.tuples(USAGES, TIMES), max_size=3))
    )
    created, updated = sorted([draw(TIMES), draw(TIMES)])
    return ThreadDump("raw:" + draw(PLAIN), created, updated, messages, summaries, ledger)


async def populate(store: Store, session_id: str, thread: Thread) -> None:
    """Turns as the core appends them, then a summary, a summary's cost and an /undo."""
    for n, turn in enumerate(thread.turns):
        author = thread.authors[turn.author % len(thread.authors)]
        items: list[dict[str, Any]] = [dict(user_item(author, turn.text))]
        if turn.tool:
            items += [tool_call(f"c{n}"), tool_output(f"c{n}")]
        items.append({"role": "assistant", "content": turn.reply})
        await store.append(session_id, items, author=author, usage=turn.cost)
    rows = await store.history(session_id, limit=1000)
    if thread.summary_at is not None and rows:
        covers = rows[thread.summary_at % len(rows)].id
        await store.save_summary(session_id, "so far: ünï 🧵", covers_id=covers, replaces=None)
    if thread.summary_cost is not None:
        await store.record_usage(
            session_id, thread.summary_cost, kind="summary", author=thread.authors[0]
        )
    if thread.undo:
        await store.undo_last_exchange(session_id)


async def export_all(store: Store) -> bytes:
    return b"".join(
        [jsonl(await store.dump_thread(s.session_id)) for s in await store.list_sessions()]
    )


def normal(dump: ThreadDump) -> tuple[Any, ...]:
    """Everything a dump holds, with each database's own row IDs as positions."""
    position = {message.id: index for index, message in enumerate(dump.messages)}
    return (
        dump.session_id,
        dump.created_at,
        dump.updated_at,
        [(m.data, m.author, m.created_at, m.usage, m.asked_by) for m in dump.messages],
        [(position[s.covers_id], s.text, s.created_at) for s in dump.summaries],
        dump.ledger,
    )


async def import_all(store: Store, exported: bytes) -> list[Placed]:
    return [await place(store, dump) for dump in read_threads(io.BytesIO(exported))]


@settings(max_examples=60, deadline=None)
@given(threads=st.lists(THREADS, min_size=1, max_size=3), raw=raw_threads())
def test_export_then_import_gives_back_every_row_exactly(
    threads: list[Thread], raw: ThreadDump
) -> None:
    async def check() -> None:
        async with await SQLiteStore.open() as source, await SQLiteStore.open() as copy:
            for n, thread in enumerate(threads):
                await populate(source, f"discord:{n}:🧵", thread)
            assert await source.load_thread(raw)
            exported = await export_all(source)
            sessions = await source.list_sessions()

            assert await import_all(copy, exported) == [Placed.IMPORTED] * len(sessions)
            for info in sessions:
                before = await source.dump_thread(info.session_id)
                after = await copy.dump_thread(info.session_id)
                assert normal(after) == normal(before)
                assert after.same_memory(before)
            # The copy exports to the same bytes, and importing again changes nothing.
            assert await export_all(copy) == exported
            assert await import_all(copy, exported) == [Placed.IDENTICAL] * len(sessions)
            assert await export_all(copy) == exported

    asyncio.run(check())


async def test_a_populated_postgres_database_round_trips_through_the_cli(
    tmp_path: Path, postgres: PostgresSchema
) -> None:
    authors = [Author("U1", "Ann"), Author("U2", "Bo 🎉"), Author("U3", "'); DROP TABLE x; --")]
    turns = [
        Turn(n % 3, text, f"reply {n} — {text}", n % 2 == 0, Usage("m", 100 + n, n, 7, 400))
        for n, text in enumerate(["héllo", "lone \ud800 surrogate", 'q " \\ \x00', "🧵" * 50])
    ]
    raw = ThreadDump(
        "raw:1",
        datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 26, 11, 0, 0, 654321, tzinfo=UTC),
        (
            DumpedMessage(1, '{"role":"user","content":"compact"}', None, datetime.now(UTC), None),
            DumpedMessage(2, "not json", Author("U9", "Zed"), datetime.now(UTC), None, "U9"),
        ),
        (DumpedSummary(1, "raw summary", datetime.now(UTC)),),
        (LedgerEntry("summary", "U9", Usage("s", 5, 0, 1, 9), datetime.now(UTC)),),
    )
    async with await PostgresStore.open(postgres.url) as source:
        await populate(source, "slack:T1:C1:1700.1", Thread(authors, turns, 3, None, False))
        await populate(source, "discord:1:2", Thread(authors, turns, 1, turns[0].cost, True))
        assert await source.load_thread(raw)
        before = {
            s.session_id: await source.dump_thread(s.session_id)
            for s in await source.list_sessions()
        }

    exported = tmp_path / "memory.jsonl"
    ran = await run_bot("export", "--all", "--output", str(exported), memory=postgres.url)
    assert ran.code == 0, ran.err
    assert ran.out == f"Exported 3 thread(s) to {exported}.\n"
    async with fresh_schema() as target:
        ran = await run_bot("import", str(exported), memory=target.url)
        assert ran.code == 0, ran.err
        assert "Imported 3 thread(s)" in ran.out
        again = await run_bot("import", "-", memory=target.url, stdin=exported.read_bytes())
        assert again.code == 0, again.err
        assert "Imported 0 thread(s)" in again.out
        assert "Already there, identical: 3." in again.out
        async with await PostgresStore.open(target.url) as copy:
            for session_id, dump in before.items():
                # PostgreSQL keeps microseconds, and the file carries them.
                assert normal(await copy.dump_thread(session_id)) == normal(dump)


async def test_a_thread_the_database_holds_differently_is_left_alone(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "a.sqlite3") as source:
        await source.append("console:t", [{"role": "user", "content": "old"}])
        exported = await export_all(source)
    target_path = tmp_path / "b.sqlite3"
    async with await SQLiteStore.open(target_path) as target:
        await target.append("console:t", [{"role": "user", "content": "moved on"}])
    file = tmp_path / "t.jsonl"
    file.write_bytes(exported)
    ran = await run_bot("import", str(file), memory=target_path)
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[0] == "left alone, different: console:t"
    async with await SQLiteStore.open(target_path) as target:
        assert await target.read_items("console:t") == [{"role": "user", "content": "moved on"}]


GOOD_THREAD = {
    "type": "thread",
    "version": 1,
    "session_id": "console:a",
    "created_at": "2026-11-26T10:00:00Z",
    "updated_at": "2026-11-26T10:00:00Z",
}
GOOD_MESSAGE = {
    "type": "message",
    "created_at": "2026-11-26T10:00:00Z",
    "author": None,
    "asked_by": None,
    "usage": None,
    "item": {"role": "user", "content": "hi"},
}


def _file(*objects: Any) -> bytes:
    return b"".join(
        (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objects
    )


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (b"{not json", "line 3: is not a JSON object"),
        (b"\xff\xfe", "line 3: is not UTF-8 text"),
        ({"type": "memo"}, "line 3: has an unknown type 'memo'"),
        ({**GOOD_MESSAGE, "data": "x"}, "line 3: a message needs exactly one of item and data"),
        ({**GOOD_MESSAGE, "created_at": "yesterday"}, "line 3: created_at is not an ISO 8601"),
        ({**GOOD_MESSAGE, "author": {"id": 7}}, "line 3: author.id must be a string"),
        ({**GOOD_MESSAGE, "usage": {"input_tokens": -1}}, "line 3: usage.input_tokens must be"),
        ({**GOOD_THREAD, "version": 2}, "line 3: was written in format version 2"),
        (
            {"type": "summary", "covers": 5, "text": "s", "created_at": "2026-11-26T10:00:00Z"},
            "line 3: the summary covers message 5, but the thread has 1 message line(s)",
        ),
    ],
)
def test_a_bad_line_is_named_by_its_number(bad: Any, problem: str) -> None:
    lines = io.BytesIO(_file(GOOD_THREAD, GOOD_MESSAGE, bad))
    with pytest.raises(FormatError) as caught:
        list(read_threads(lines))
    assert str(caught.value).startswith(problem)


def test_lines_before_any_thread_line_are_refused() -> None:
    with pytest.raises(FormatError, match="line 1: a message line must come after its thread"):
        list(read_threads(io.BytesIO(_file(GOOD_MESSAGE))))


async def test_a_bad_line_imports_the_threads_before_it_and_nothing_of_its_own(
    tmp_path: Path,
) -> None:
    second = {**GOOD_THREAD, "session_id": "console:b"}
    file = tmp_path / "bad.jsonl"
    file.write_bytes(_file(GOOD_THREAD, GOOD_MESSAGE, b"", second, GOOD_MESSAGE, b"{oops"))
    memory = tmp_path / "memory.sqlite3"
    ran = await run_bot("import", str(file), memory=memory)
    assert ran.code == 1
    assert ran.out.splitlines()[0].startswith("imported: console:a (1 message(s)")
    assert ran.err.strip().splitlines() == [
        "error: line 6: is not a JSON object; nothing of that thread was imported"
    ]
    async with await SQLiteStore.open(memory, read_only=True) as store:
        assert [s.session_id for s in await store.list_sessions()] == ["console:a"]
    # Fixed, the same file imports the rest and leaves the first thread as it is.
    file.write_bytes(_file(GOOD_THREAD, GOOD_MESSAGE, second, GOOD_MESSAGE))
    ran = await run_bot("import", str(file), memory=memory)
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[:2] == [
        "already there, identical: console:a",
        "imported: console:b (1 message(s), 0 summary(ies), 0 usage record(s))",
    ]


async def test_markdown_export_reads_as_a_transcript(tmp_path: Path) -> None:
    memory = tmp_path / "memory.sqlite3"
    ann, bo = Author("U1", "Ann"), Author("U2", "Bo_the*dev")
    async with await SQLiteStore.open(memory) as store:
        await store.append(
            "discord:1:2",
            [dict(user_item(ann, "hello\nthere")), {"role": "assistant", "content": "Hi Ann."}],
            author=ann,
        )
        await store.append(
            "discord:1:2",
            [
                dict(user_item(bo, "look up T-1 \ud800")),
                tool_call("c1"),
                tool_output("c1"),
                {"role": "assistant", "content": "It is **open**."},
            ],
            author=bo,
        )
        rows = await store.history("discord:1:2", limit=10)
        await store.save_summary(
            "discord:1:2", "Ann greeted.\nBo asked.", covers_id=rows[1].id, replaces=None
        )
        await store.append("console:other", [{"role": "user", "content": "elsewhere"}])
    ran = await run_bot("export", "discord:1:2", "--format", "markdown", memory=memory)
    assert ran.code == 0, ran.err
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    text = ran.out
    assert text.startswith("# discord:1:2\n\n> Ann greeted.\n> Bo asked.\n\n**Ann** · " + day)
    blocks = text.split("\n\n")
    assert blocks[3] == "hello\nthere"  # the speaker's [Ann] prefix is the model's, not hers
    assert blocks[5] == "Hi Ann."
    assert blocks[6].startswith("**Bo\\_the\\*dev** · ")
    assert blocks[7] == "look up T-1 \ufffd"  # a lone surrogate has no UTF-8 form
    assert "(used the tool lookup)" in text
    assert "TOOL-OUTPUT" not in text  # tool outputs are not conversation
    assert text.endswith("It is **open**.\n")
    assert "elsewhere" not in text


async def test_export_says_what_it_needs_in_one_line(tmp_path: Path) -> None:
    memory = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(memory) as store:
        await store.append("console:a", [{"role": "user", "content": "hi"}])
    ran = await run_bot("export", memory=memory)
    assert ran.code == 2
    assert ran.err == (
        "error: name the threads to export (as `python -m bot sessions` lists them), "
        "or give --all\n"
    )
    ran = await run_bot("export", "console:nope", memory=memory)
    assert ran.code == 1  # as `history` of an unknown thread: nothing to use, not a bad setting
    assert ran.err == "error: No memory stored for 'console:nope': see `python -m bot sessions`.\n"
    output = tmp_path / "out" / "a.jsonl"
    ran = await run_bot("export", "console:a", "--output", str(output), memory=memory)
    assert ran.code == 2
    assert ran.err.startswith(f"error: cannot write {output}: ")
    output.parent.mkdir()
    ran = await run_bot("export", "console:a", "--output", str(output), memory=memory)
    assert ran.code == 0, ran.err
    assert [json.loads(line)["type"] for line in output.read_text().splitlines()] == [
        "thread",
        "message",
    ]
    assert list(output.parent.iterdir()) == [output]  # no partial file left beside it


async def test_export_all_then_import_keeps_the_usage_of_forgotten_threads(tmp_path: Path) -> None:
    source, copy = tmp_path / "source.sqlite3", tmp_path / "copy.sqlite3"
    async with await SQLiteStore.open(source) as store:
        for thread in ("console:kept", "console:forgotten"):
            await store.append(
                thread,
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                author=Author("U1", "Ann"),
                usage=Usage("m", 100, 10, 5, 300),
            )
        await store.clear("console:forgotten")  # /forget: its cost stays in the ledger
    exported = tmp_path / "memory.jsonl"
    ran = await run_bot("export", "--all", "--output", str(exported), memory=source)
    assert ran.code == 0, ran.err
    ran = await run_bot("import", str(exported), memory=copy)
    assert ran.code == 0, ran.err
    before = await run_bot("usage", "--format", "csv", memory=source)
    after = await run_bot("usage", "--format", "csv", memory=copy)
    assert "console:forgotten,1,100," in before.out
    assert after.out == before.out
    async with await SQLiteStore.open(copy, read_only=True) as store:
        assert [s.session_id for s in await store.list_sessions()] == ["console:kept"]
    ran = await run_bot("export", "--all", "--format", "markdown", memory=source)
    assert "console:forgotten" not in ran.out  # no transcript: nothing of it is left to read
