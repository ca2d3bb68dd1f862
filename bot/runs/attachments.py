"""Files people attach: what reaches the model, and what stays in memory.

- Images (PNG, JPEG, WebP, GIF) go to the model as image input, downloaded by the bot and sent
  as data URLs: platform links expire, and many model servers cannot fetch them anyway. They
  are not kept: after the turn, memory holds a one-line placeholder (the model's answer
  already says what it saw), so the database does not grow by megabytes per picture.
- Text-like files (`text/*`, JSON, YAML, XML, code...) are inlined with their file name and
  kept in memory like the message itself, within the same `BOT_MAX_INPUT_CHARS` cut.
- Anything else, anything larger than `BOT_MAX_ATTACHMENT_BYTES`, and a download that fails,
  gets a one-line note, so the model can say it could not read it.

`BOT_VISION=auto` sends images until the model server says the model takes no image input;
then every worker sends a note instead, for a day (see `vision`). A picture the server could
not read is left out of that one request only.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Final

from ..messages import Attachment
from ..storage import Item
from .vision import BlindModels

logger = logging.getLogger(__name__)

IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
"""What OpenAI's vision models accept (GIFs unanimated)."""
TEXT_TYPES: Final = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-sh",
        "application/x-python",
        "application/sql",
        "application/csv",
        "application/x-ndjson",
        "application/graphql",
    }
)
TEXT_SUFFIXES: Final = frozenset(
    [
        ".txt",
        ".md",
        ".markdown",
        ".rst",
        ".csv",
        ".tsv",
        ".log",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".conf",
        ".env",
        ".xml",
        ".html",
        ".htm",
        ".css",
        ".js",
        ".mjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".py",
        ".rb",
        ".php",
        ".java",
        ".kt",
        ".kts",
        ".swift",
        ".go",
        ".rs",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".m",
        ".scala",
        ".sh",
        ".bash",
        ".zsh",
        ".ps1",
        ".sql",
        ".graphql",
        ".proto",
        ".tf",
        ".dockerfile",
        ".gitignore",
        ".lua",
        ".r",
        ".pl",
        ".ex",
        ".exs",
        ".erl",
        ".hs",
        ".clj",
        ".vue",
        ".svelte",
        ".diff",
        ".patch",
    ]
)
SUFFIX_IMAGES: Final = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                        ".webp": "image/webp", ".gif": "image/gif"}  # fmt: skip


IMAGE_TOKENS: Final = 1_500
"""What one image may cost as model input, kept free in the turn's budget. OpenAI counts 85
tokens plus 170 per 512-pixel tile after scaling; a tall or wide picture at `detail: auto` comes
to about 1,450 at most."""


@dataclass(frozen=True)
class AttachmentSettings:
    """What the reader needs from configuration (defaults live in `Config` alone)."""

    vision: str
    """`auto`, `on` or `off` (see the module docstring)."""
    max_bytes: int


@dataclass
class ReadFiles:
    """A message's attachments, read."""

    text: str = ""
    """Inlined text files and notes, to add after the message's own text."""
    images: list[Item] = field(default_factory=list)
    """Image input parts for the model."""
    image_notes: list[str] = field(default_factory=list)
    """What each image becomes in memory, and in a retry without images."""

    def blind(self) -> ReadFiles:
        """The same files for a model that cannot see: no images, their notes kept."""
        return ReadFiles(text=self.text, image_notes=self.image_notes)


