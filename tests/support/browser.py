"""A real Chromium for the operator page's tests: Debian's `chromium` package, driven by
Playwright for Python and launched by its path (Playwright never downloads a browser here).

Without a browser the tests that need one are skipped with one line, so the suite passes on a
laptop; `BOT_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs the package) turns that skip
into a failure. `BOT_CHROMIUM` names another binary.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

from bot.config import Config
from bot.storage import Store
from bot.web import open_page

PASSWORD = "correct horse battery"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Nothing beyond loopback: no update checks, no component downloads, no sync.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """The browser binary, or a skip (a failure under `BOT_REQUIRE_BROWSER=1`) naming what
    is missing."""
    named = os.environ.get("BOT_CHROMIUM")
    found = named or shutil.which("chromium") or shutil.which("chromium-browser")
    if found and Path(found).exists():
        return found
    reason = "no Chromium to drive (install Debian's `chromium`, or set BOT_CHROMIUM)"
    if os.environ.get("BOT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; BOT_REQUIRE_BROWSER=1 requires one")
    pytest.skip(reason)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def serving(config: Config, store: Store, *, clock: Any = None) -> AsyncIterator[str]:
    """The operator page on `store`, on a free loopback port; yields its base URL."""
    extra = {} if clock is None else {"clock": clock}
    async with open_page(config, store, host="127.0.0.1", port=0, **extra) as server:
        yield f"http://127.0.0.1:{server.port}"


async def sign_in(page: Page, base: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/")


async def serious_violations(page: Page) -> list[str]:
    """What axe-core (as shipped in axe-playwright-python) finds serious or critical."""
    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


async def scrolls_sideways(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
    )


def fixed(now: datetime) -> Any:
    return lambda: now


def words(text: str) -> list[str]:
    return re.findall(r"\S+", text)
