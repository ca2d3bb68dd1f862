"""Admin commands: list threads, print one thread's history (both read-only), copy memory
from one database to another, export and import threads, and forget a person.

Each is a plain function that runs its own short event loop, so the CLI stays simple.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from ..config import Config, ConfigError
from ..memory.transcript import render_history
from ..storage import (
    IN_MEMORY,
    SQLiteStore,
    Store,
    is_postgres_url,
    open_store,
    redact,
    sqlite_path,
)
from . import erase, portable
from .transfer import copy_memory


def list_sessions(config: Config, out: TextIO) -> None:
    """Write one line per stored thread, most recently active first."""

    async def load() -> list[tuple[str, int, str]]:
        store = await open_configured(config)
        try:
            sessions = await store.list_sessions()
        finally:
            await store.close()
        return [
            (s.session_id, s.items, s.updated_at.strftime("%Y-%m-%d %H:%M:%S")) for s in sessions
        ]

    rows = asyncio.run(load())
    if not rows:
        out.write("No conversations stored yet.\n")
        return
    width = max(len(session_id) for session_id, _, _ in rows)
    out.write(f"{'SESSION':<{width}}  {'ITEMS':>6}  LAST ACTIVE (UTC)\n")
    for session_id, items, when in rows:
        out.write(f"{session_id:<{width}}  {items:>6}  {when}\n")


def print_history(config: Config, session_id: str, limit: int, out: TextIO) -> None:
    """Write a thread's newest `limit` items as a readable transcript."""

    async def load() -> str | None:
        store = await open_configured(config)
        try:
            total = await store.count_items(session_id)
            entries = await store.history(session_id, limit=limit)
        finally:
            await store.close()
        if total == 0:
            return None
        shown = f"the newest {len(entries)} of {total}" if total > len(entries) else f"all {total}"
        return render_history(
            entries,
            bot_name=config.name,
            header=f"{session_id} ({shown} items, newest last):",
            footer="",
            max_chars=None,
        )

    text = asyncio.run(load())
    out.write(f"No memory stored for {session_id!r}.\n" if text is None else text + "\n")


def _existing_file(config: Config) -> str:
    if config.db_path == IN_MEMORY:
        raise ConfigError("BOT_DB_PATH is :memory:, so there is no stored memory to look at.")
    if not Path(config.db_path).is_file():
        raise ConfigError(f"No memory file at {config.db_path}: check BOT_DB_PATH.")
    return config.db_path


def migrate(source: str, target: str, out: TextIO) -> None:
    """Copy every thread from the `source` database to the `target` one, and say what moved."""
    if not is_postgres_url(source):
        path = sqlite_path(source)
        if path == IN_MEMORY or not Path(path).is_file():
            raise ConfigError(f"No memory file at {path}: check --from.")

    async def run() -> list[str]:
        origin = await _open_for_reading(source)
        try:
            destination = await open_store(target)
            try:
                report = await copy_memory(origin, destination)
            finally:
                await destination.close()
        finally:
            await origin.close()
        return report.lines()

    out.write(f"Copying memory from {redact(source)} to {redact(target)} ...\n")
    for line in asyncio.run(run()):
        out.write(line + "\n")


async def _open_for_reading(location: str) -> Store:
    """A store to read from: a SQLite file opened read-only (never created), or PostgreSQL."""
    if is_postgres_url(location):
        return await open_store(location, pool_size=2)
    return await SQLiteStore.open(sqlite_path(location), read_only=True)


async def open_configured(config: Config) -> Store:
    """The configured memory, to read from: PostgreSQL, or the SQLite file opened read-only
    (a missing file is a configuration error, never created)."""
    return await _open_for_reading(config.database_url or _existing_file(config))