class AttachmentReader:
    """Reads attachments for the model, and knows whether the model sees images."""

    def __init__(self, settings: AttachmentSettings, blind: BlindModels | None = None) -> None:
        """
        Args:
            settings: What to read.
            blind: What the workers learnt about models that cannot see; without it (a reader
                on its own) `auto` sends images and learns nothing.
        """
        self._settings = settings
        self._blind = blind

    @property
    def vision(self) -> str:
        """`auto`, `on` or `off`."""
        return self._settings.vision

    async def sees(self, model: str | None) -> bool:
        if self._settings.vision != "auto":
            return self._settings.vision == "on"
        return self._blind is None or not await self._blind.blind(model or "")

    async def cannot_see(self, model: str | None, reason: str) -> None:
        """The model server said the model takes no image input: with `auto`, every worker
        stops sending it images."""
        if self._settings.vision == "auto" and self._blind is not None:
            await self._blind.learn(model or "", reason)

    async def read(self, attachments: Sequence[Attachment], *, model: str | None) -> ReadFiles:
        read = ReadFiles()
        blocks: list[str] = []
        sees: bool | None = None  # asked once, and only when there is an image
        for attachment in attachments:
            kind = _kind(attachment)
            too_big = attachment.size is not None and attachment.size > self._settings.max_bytes
            if kind == "image" and sees is None:
                sees = await self.sees(model)
            if kind == "image" and not sees:
                blocks.append(f"[{attachment.name} is an image; I can't see images here.]")
                continue
            if kind == "other":
                blocks.append(f"[{attachment.name} was attached; I can't read that type of file.]")
                continue
            if too_big:
                blocks.append(
                    f"[{attachment.name} was attached but is too large for me to read "
                    f"({_size(attachment.size or 0)}; the limit is "
                    f"{_size(self._settings.max_bytes)}).]"
                )
                continue
            try:
                data = await attachment.fetch(self._settings.max_bytes)
            except Exception as exc:
                logger.warning("Downloading attachment %s failed: %s", attachment.name, exc)
                blocks.append(f"[{attachment.name} was attached but I couldn't download it.]")
                continue
            if kind == "image":
                read.images.append(_image_part(attachment, data))
                read.image_notes.append(f"[image: {attachment.name}, {_size(len(data))}]")
                continue
            text = _text(data)
            if text is None:
                blocks.append(f"[{attachment.name} was attached; I can't read that type of file.]")
                continue
            blocks.append(f"--- {attachment.name} ---\n{text}\n--- end of {attachment.name} ---")
        read.text = "\n\n".join(blocks)
        return read


def with_images(item: Item, images: Sequence[Item]) -> Item:
    """A user message item with image parts after its text."""
    if not images:
        return item
    content = item.get("content")
    parts: list[Any] = (
        [{"type": "input_text", "text": content}]
        if isinstance(content, str)
        else list(content or [])
    )
    return {**item, "content": [*parts, *images]}


BLIND_NOTE: Final = "this model can't see images"
"""Said of each image to a model that takes no image input."""
UNREAD_NOTE: Final = "it could not be read, so it was left out"
"""Said of each image of a request the model server refused for its images."""


def with_image_notes(item: Item, notes: Sequence[str], why: str = BLIND_NOTE) -> Item:
    """A text message item saying which images it came with and `why` they are not there."""
    content = item.get("content")
    if not notes or not isinstance(content, str):
        return item
    text = " ".join(f"{note} ({why})" for note in notes)
    return {**item, "content": f"{content}\n\n{text}"}


def without_images(item: Item, notes: Sequence[str] = ()) -> Item:
    """The item with its image parts replaced by one-line placeholders (what memory keeps)."""
    content = item.get("content")
    if not isinstance(content, list) or not any(_is_image(part) for part in content):
        return item
    notes = list(notes)
    kept: list[Any] = []
    for part in content:
        if _is_image(part):
            kept.append({"type": "input_text", "text": notes.pop(0) if notes else "[image]"})
        else:
            kept.append(part)
    return {**item, "content": kept}


def _is_image(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "input_image"


def _kind(attachment: Attachment) -> str:
    mime = attachment.content_type.split(";")[0].strip().lower()
    suffix = PurePosixPath(attachment.name.lower()).suffix
    if mime in IMAGE_TYPES or (not mime and suffix in SUFFIX_IMAGES):
        return "image"
    if mime.startswith("text/") or mime in TEXT_TYPES or suffix in TEXT_SUFFIXES:
        return "text"
    if mime.endswith(("+json", "+xml", "+yaml")):
        return "text"
    return "other"


def _image_part(attachment: Attachment, data: bytes) -> Item:
    mime = attachment.content_type.split(";")[0].strip().lower()
    if mime not in IMAGE_TYPES:
        mime = SUFFIX_IMAGES.get(PurePosixPath(attachment.name.lower()).suffix, "image/png")
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": "input_image", "image_url": f"data:{mime};base64,{encoded}", "detail": "auto"}


def _text(data: bytes) -> str | None:
    """The file as text, or None when it is binary after all."""
    if b"\x00" in data[:8192]:
        return None
    text = data.decode("utf-8", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 100):
        return None
    return text.replace("\r\n", "\n")


def _size(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} MB"
    if count >= 1_000:
        return f"{count / 1_000:.0f} KB"
    return f"{count} bytes"
