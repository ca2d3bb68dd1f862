"""`python -m bot ...` in a child process, with its memory settings in the environment."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def memory_env(location: str | Path) -> dict[str, str]:
    """The environment for a child bot whose memory is `location` (a file or a PostgreSQL URL),
    and no other setting of this process's (no platform tokens, no model key)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "DISCORD_", "SLACK_", "OPENAI_"))
    }
    if str(location).startswith("postgresql"):
        env["BOT_DATABASE_URL"] = str(location)
    else:
        env["BOT_DB_PATH"] = str(location)
    return env


async def run_bot(
    *args: str,
    memory: str | Path,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    python: Sequence[str] = (),
) -> Ran:
    """Run `python [PYTHON] -m bot ARGS` (no .env file) in `cwd`, with `env` added to its
    environment, and collect its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *python,
        "-m",
        "bot",
        "--env-file",
        os.devnull,
        *args,
        cwd=cwd,
        env={**memory_env(memory), **(env or {})},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin)
    return Ran(process.returncode or 0, out.decode(), err.decode())
