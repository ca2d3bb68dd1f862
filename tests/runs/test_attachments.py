"""Files in: what reaches the model for each kind of attachment, and what memory keeps.

Real core, `Runner` and `openai` client against the fake model (both APIs), real SQLite; the
attachments' `fetch` stands in for a platform download (the adapters' own tests download from
their fake platforms).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.messages import Attachment, IncomingMessage, Reply, ReplyKind, Surface
from bot.runs.attachments import AttachmentReader, AttachmentSettings
from tests.fakes.openai_server import FakeOpenAI, Fault, content_parts, image_urls, message_text
from tests.support.parts import BotParts, make_config
from tests.support.postgres import fresh_schema

CHAT = Surface(max_chars=2000)
THREAD = "console:files"
# The smallest valid PNG: 1x1, one transparent pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


class Served:
    """A file as a platform serves it, counting downloads."""

    def __init__(self, data: bytes, *, fail: bool = False) -> None:
        self.data = data
        self.fail = fail
        self.downloads = 0

    async def fetch(self, limit: int) -> bytes:
        self.downloads += 1
        if self.fail:
            raise OSError("HTTP 404 (the link expired)")
        if len(self.data) > limit:
            raise ValueError("larger than the limit")
        return self.data


def attach(name: str, content_type: str, served: Served, size: int | None = None) -> Attachment:
    return Attachment(name, content_type, len(served.data) if size is None else size, served.fetch)


async def send(parts: BotParts, text: str, *files: Attachment, thread: str = THREAD) -> Reply:
    message = IncomingMessage("console", thread, "id-Ann", "Ann", text, attachments=files)
    return await parts.core.handle(message, CHAT)


@pytest.fixture(params=["chat_completions", "responses"])
async def bot(request: Any, fake_openai: FakeOpenAI, tmp_path: Path) -> Any:
    config = make_config(fake_openai, tmp_path / "m.sqlite3", model_api=request.param)
    parts = await BotParts(config).start()
    yield parts
    await parts.close()


async def test_an_image_reaches_the_model_as_image_input_and_is_not_kept(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    photo = Served(PNG)
    reply = await send(bot, "what is in this picture?", attach("cat.png", "image/png", photo))
    assert reply.kind is ReplyKind.ANSWER
    last = fake_openai.requests[-1].messages[-1]
    assert image_urls(last) == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    assert "what is in this picture?" in message_text(last)
    stored = json.dumps([s.item for s in await bot.store.history(THREAD, limit=10)])
    assert base64.b64encode(PNG).decode() not in stored
    assert "[image: cat.png, 68 bytes]" in stored
    # The next turn sees the placeholder, not the picture.
    await send(bot, "and now?")
    assert not any(image_urls(m) for m in fake_openai.requests[-1].messages)


async def test_a_text_file_is_inlined_with_its_name_and_kept(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    notes = Served("line one\r\nline two: ünïcode ✓\n".encode())
    config = Served(b'{"retries": 3}')
    reply = await send(
        bot,
        "",  # a file with no words is still a message
        attach("notes.txt", "text/plain; charset=utf-8", notes),
        attach("settings.json", "", config),
    )
    assert reply.kind is ReplyKind.ANSWER
    text = message_text(fake_openai.requests[-1].messages[-1])
    assert "--- notes.txt ---\nline one\nline two: ünïcode ✓\n" in text
    assert '--- settings.json ---\n{"retries": 3}' in text
    stored = await bot.store.history(THREAD, limit=10)
    assert "line two: ünïcode ✓" in json.dumps(stored[0].item, ensure_ascii=False)


async def test_unreadable_files_get_a_one_line_note(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    archive = Served(b"PK\x03\x04 zipped")
    huge = Served(b"x" * 10)
    gone = Served(b"hello", fail=True)
    binary = Served(b"\x00\x01\x02 not text")
    await send(
        bot,
        "see attached",
        attach("logs.zip", "application/zip", archive),
        attach("big.txt", "text/plain", huge, size=50_000_000),
        attach("old.txt", "text/plain", gone),
        attach("data.txt", "text/plain", binary),
    )
    text = message_text(fake_openai.requests[-1].messages[-1])
    assert "[logs.zip was attached; I can't read that type of file.]" in text
    assert "[big.txt was attached but is too large for me to read (50.0 MB" in text
    assert "[old.txt was attached but I couldn't download it.]" in text
    assert "[data.txt was attached; I can't read that type of file.]" in text
    # Nothing is downloaded that would not be read.
    assert (archive.downloads, huge.downloads) == (0, 0)


async def test_vision_off_sends_a_note_and_downloads_nothing(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    parts = await BotParts(make_config(fake_openai, tmp_path / "m.sqlite3", vision="off")).start()
    try:
        photo = Served(PNG)
        await send(parts, "look", attach("cat.png", "image/png", photo))
        last = fake_openai.requests[-1].messages[-1]
        assert image_urls(last) == []
        assert "[cat.png is an image; I can't see images here.]" in message_text(last)
        assert photo.downloads == 0
    finally:
        await parts.close()


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_vision_auto_learns_that_a_model_cannot_see(tmp_path: Path, api: str) -> None:
    async with FakeOpenAI(vision=False) as blind:
        config = make_config(blind, tmp_path / f"{api}.sqlite3", model_api=api)
        parts = await BotParts(config).start()
        try:
            photo = Served(PNG)
            reply = await send(parts, "what is this?", attach("cat.png", "image/png", photo))
            assert reply.kind is ReplyKind.ANSWER  # answered without the image
            refused, retried = blind.requests[-2:]
            assert image_urls(refused.messages[-1])
            assert not image_urls(retried.messages[-1])
            assert "cat.png" in message_text(retried.messages[-1])
            assert "can't see images" in message_text(retried.messages[-1])
            # Remembered: the next picture is not even downloaded.
            second = Served(PNG)
            await send(parts, "and this?", attach("dog.png", "image/png", second))
            assert second.downloads == 0
            assert not image_urls(blind.requests[-1].messages[-1])
            assert len(await parts.store.history(THREAD, limit=10)) == 4
        finally:
            await parts.close()


async def test_vision_on_reports_a_refusal_instead_of_hiding_it(tmp_path: Path) -> None:
    async with FakeOpenAI(vision=False) as blind:
        config = make_config(blind, tmp_path / "m.sqlite3", vision="on")
        parts = await BotParts(config).start()
        try:
            reply = await send(parts, "what is this?", attach("a.png", "image/png", Served(PNG)))
            assert reply.kind is ReplyKind.ERROR
            assert await parts.store.history(THREAD, limit=10) == []
        finally:
            await parts.close()


@pytest.mark.parametrize(
    ("name", "content_type", "kind"),
    [
        ("a.png", "image/png", "image"),
        ("a.JPG", "", "image"),
        ("a.webp", "image/webp", "image"),
        ("a.svg", "image/svg+xml", "text"),
        ("a.heic", "image/heic", "other"),
        ("main.py", "application/octet-stream", "text"),
        ("a.yaml", "application/x-yaml", "text"),
        ("a.geojson", "application/geo+json", "text"),
        ("report.pdf", "application/pdf", "other"),
        ("README", "text/markdown", "text"),
        ("blob", "", "other"),
    ],
)
def test_kinds_of_file(name: str, content_type: str, kind: str) -> None:
    from bot.runs.attachments import _kind

    assert _kind(Attachment(name, content_type, 1, Served(b"").fetch)) == kind


async def test_the_reader_caps_downloads_at_the_limit() -> None:
    reader = AttachmentReader(AttachmentSettings(vision="on", max_bytes=5))
    unknown_size = Served(b"0123456789")
    file = Attachment("a.txt", "text/plain", None, unknown_size.fetch)
    read = await reader.read([file], model="m")
    assert "couldn't download" in read.text  # the fetch refused more than 5 bytes
    parts = content_parts({"content": "x"})
    assert parts == [{"type": "text", "text": "x"}]


async def test_an_image_turn_stays_out_of_the_threads_token_density(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    await send(bot, "plain words first")
    await send(bot, "and a picture", attach("cat.png", "image/png", Served(PNG)))
    plain, pictured = [m.usage for m in (await bot.store.dump_thread(THREAD)).messages if m.usage]
    assert plain is not None
    assert pictured is not None
    # Its characters (as stored, without the picture) would not explain its tokens: recorded
    # for cost, left out of the tokens-per-character figure that sizes later windows.
    assert plain.input_chars > 0
    assert pictured.input_tokens > 0
    assert pictured.input_chars == 0


# OpenAI's refusal of a picture it cannot decode (`invalid_image_format`): the picture's fault,
# not the model's.
UNREADABLE = (
    "You uploaded an unsupported image. Please make sure your image is below 20 MB in size and "
    "is of one the following formats: ['png', 'jpeg', 'gif', 'webp']."
)


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_a_picture_the_model_cannot_read_is_left_out_of_that_turn_only(
    fake_openai: FakeOpenAI, tmp_path: Path, api: str
) -> None:
    parts = await BotParts(make_config(fake_openai, tmp_path / "m.sqlite3", model_api=api)).start()
    try:
        fake_openai.fail_next(Fault(status=400, body=UNREADABLE, error_code="invalid_image_format"))
        broken = Served(b"\x89PNG truncated")
        reply = await send(parts, "what is this?", attach("broken.png", "image/png", broken))
        assert reply.kind is ReplyKind.ANSWER  # answered without the picture
        refused, retried = fake_openai.requests[-2:]
        assert image_urls(refused.messages[-1])
        assert not image_urls(retried.messages[-1])
        # One bad picture says nothing about the model: the next picture is sent as usual.
        photo = Served(PNG)
        reply = await send(parts, "and this one?", attach("cat.png", "image/png", photo))
        assert reply.kind is ReplyKind.ANSWER
        assert photo.downloads == 1
        assert image_urls(fake_openai.requests[-1].messages[-1])
        # The model was told the picture could not be read (so its answer says so), not that
        # it cannot see.
        told = message_text(retried.messages[-1])
        assert "broken.png" in told
        assert "could not be read" in told
        assert "can't see" not in told
    finally:
        await parts.close()


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (400, "facebook/opt-125m is not a multimodal model None"),  # vLLM
        (500, "image input is not supported - hint: provide the mmproj"),  # llama.cpp
    ],
)
async def test_other_servers_saying_the_model_cannot_see_are_understood(
    fake_openai: FakeOpenAI, tmp_path: Path, status: int, said: str
) -> None:
    parts = await BotParts(make_config(fake_openai, tmp_path / "m.sqlite3")).start()
    try:
        fake_openai.fail_next(Fault(status=status, body=said, error_type="invalid_request_error"))
        reply = await send(parts, "what is this?", attach("cat.png", "image/png", Served(PNG)))
        assert reply.kind is ReplyKind.ANSWER
        assert "can't see images" in message_text(fake_openai.requests[-1].messages[-1])
        photo = Served(PNG)
        await send(parts, "and this?", attach("dog.png", "image/png", photo))
        assert photo.downloads == 0
    finally:
        await parts.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def shared_memory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """Where two bots (two workers) keep one memory: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield {"db_path": tmp_path / "shared.sqlite3"}
    else:
        async with fresh_schema() as schema:
            yield {"database_url": schema.url}


