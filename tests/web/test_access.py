"""Who may see the operator page, over real HTTP: no route answers without a session, the
password is checked and guessing is slowed, every form needs its CSRF token, the cookie is
HttpOnly and SameSite=Strict (Secure behind https), and the page is never served beyond
loopback without a password."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.config import ConfigError, config_from_mapping
from bot.storage import SQLiteStore, Store
from bot.web import Access, check_exposure
from bot.web.access import MAX_FAILURES
from tests.support.browser import PASSWORD, serving
from tests.support.items import msg

ROUTES = [
    ("GET", "/"),
    ("GET", "/threads"),
    ("GET", "/search?q=hello"),
    ("GET", "/thread?id=console:t"),
    ("GET", "/thread/export?id=console:t&format=jsonl"),
    ("GET", "/thread/export?id=console:t&format=md"),
    ("GET", "/thread/forget?id=console:t"),
    ("POST", "/thread/forget"),
    ("POST", "/thread/undo"),
    ("GET", "/people"),
    ("GET", "/people/forget?platform=console&user=console:ann"),
    ("POST", "/people/forget"),
    ("GET", "/approvals"),
    ("POST", "/approvals/reject"),
]


def settings(**extra: str) -> dict[str, str]:
    return {"BOT_WEB_PASSWORD": PASSWORD, **extra}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await SQLiteStore.open(tmp_path / "memory.sqlite3") as opened:
        await opened.append("console:t", [msg("user", "hello there")])
        yield opened


@pytest.fixture
async def base(store: Store) -> AsyncIterator[str]:
    async with serving(config_from_mapping(settings()), store) as url:
        yield url


def client() -> aiohttp.ClientSession:
    # The page is on 127.0.0.1; aiohttp's default jar keeps no cookie of an IP address.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def signing_in(
    http: aiohttp.ClientSession, base: str, password: str = PASSWORD, **extra: str
) -> aiohttp.ClientResponse:
    """Post the sign-in form as a browser would: its token, from the page and its cookie
    (sent by hand, since a `Secure` cookie is not sent over plain http)."""
    form = await (await http.get(f"{base}/signin")).text()
    token = re.search(r'name="token" value="([^"]+)"', form)
    assert token is not None
    return await http.post(
        f"{base}/signin",
        data={"token": token.group(1), "password": password, **extra},
        headers={"Cookie": f"memorybot_sign_in={token.group(1)}"},
        allow_redirects=False,
    )


async def sign_in(http: aiohttp.ClientSession, base: str, password: str = PASSWORD) -> int:
    return (await signing_in(http, base, password, next="/")).status


def session_cookie(answer: aiohttp.ClientResponse) -> str:
    return next(h for h in answer.headers.getall("Set-Cookie") if "memorybot_session" in h)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_no_route_answers_without_a_session(base: str, store: Store) -> None:
    async with client() as http:
        for method, path in ROUTES:
            response = await http.request(method, base + path, allow_redirects=False)
            text = await response.text()
            assert response.status == 401, (method, path)
            assert "<h1>Sign in</h1>" in text, (method, path)
            assert "hello there" not in text
    # Nothing was changed by the posts.
    assert await store.count_items("console:t") == 1


async def test_a_forged_or_expired_cookie_is_no_session(base: str) -> None:
    access = Access(PASSWORD, secure=False, clock=lambda: 0.0, lifetime=10)
    expired = access.issue()  # valid signature, but it expired in 1970
    other = Access("another password!", secure=False).issue()
    for cookie in (expired, other, "1.2.3", expired[:-1] + "0", "garbage"):
        async with aiohttp.ClientSession(cookies={"memorybot_session": cookie}) as http:
            response = await http.get(f"{base}/threads")
            assert response.status == 401, cookie


async def test_the_password_signs_in_with_a_strict_http_only_cookie(base: str) -> None:
    async with client() as http:
        assert await sign_in(http, base) == 303
        response = await http.get(f"{base}/threads")
        assert response.status == 200
        assert "console:t" in await response.text()
    async with client() as http:
        answer = await signing_in(http, base, next="/threads")
        cookie = session_cookie(answer)
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie
        assert answer.headers["Location"] == "/threads"


async def test_the_cookie_is_secure_when_the_page_is_reached_over_https(store: Store) -> None:
    config = config_from_mapping(settings(BOT_WEB_BASE_URL="https://bot.example.com"))
    async with serving(config, store) as base, client() as http:
        assert "Secure" in session_cookie(await signing_in(http, base))


async def test_wrong_passwords_are_refused_then_slowed(base: str) -> None:
    async with client() as http:
        for _ in range(MAX_FAILURES):
            assert await sign_in(http, base, "wrong password") == 401
        # Now even the right one must wait, and is told how long.
        answer = await signing_in(http, base)
        assert answer.status == 429
        assert int(answer.headers["Retry-After"]) > 200
        assert "Too many wrong passwords" in await answer.text()


async def test_a_form_without_its_csrf_token_is_refused(base: str, store: Store) -> None:
    async with client() as http:
        await sign_in(http, base)
        confirm = await (await http.get(f"{base}/thread/forget?id=console:t")).text()
        csrf = csrf_of(confirm)
        for data in ({"id": "console:t"}, {"id": "console:t", "csrf": csrf[:-1] + "x"}):
            refused = await http.post(f"{base}/thread/forget", data=data, allow_redirects=False)
            assert refused.status == 403
            assert "This form has expired" in await refused.text()
        assert await store.count_items("console:t") == 1
        # The sign-in form has its own token: without it, no session is given either.
        async with client() as other:
            answer = await other.post(f"{base}/signin", data={"password": PASSWORD})
            assert answer.status == 403
        done = await http.post(
            f"{base}/thread/forget", data={"id": "console:t", "csrf": csrf}, allow_redirects=False
        )
        assert done.status == 303
        assert await store.count_items("console:t") == 0


async def test_signing_out_ends_the_session(base: str) -> None:
    async with client() as http:
        await sign_in(http, base)
        page = await (await http.get(f"{base}/")).text()
        await http.post(f"{base}/signout", data={"csrf": csrf_of(page)})
        assert (await http.get(f"{base}/")).status == 401


async def test_after_sign_in_only_a_path_of_this_site_is_followed(base: str) -> None:
    async with client() as http:
        answer = await signing_in(http, base, next="//evil.example/x")
        assert answer.headers["Location"] == "/"


async def test_pages_forbid_scripts_and_framing(base: str) -> None:
    async with client() as http:
        await sign_in(http, base)
        response = await http.get(f"{base}/threads")
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src" not in policy  # falls back to 'none'
        assert "frame-ancestors 'none'" in policy
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "bot.example.com"])
def test_beyond_loopback_the_page_needs_a_password(host: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_exposure(config_from_mapping({}), host)
    assert str(raised.value) == (
        f"the operator page would be open to anyone who can reach {host}: set "
        "BOT_WEB_PASSWORD, or serve it on BOT_WEB_HOST=127.0.0.1"
    )
    check_exposure(config_from_mapping({"BOT_WEB_PASSWORD": PASSWORD}), host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_on_loopback_no_password_is_needed(host: str) -> None:
    check_exposure(config_from_mapping({}), host)


async def test_without_a_password_loopback_signs_in_with_one_button(store: Store) -> None:
    async with serving(config_from_mapping({}), store) as base, client() as http:
        form = await (await http.get(f"{base}/signin")).text()
        assert 'type="password"' not in form
        assert await sign_in(http, base, "") == 303
        assert (await http.get(f"{base}/threads")).status == 200


def test_a_short_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="BOT_WEB_PASSWORD"):
        config_from_mapping({"BOT_WEB_PASSWORD": "short"})
