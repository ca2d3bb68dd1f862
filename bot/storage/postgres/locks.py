"""Threads' advisory locks: one key per thread, and giving a lock back for certain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import asyncpg

from .schema import Connection


def lock_key(session_id: str) -> int:
    """A thread's advisory-lock key: 64 bits of a stable hash (a collision only serialises
    two threads' turns, never mixes their memory)."""
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def unlock(conn: Connection, key: int) -> None:
    """Give a thread's lock back; a connection that cannot is ended, which frees it too."""
    try:
        await conn.execute(f"SELECT pg_advisory_unlock({key})")
    except asyncio.CancelledError:
        _end(conn)
        raise
    except Exception:
        _end(conn)


def _end(conn: Connection) -> None:
    # A connection the server already closed was handed back to the pool by asyncpg itself.
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()