async def test_every_worker_learns_that_a_model_cannot_see(shared_memory: dict[str, Any]) -> None:
    async with FakeOpenAI(vision=False) as blind:
        one = await BotParts(make_config(blind, **shared_memory)).start()
        two = await BotParts(make_config(blind, **shared_memory)).start()
        try:
            reply = await send(one, "what is this?", attach("cat.png", "image/png", Served(PNG)))
            assert reply.kind is ReplyKind.ANSWER
            assert "can't see images" in message_text(blind.requests[-1].messages[-1])
            asked = len(blind.requests)
            # The other worker agrees at once: its picture is not even downloaded.
            photo = Served(PNG)
            reply = await send(
                two, "and this?", attach("dog.png", "image/png", photo), thread="console:two"
            )
            assert reply.kind is ReplyKind.ANSWER
            assert photo.downloads == 0
            assert len(blind.requests) == asked + 1  # one request, with no image in it
            last = blind.requests[-1].messages[-1]
            assert not image_urls(last)
            assert "[dog.png is an image; I can't see images here.]" in message_text(last)
        finally:
            await two.close()
            await one.close()


async def test_what_was_learnt_is_retried_after_a_day_and_vision_on_overrides_it(
    tmp_path: Path,
) -> None:
    now = [datetime(2026, 3, 1, 12, tzinfo=UTC)]
    async with FakeOpenAI(vision=False) as blind:
        config = make_config(blind, tmp_path / "m.sqlite3")
        parts = await BotParts(config, clock=lambda: now[0]).start()
        forced = await BotParts(make_config(blind, tmp_path / "m.sqlite3", vision="on")).start()
        try:
            await send(parts, "one", attach("a.png", "image/png", Served(PNG)))
            later = Served(PNG)
            await send(parts, "two", attach("b.png", "image/png", later))
            assert later.downloads == 0  # learnt
            # An operator's BOT_VISION=on sends images whatever was learnt.
            on = Served(PNG)
            await send(forced, "three", attach("c.png", "image/png", on), thread="console:on")
            assert on.downloads == 1
            assert image_urls(blind.requests[-1].messages[-1])
            # A day on, the model is given another chance (its server may have changed).
            now[0] += timedelta(days=1, minutes=1)
            again = Served(PNG)
            reply = await send(parts, "four", attach("d.png", "image/png", again))
            assert reply.kind is ReplyKind.ANSWER
            assert again.downloads == 1
            assert image_urls(blind.requests[-2].messages[-1])  # tried, refused, retried
        finally:
            await forced.close()
            await parts.close()
