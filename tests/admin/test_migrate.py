"""`python -m bot migrate`: a populated SQLite file moved to PostgreSQL, identical, once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.storage import Author, PostgresStore, SQLiteStore, Usage, redact
from tests.support.cli import run_bot
from tests.support.items import msg, tool_call, tool_output
from tests.support.postgres import PostgresSchema
from tests.support.stores import summary_of

ROOT = Path(__file__).resolve().parents[2]


async def _migrate(source: str, target: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--env-file",
        os.devnull,
        "migrate",
        "--from",
        source,
        "--to",
        target,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def _populate(path: Path) -> list[str]:
    threads = [f"slack:T1:C{n}:17000{n}.0001" for n in range(5)] + ["discord:1:2", "🧵 ünïcode"]
    async with await SQLiteStore.open(path) as store:
        for n, thread in enumerate(threads):
            for turn in range(n + 1):
                await store.append(
                    thread,
                    [
                        msg("user", f"[Ann] turn {turn} — 你好 '); DROP TABLE x; --"),
                        tool_call(f"c{turn}"),
                        tool_output(f"c{turn}"),
                        msg("assistant", f'answer {turn} \\ " \x00'),
                    ],
                    author=Author(f"u{n}", "Ann"),
                    usage=Usage("m", 100 + turn, 10, 5, 300),
                )
            rows = await store.history(thread, limit=100)
            await store.save_summary(
                thread, f"summary of {thread}", covers_id=rows[1].id, replaces=None
            )
            await store.record_usage(thread, Usage("s", 7, 0, 3, 20), kind="summary")
        await store.undo_last_exchange(threads[-1])  # a deleted turn's cost in the ledger
    return threads


async def test_migrating_a_populated_file_is_identical_and_idempotent(
    tmp_path: Path, postgres: PostgresSchema
) -> None:
    path = tmp_path / "memory.sqlite3"
    threads = await _populate(path)
    code, out = await _migrate(f"sqlite:///{path}", postgres.url)
    assert code == 0, out
    assert "Copied 7 thread(s)" in out
    code, again = await _migrate(f"sqlite:///{path}", postgres.url)
    assert code == 0, again
    assert "Copied 0 thread(s)" in again
    assert "Already there, identical: 7 thread(s)" in again
    async with (
        await SQLiteStore.open(path, read_only=True) as source,
        await PostgresStore.open(postgres.url) as target,
    ):
        assert {s.session_id for s in await target.list_sessions()} == set(threads)
        for thread in threads:
            before, after = await source.dump_thread(thread), await target.dump_thread(thread)
            assert after.same_memory(before), thread
            assert len(after.messages) == len(before.messages)
            assert await target.read_items(thread) == await source.read_items(thread)
            assert await summary_of(target, thread) is not None


async def test_the_usage_of_a_forgotten_thread_moves_too(
    tmp_path: Path, postgres: PostgresSchema
) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        for thread in ("discord:1:kept", "discord:1:forgotten"):
            await store.append(
                thread,
                [msg("user", "[Ann] q"), msg("assistant", "a")],
                author=Author("u1", "Ann"),
                usage=Usage("m", 100, 10, 5, 300),
            )
            await store.record_usage(thread, Usage("s", 7, 0, 3, 20), kind="summary")
        await store.clear("discord:1:forgotten")  # /forget: its cost stays in the ledger
    reports = [("usage", "--by", by, "--format", "csv") for by in ("thread", "user", "day")]
    before = [await run_bot(*report, memory=path) for report in reports]
    assert "discord:1:forgotten,2,107," in before[0].out

    code, out = await _migrate(f"sqlite:///{path}", postgres.url)
    assert code == 0, out
    after = [await run_bot(*report, memory=postgres.url) for report in reports]
    assert [ran.out for ran in after] == [ran.out for ran in before]
    assert (
        "Copied 1 thread(s) and the usage records of 1 forgotten one(s): 2 message(s), "
        "0 summary(ies), 3 usage record(s)." in out
    )
    async with await PostgresStore.open(postgres.url) as target:
        # Forgotten there, forgotten here: it holds no memory to list.
        assert [s.session_id for s in await target.list_sessions()] == ["discord:1:kept"]
    code, again = await _migrate(f"sqlite:///{path}", postgres.url)
    assert code == 0, again
    assert "Copied 0 thread(s)" in again
    assert "Already there, identical: 2 thread(s)." in again


async def test_a_thread_that_moved_on_in_the_target_is_left_alone(
    tmp_path: Path, postgres: PostgresSchema
) -> None:
    path = tmp_path / "memory.sqlite3"
    async with await SQLiteStore.open(path) as store:
        await store.append("t", [msg("user", "old")])
    async with await PostgresStore.open(postgres.url) as target:
        await target.append("t", [msg("user", "new in postgres")])
    code, out = await _migrate(f"sqlite:///{path}", postgres.url)
    assert code == 0, out
    assert "different in the target: 1 thread(s): t" in out
    async with await PostgresStore.open(postgres.url) as target:
        assert await target.read_items("t") == [msg("user", "new in postgres")]


async def test_a_missing_source_file_is_one_clear_line(tmp_path: Path) -> None:
    code, out = await _migrate(f"sqlite:///{tmp_path}/nope.sqlite3", "sqlite:///x.sqlite3")
    assert code == 2
    assert "No memory file at" in out
    assert "Traceback" not in out


def test_urls_are_shown_without_their_password() -> None:
    shown = redact("postgresql://bot:s3cret@db.example.com:5433/memory?sslmode=require")
    assert shown == "postgresql://bot:***@db.example.com:5433/memory?sslmode=require"
    assert redact("sqlite:///memory.sqlite3") == "sqlite:///memory.sqlite3"


async def test_relative_sqlite_paths_are_the_current_folders_and_shown_whole(
    tmp_path: Path,
) -> None:
    source = tmp_path / "old.sqlite3"
    await _populate(source)
    (tmp_path / "new").mkdir()
    target = "sqlite:///new/memory.sqlite3"  # three slashes: relative, wherever it is run
    ran = await run_bot(
        "migrate", "--from", "old.sqlite3", "--to", target, memory=source, cwd=tmp_path
    )
    assert ran.code == 0, ran.err
    copied = tmp_path / "new" / "memory.sqlite3"
    assert ran.out.splitlines()[0] == f"Copying memory from {source} to {copied} ..."
    assert copied.is_file()