def export_threads(
    config: Config,
    sessions: Sequence[str],
    *,
    everything: bool,
    fmt: str,
    output: str | None,
    out: TextIO,
) -> None:
    """Write threads as JSON Lines (`fmt="jsonl"`) or Markdown to `output`, or to `out`.

    A file is written under a temporary name and renamed when complete, so an interrupted
    export never leaves a truncated file that looks whole.
    """
    if bool(sessions) == everything:
        raise ConfigError(
            "name the threads to export (as `python -m bot sessions` lists them), or give "
            "--all" + (", not both" if everything else "")
        )

    async def run() -> int:
        store = await open_configured(config)
        try:
            stored = [info.session_id for info in await store.list_sessions()]
            if not everything:
                missing = [session_id for session_id in sessions if session_id not in stored]
                if missing:
                    raise ConfigError(
                        f"No memory stored for {missing[0]!r}: see `python -m bot sessions`."
                    )
                stored = list(dict.fromkeys(sessions))
            async with _writer(output, out) as write:
                for index, session_id in enumerate(stored):
                    dump = await store.dump_thread(session_id)
                    if fmt == "jsonl":
                        await write(portable.jsonl(dump))
                    else:
                        text = portable.markdown(dump, bot_name=config.name)
                        await write(b"\n" + text if index else text)
            return len(stored)
        finally:
            await store.close()

    count = asyncio.run(run())
    if output is not None:
        out.write(f"Exported {count} thread(s) to {output}.\n")


@contextlib.asynccontextmanager
async def _writer(
    output: str | None, out: TextIO
) -> AsyncIterator[Callable[[bytes], Awaitable[object]]]:
    """An async `write(bytes)` to the file `output` (renamed into place at the end), or to
    `out`'s bytes when there is none."""
    if output is None:
        out.flush()
        stream = out.buffer
        yield lambda data: asyncio.to_thread(stream.write, data)
        await asyncio.to_thread(stream.flush)
        return
    target = Path(output)
    partial = target.with_name(f"{target.name}.partial")
    try:
        file: BinaryIO = await asyncio.to_thread(partial.open, "wb")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    try:
        yield lambda data: asyncio.to_thread(file.write, data)
    except BaseException:
        await asyncio.to_thread(file.close)
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise
    await asyncio.to_thread(file.close)
    await asyncio.to_thread(os.replace, partial, target)


def import_threads(config: Config, source: str, out: TextIO) -> None:
    """Read a JSON Lines export (`source` a file, or `-` for stdin) into the configured memory.

    Each thread is stored whole in one transaction, or not at all; threads already there are
    left alone, so importing a file twice stores it once.

    Raises:
        portable.FormatError: At the first bad line; the threads before it were imported
            (and say so on `out`), nothing of the thread it belongs to was.
    """
    if config.database_url is None and config.db_path == IN_MEMORY:
        raise ConfigError("BOT_DB_PATH is :memory:, so there is nowhere to import into.")

    async def run(lines: BinaryIO) -> None:
        store = await open_store(config.memory_location, pool_size=2)
        report = portable.ImportReport()
        try:
            threads = portable.read_threads(lines)
            # Reading and parsing a thread's lines runs off the event loop, one hop each.
            while (dump := await asyncio.to_thread(next, threads, None)) is not None:
                placed = await portable.place(store, dump)
                out.write(report.add(dump, placed) + "\n")
        finally:
            out.write(report.total() + "\n")
            await store.close()

    with _lines(source) as lines:
        asyncio.run(run(lines))


@contextlib.contextmanager
def _lines(source: str) -> Iterator[BinaryIO]:
    if source == "-":
        yield sys.stdin.buffer
        return
    try:
        file = Path(source).open("rb")  # noqa: SIM115 (closed below, after the last line)
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from None
    with file:
        yield file


def forget_user(
    config: Config,
    platform: str,
    user_id: str,
    *,
    dry_run: bool,
    out: TextIO,
    known_platforms: Sequence[str] = (),
) -> None:
    """Delete one person's messages and the turns that answered them, and report the counts."""
    if not platform or ":" in platform:
        raise ConfigError(f"{platform!r} is not a platform name (e.g. discord, slack, console)")
    if not user_id.strip():
        raise ConfigError("USER_ID is empty")

    async def run() -> list[str]:
        store = await (
            open_configured(config)
            if dry_run
            else open_store(config.database_url or _existing_file(config), pool_size=2)
        )
        try:
            report = await erase.forget_user(store, platform, user_id, dry_run=dry_run)
        finally:
            await store.close()
        lines = erase.report_lines(report, dry_run=dry_run)
        if not report.sessions and known_platforms and platform not in known_platforms:
            lines.append(
                f"(platforms are named as session IDs begin: {', '.join(known_platforms)})"
            )
        return lines

    for line in asyncio.run(run()):
        out.write(line + "\n")
