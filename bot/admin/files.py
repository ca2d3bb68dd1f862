"""`python -m bot export` and `python -m bot import`: threads to files and back (the format
itself is `portable`'s)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from ..config import ConfigError
from ..storage import IN_MEMORY, open_store
from . import portable
from .command import AdminCommand, AdminContext, NotFoundError
from .stores import open_configured


def export_threads(ctx: AdminContext) -> None:
    """Write the named threads (or every one, with `--all`) as JSON Lines or Markdown to
    `--output`, or to stdout.

    `--all` as JSON Lines carries forgotten threads' usage records too, so usage adds up the
    same after an import; Markdown has no transcript of them to give.

    A file is written under a temporary name and renamed when complete, so an interrupted
    export never leaves a truncated file that looks whole.
    """
    args, config = ctx.args, ctx.config
    sessions, everything, output = args.sessions, args.everything, args.output
    if bool(sessions) == everything:
        raise ConfigError(
            "name the threads to export (as `python -m bot sessions` lists them), or give "
            "--all" + (", not both" if everything else "")
        )

    async def run() -> int:
        store = await open_configured(config)
        try:
            if everything:
                stored = await store.all_session_ids()
            else:
                listed = {info.session_id for info in await store.list_sessions()}
                missing = [session_id for session_id in sessions if session_id not in listed]
                if missing:
                    raise NotFoundError(
                        f"No memory stored for {missing[0]!r}: see `python -m bot sessions`."
                    )
                stored = list(dict.fromkeys(sessions))
            written = 0
            async with _writer(output, ctx.out) as write:
                for session_id in stored:
                    dump = await store.dump_thread(session_id)
                    if args.format == "jsonl":
                        await write(portable.jsonl(dump))
                    elif not dump.forgotten:
                        text = portable.markdown(dump, bot_name=config.name)
                        await write(b"\n" + text if written else text)
                    else:
                        continue
                    written += 1
            return written
        finally:
            await store.close()

    count = asyncio.run(run())
    if output is not None:
        ctx.out.write(f"Exported {count} thread(s) to {output}.\n")


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


def import_threads(ctx: AdminContext) -> None:
    """Read a JSON Lines export (a file, or `-` for stdin) into the configured memory.

    Each thread is stored whole in one transaction, or not at all; threads already there are
    left alone, so importing a file twice stores it once.

    Raises:
        portable.FormatError: At the first bad line; the threads before it were imported
            (and say so on `out`), nothing of the thread it belongs to was.
    """
    config, out = ctx.config, ctx.out
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

    with _lines(ctx.args.file) as lines:
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


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sessions", nargs="*", metavar="SESSION", help="as `sessions` lists them")
    parser.add_argument("--all", dest="everything", action="store_true", help="every thread")
    parser.add_argument("--format", choices=("jsonl", "markdown"), default="jsonl")
    parser.add_argument("--output", metavar="FILE", help="write here instead of to stdout")


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="an export's JSON Lines, or - for stdin")


EXPORT = AdminCommand(
    "export",
    "write threads' whole memory as JSON Lines (for import) or Markdown (read-only)",
    export_threads,
    arguments=_export_arguments,
    description=(
        "Write each named thread (or every one, with --all): its items, authors, times, "
        "usage and summaries as JSON Lines that `import` reads back exactly, or as a "
        "readable Markdown transcript."
    ),
)
IMPORT = AdminCommand(
    "import",
    "read threads from a JSON Lines export (safe to repeat)",
    import_threads,
    arguments=_import_arguments,
    description=(
        "Store every thread of an export, each in one transaction. A thread the memory "
        "already holds is left alone (and reported as identical or different), so "
        "importing a file twice stores it once."
    ),
)
