"""Whether the file a store opened is still one the next start could open (for `/readyz`).

A running store reads and writes through connections it opened at start-up, and an open file
stays usable to them whatever happens to its path: made unreadable, removed, replaced by a
copy or by a directory. Asking those connections would report ready while the next start
fails, or while every turn goes into a file nobody will open again.

So readiness looks at the path as an `open()` would, off the event loop: it must still be
the same regular file (device and inode), readable and writable by this process. Not a
fresh SQLite connection: SQLite hands a new connection to a file this process already has
open a descriptor it kept from an earlier one, without opening the path again, so it would
not notice a permission taken away. `os.access` does, and says yes where a start would
succeed anyway (root reads a file of mode 000). Readiness is polled every few seconds, never
asked per message; this costs a `stat`, an `access` and a hop to a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import stat

from ..failures import StoreUnavailableError

FileIdentity = tuple[int, int]
"""A file's device and inode: kept while it is renamed within its file system, never shared
by another file that exists at the same time."""


async def identity_of(path: str) -> FileIdentity:
    """The identity of the file now at `path`."""
    found = await asyncio.to_thread(os.stat, path)
    return found.st_dev, found.st_ino


async def check_reopenable(path: str, opened: FileIdentity) -> None:
    """Raise `StoreUnavailableError` unless `path` is still the file `opened`, and this
    process may read and write it."""
    problem = await asyncio.to_thread(_problem, path, opened)
    if problem is not None:
        raise StoreUnavailableError(f"{path} {problem}")


def _problem(path: str, opened: FileIdentity) -> str | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        return f"cannot be opened again ({exc.strerror}): the next start would fail"
    if found is None or not stat.S_ISREG(found.st_mode) or (found.st_dev, found.st_ino) != opened:
        return (
            "is no longer the file this process opened (removed, moved or replaced): "
            "what it stores now would be lost at the next start"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        return (
            "cannot be opened again (no permission to read and write it): the next start would fail"
        )
    return None
