"""Signing in and out of the operator page."""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from .access import SESSION_COOKIE, SESSION_SECONDS, SIGN_IN_COOKIE
from .page import Page

_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")


def routes(page: Page) -> list[web.RouteDef]:
    async def sign_in(request: web.Request) -> web.StreamResponse:
        address = request.remote or "?"
        form = await request.post()
        typed_next = form.get("next")
        back = _local(typed_next) if isinstance(typed_next, str) else "/"
        token, expected = form.get("token"), request.cookies.get(SIGN_IN_COOKIE, "")
        if not isinstance(token, str) or not expected or not hmac.compare_digest(token, expected):
            return form_page(
                page, request, status=403, error="The sign-in form expired: try again.", back=back
            )
        wait = page.throttle.wait(address)
        if wait:
            response = form_page(
                page,
                request,
                status=429,
                error=f"Too many wrong passwords from your address: try again in {wait:.0f} s.",
                back=back,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        typed = form.get("password")
        if not page.access.password_ok(typed if isinstance(typed, str) else ""):
            page.throttle.failed(address)
            return form_page(
                page, request, status=401, error="That is not the password.", back=back
            )
        page.throttle.succeeded(address)
        response = web.HTTPSeeOther(back)
        response.set_cookie(
            SESSION_COOKIE,
            page.access.issue(),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            secure=page.access.secure,
            path="/",
        )
        response.del_cookie(SIGN_IN_COOKIE, path="/")
        raise response

    async def show(request: web.Request) -> web.StreamResponse:
        return form(page, request)

    async def sign_out(request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/signin")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    return [
        web.get("/signin", show),
        web.post("/signin", sign_in),
        web.post("/signout", sign_out),
    ]


def form(page: Page, request: web.Request, *, status: int = 200) -> web.Response:
    """The sign-in page, which any route without a session answers (with 401), coming back
    to that route once signed in (if it was a page to come back to)."""
    back = request.path_qs if request.method == "GET" and request.path != "/signin" else "/"
    return form_page(page, request, status=status, back=back)


def form_page(
    page: Page, request: web.Request, *, status: int, error: str = "", back: str | None = None
) -> web.Response:
    # The token already given is kept: a browser asks for other files (a favicon) beside the
    # form, and a new token for each would void the form it is showing.
    given = request.cookies.get(SIGN_IN_COOKIE, "")
    token = given if _TOKEN.fullmatch(given) else secrets.token_urlsafe(18)
    target = back if back is not None else request.query.get("next", "/")
    response = page.render(
        request,
        "signin.html",
        status=status,
        token=token,
        error=error,
        next=_local(target),
        needs_password=page.access.needs_password,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=page.access.secure,
        path="/",
        max_age=3600,
    )
    return response


def _local(target: str) -> str:
    """Only a path of this site to go back to, never another site (`//evil.example`)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
