"""Who may see the operator page: the password, the session cookie, CSRF tokens, and how
fast an address may guess.

A session is a signed cookie rather than a row or a dict entry: every worker serving the page
(on PostgreSQL each may) accepts what any of them issued, with nothing shared but the
password. The signing key is derived from the password, so changing it signs everyone out; a
page served without one (loopback only) signs with a key made at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from ..config import Config, ConfigError

SESSION_COOKIE = "memorybot_session"
SIGN_IN_COOKIE = "memorybot_sign_in"
"""A random value the sign-in form repeats: its CSRF token, before there is a session."""
SESSION_SECONDS = 12 * 3600
MAX_FAILURES = 5
"""Wrong passwords an address may try per `FAILURE_WINDOW` before it must wait."""
FAILURE_WINDOW = 300.0


@dataclass(frozen=True)
class Operator:
    """A signed-in session."""

    nonce: str
    expires: int

    @property
    def label(self) -> str:
        """A short name for the session in the audit log (never the cookie itself)."""
        return self.nonce[:8]


class Access:
    """Checks the password and issues and reads session cookies and CSRF tokens."""

    def __init__(
        self,
        password: str | None,
        *,
        secure: bool,
        clock: Callable[[], float] = time.time,
        lifetime: int = SESSION_SECONDS,
    ) -> None:
        self._password = password
        self.secure = secure
        """Whether cookies are marked `Secure` (the page is reached over https)."""
        self._clock = clock
        self._lifetime = lifetime
        seed = password.encode() if password is not None else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"memorybot operator page\0" + seed).digest()

    @property
    def needs_password(self) -> bool:
        return self._password is not None

    def password_ok(self, typed: str) -> bool:
        """Whether `typed` is the password, compared in constant time (digests first, so not
        even its length shows)."""
        if self._password is None:
            return True
        return hmac.compare_digest(
            hashlib.sha256(typed.encode()).digest(),
            hashlib.sha256(self._password.encode()).digest(),
        )

    def issue(self) -> str:
        """A new session's cookie value."""
        expires = int(self._clock()) + self._lifetime
        body = f"{expires}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._sign('session', body)}"

    def operator(self, cookie: str | None) -> Operator | None:
        """The session a cookie holds, if it is ours and not expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        expires, nonce, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign("session", f"{expires}.{nonce}")):
            return None
        if not expires.isdigit() or int(expires) < self._clock():
            return None
        return Operator(nonce, int(expires))

    def csrf(self, operator: Operator) -> str:
        """The token every form of this session carries."""
        return self._sign("csrf", operator.nonce)

    def csrf_ok(self, operator: Operator, token: str) -> bool:
        return hmac.compare_digest(token, self.csrf(operator))

    def _sign(self, purpose: str, body: str) -> str:
        return hmac.new(self._key, f"{purpose}\0{body}".encode(), hashlib.sha256).hexdigest()


class SignInThrottle:
    """Slows guessing: after `MAX_FAILURES` wrong passwords within `FAILURE_WINDOW` seconds
    an address must wait until the oldest of them is that old (per process; bounded)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: TTLCache[str, deque[float]] = TTLCache(
            maxsize=10_000, ttl=FAILURE_WINDOW, timer=clock
        )

    def wait(self, address: str) -> float:
        """Seconds `address` must wait before trying again; 0 when it may try now."""
        recent = self._recent(address)
        if len(recent) < MAX_FAILURES:
            return 0.0
        return max(0.0, recent[0] + FAILURE_WINDOW - self._clock())

    def failed(self, address: str) -> None:
        recent = self._recent(address)
        recent.append(self._clock())
        self._failures[address] = recent

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        now = self._clock()
        recent = self._failures.get(address) or deque(maxlen=MAX_FAILURES)
        while recent and recent[0] + FAILURE_WINDOW <= now:
            recent.popleft()
        return recent


def check_exposure(config: Config, host: str) -> None:
    """Refuse to serve the page beyond this machine without a password, in one line."""
    if config.web_password is None and not is_loopback(host):
        raise ConfigError(
            f"the operator page would be open to anyone who can reach {host}: set "
            "BOT_WEB_PASSWORD, or serve it on BOT_WEB_HOST=127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
