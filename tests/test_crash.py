"""kill -9 while 200 conversations write: nothing delivered is lost, nothing is half-stored."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI

CONVERSATIONS = 200
ROOT = Path(__file__).resolve().parent.parent


async def test_sigkill_mid_write_loses_no_delivered_turn(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite3"
    async with FakeOpenAI(latency=0.005) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.crash_driver",
            str(db),
            fake.base_url,
            str(CONVERSATIONS),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None
        delivered: list[tuple[str, int]] = []
        async with asyncio.timeout(90):
            while len(delivered) < 3 * CONVERSATIONS:
                line = (await process.stdout.readline()).decode()
                assert line, "the bot process ended early"
                _, session, number = line.split()
                delivered.append((session, int(number)))
        process.send_signal(signal.SIGKILL)
        rest = (await process.stdout.read()).decode()
        await process.wait()
    for line in rest.splitlines():  # printed before the kill, so they reached "the platform"
        if line.count(" ") == 2:
            _, session, number = line.split()
            delivered.append((session, int(number)))
    assert process.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute(
            "SELECT session_id, message_data FROM agent_messages ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    threads: dict[str, list[dict[str, object]]] = defaultdict(list)
    for session, data in rows:
        threads[session].append(json.loads(data))
    for thread, items in threads.items():
        roles = [item.get("role") for item in items]
        # Whole turns only, in order: user, assistant, user, assistant...
        assert roles == ["user", "assistant"] * (len(items) // 2), thread
        said = [item["content"] for item in items[::2]]
        assert said == [f"[Ann] message {n}" for n in range(len(said))], thread
    for session, turn in delivered:
        assert len(threads[session]) >= 2 * (turn + 1), f"{session} lost turn {turn}"
