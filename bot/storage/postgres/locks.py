"""Threads' advisory-lock keys: one per thread."""

from __future__ import annotations

import hashlib


def lock_key(session_id: str) -> int:
    """A thread's advisory-lock key: 64 bits of a stable hash (a collision only serialises
    two threads' turns, never mixes their memory)."""
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
