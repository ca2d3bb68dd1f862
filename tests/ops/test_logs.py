"""`BOT_LOG_FORMAT=json`: one JSON object per line, secrets masked however JSON spells them, and
the thread and platform of the turn a line is about."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.messages import IncomingMessage, ReplyKind
from bot.ops.logs import REDACTED, JsonFormatter, RedactingFormatter, configure_logging, log_context
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.support.parts import BotParts, make_config
from tests.support.sinks import Recorder

API_KEY = "sk-test-not-a-real-key"
PASSWORD = 'pässwörd"with\\odd€chars'
"""A database password JSON spells differently: a quote, a backslash and non-ASCII."""
TOKEN = "fake-discord-token.abc/def"
NOISY = ("httpx", "httpx2", "openai", "aiosqlite", "websockets")


class Written(io.StringIO):
    """What the log handler wrote, read line by line."""

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


@pytest.fixture
def json_logs() -> Iterator[Written]:
    """JSON logging as `python -m bot` sets it up, its stderr handler writing here instead;
    undone afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in NOISY}
    configure_logging("INFO", [API_KEY, PASSWORD, TOKEN], fmt="json")
    written = Written()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(written)
    yield written
    handlers, level, noisy = saved
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


def test_each_record_is_one_json_object_with_time_level_logger_and_message(
    json_logs: Written,
) -> None:
    log = logging.getLogger("bot.somewhere")
    log.info("Serving %s", "discord")
    try:
        raise RuntimeError(f"connecting with {PASSWORD} failed\nsecond line")
    except RuntimeError:
        log.exception("It broke for %s", TOKEN)
    raw = json_logs.getvalue()
    assert raw.isascii()
    first, second = (json.loads(line) for line in raw.splitlines())
    assert first.keys() == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO"
    assert first["logger"] == "bot.somewhere"
    assert first["message"] == "Serving discord"
    when = datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert when.tzinfo == UTC
    assert abs((datetime.now(UTC) - when).total_seconds()) < 3600
    assert second["level"] == "ERROR"
    assert second["message"] == f"It broke for {REDACTED}"
    assert "Traceback (most recent call last)" in second["exception"]
    assert f"RuntimeError: connecting with {REDACTED} failed" in second["exception"]
    for secret in (API_KEY, PASSWORD, TOKEN):
        assert secret not in raw
        assert json.dumps(secret)[1:-1] not in raw


def test_log_context_names_the_thread_and_platform_until_the_block_ends(
    json_logs: Written,
) -> None:
    log = logging.getLogger("bot.core")
    with log_context(session_id="slack:T1:C1:123.456", platform="slack"):
        log.warning("inside")
    log.warning("outside")
    inside, outside = json_logs.lines()
    assert inside["session_id"] == "slack:T1:C1:123.456"
    assert inside["platform"] == "slack"
    assert "session_id" not in outside
    assert "platform" not in outside


async def test_a_failed_turn_logs_its_thread_and_platform_and_never_the_key(
    json_logs: Written, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = make_config(fake_openai, tmp_path / "memory.sqlite3", openai_api_key=API_KEY)
    parts = await BotParts(config).start()
    try:
        # As OpenAI answers a wrong key: it quotes it back.
        fake_openai.fail_next(Fault(status=401, body=f"Incorrect API key provided: {API_KEY}"))
        message = IncomingMessage("discord", "discord:1:2", "101", "Ann", "hello")
        reply = await parts.core.handle(message, sink=Recorder())
        assert reply.kind is ReplyKind.ERROR
    finally:
        await parts.close()
    failed = [line for line in json_logs.lines() if line["message"].startswith("Turn failed")]
    assert len(failed) == 1
    assert failed[0]["session_id"] == "discord:1:2"
    assert failed[0]["platform"] == "discord"
    assert f"Incorrect API key provided: {REDACTED}" in failed[0]["message"]
    assert API_KEY not in json.dumps(failed)


SECRET_CHARS = st.characters(
    # Letters and digits as tokens have, and what JSON escapes: quotes, backslashes, control
    # characters, non-ASCII and lone surrogates. Not "[" or "]", which a redaction could
    # complete into a secret made of them.
    blacklist_characters="[]",
)


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(SECRET_CHARS, min_size=6, max_size=24),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
    in_exception=st.booleans(),
)
def test_no_secret_survives_json_encoding_in_any_spelling(
    secret: str, before: str, after: str, in_exception: bool
) -> None:
    # A "secret" inside the marker itself ("redact") is found in every masked line; no real
    # token is a piece of "[redacted]".
    assume(secret not in REDACTED)
    formatter = JsonFormatter([secret])
    text = f"{before}{secret}{after}"
    record = logging.LogRecord("bot.x", logging.WARNING, __file__, 1, "%s", (text,), None)
    if in_exception:
        try:
            raise ValueError(text)
        except ValueError:
            record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert secret not in entry["message"]
    assert secret not in entry.get("exception", "")
    assert secret not in line
    assert json.dumps(secret)[1:-1] not in line
    # The text formatter masks the same values.
    assert secret not in RedactingFormatter([secret]).format(record)
