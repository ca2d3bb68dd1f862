"""Files attached on Discord reach the model: real discord.py, the fake's CDN, the real core.

Discord's attachment URLs are signed and expire, so the bot downloads the bytes (from the fake
CDN on loopback here) and the model gets an image part with a data URL, or the text inlined.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.downloads import DownloadError, download
from tests.fakes.discord_server import FakeDiscord, Json
from tests.fakes.openai_server import FakeOpenAI
from tests.support.discord import CHANNEL, DM, Harness, discord_config


def tiny_png() -> bytes:
    """A valid 1x1 white PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = tiny_png()
NOTES = "line one\nline two: the code is ZX-4471\n"


@pytest.fixture
async def running(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> AsyncIterator[Harness]:
    config = discord_config(
        fake_openai, tmp_path / "memory.sqlite3", vision="on", max_attachment_bytes=2_000
    )
    harness = await Harness.start(fake_discord, config)
    yield harness
    await harness.stop()


def last_user_parts(fake_openai: FakeOpenAI) -> list[dict[str, Any]]:
    """The content parts of the newest user message the model received."""
    user = [m for m in fake_openai.requests[-1].messages if m.get("role") == "user"][-1]
    content = user["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def texts(parts: list[dict[str, Any]]) -> str:
    return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


def downloads(fake: FakeDiscord) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in fake.requests if r.path.startswith("/attachments/")]


async def test_an_image_and_a_text_file_reach_the_model_and_a_zip_gets_a_note(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    fake = running.fake
    files = [
        fake.attachment(CHANNEL, "photo.png", PNG, "image/png"),
        fake.attachment(CHANNEL, "notes.txt", NOTES.encode(), "text/plain; charset=utf-8"),
        fake.attachment(CHANNEL, "bundle.zip", b"PK\x03\x04" + b"\x00" * 64, "application/zip"),
    ]
    await running.say(CHANNEL, "what's in these?", mention=True, attachments=files)

    parts = last_user_parts(fake_openai)
    images = [p for p in parts if p.get("type") == "image_url"]
    assert len(images) == 1
    url = images[0]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    said = texts(parts)
    assert "what's in these?" in said
    assert "--- notes.txt ---\n" + NOTES in said
    assert "[bundle.zip was attached; I can't read that type of file.]" in said
    # The model never sees a platform URL, which would expire (and leak a signed link).
    assert str(fake.port) not in json.dumps(fake_openai.requests[-1].body)
    # The zip was never downloaded: the core decides by type before fetching.
    assert downloads(fake) == ["photo.png", "notes.txt"]
    assert running.last(CHANNEL).startswith("You said:")


async def test_a_message_with_only_a_file_is_a_turn(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    notes = running.fake.attachment(DM, "notes.txt", NOTES.encode(), "text/plain")
    await running.say(DM, "", guild=None, attachments=[notes])
    assert "--- notes.txt ---" in texts(last_user_parts(fake_openai))
    assert await running.parts.store.count_items(f"discord:dm:{DM}") == 2


async def test_an_expired_link_or_a_file_bigger_than_it_said_gets_a_note(
    running: Harness, fake_openai: FakeOpenAI
) -> None:
    fake = running.fake
    files = [
        fake.attachment(CHANNEL, "old.txt", b"gone", "text/plain", expired=True),
        # Reports 10 bytes but sends more than the 2,000-byte limit: the cap is on what arrives.
        fake.attachment(CHANNEL, "liar.txt", b"x" * 5_000, "text/plain", size=10),
        fake.attachment(CHANNEL, "big.txt", b"y" * 3_000, "text/plain"),
    ]
    await running.say(CHANNEL, "read these", mention=True, attachments=files)

    said = texts(last_user_parts(fake_openai))
    assert "[old.txt was attached but I couldn't download it.]" in said
    assert "[liar.txt was attached but I couldn't download it.]" in said
    assert "[big.txt was attached but is too large for me to read" in said
    assert "xxxx" not in said
    assert downloads(fake) == ["old.txt", "liar.txt"]  # big.txt's size said no up front
    statuses = [r.status for r in fake.requests if r.path.startswith("/attachments/")]
    assert statuses == [404, 200]


# ----- the fake CDN and the capped download, directly ------------------------------------------


async def test_download_caps_reads_and_refuses_http_errors(fake_discord: FakeDiscord) -> None:
    fine = fake_discord.attachment(CHANNEL, "a.txt", b"a" * 100, "text/plain")
    expired = fake_discord.attachment(CHANNEL, "b.txt", b"b", "text/plain", expired=True)
    async with aiohttp.ClientSession() as session:
        assert await download(session, fine["url"], 100) == b"a" * 100
        assert await download(session, fine["proxy_url"], 100) == b"a" * 100
        with pytest.raises(DownloadError, match="more than the 99"):
            await download(session, fine["url"], 99)
        with pytest.raises(DownloadError, match="HTTP 404"):
            await download(session, expired["url"], 100)
        tampered = fine["url"].replace("hm=", "hm=0")
        with pytest.raises(DownloadError, match="HTTP 404"):
            await download(session, tampered, 100)


def test_attachment_objects_have_discord_s_shape(fake_discord: FakeDiscord) -> None:
    image: Json = fake_discord.attachment(CHANNEL, "p.png", PNG, "image/png")
    assert set(image) == {
        "id",
        "filename",
        "size",
        "url",
        "proxy_url",
        "content_type",
        "width",
        "height",
    }
    assert image["size"] == len(PNG)
    assert f"/attachments/{CHANNEL}/{image['id']}/p.png?ex=" in image["url"]
    assert "/media/attachments/" in image["proxy_url"]
    unknown = fake_discord.attachment(CHANNEL, "blob", b"?")
    assert "content_type" not in unknown  # Discord leaves it out when it cannot tell
