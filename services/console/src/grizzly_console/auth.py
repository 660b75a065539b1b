"""Who is logged in, and whether a change really comes from the console's own page.

The session lives in a signed cookie (starlette's SessionMiddleware: itsdangerous, HttpOnly, SameSite=Strict, Secure
per CONSOLE_COOKIE_SECURE). It holds the operator's name, a fingerprint of the token they logged in with (a changed
or removed token ends the session at the next request), the login time (the session ends CONSOLE_SESSION_TTL_S after
it, however busy) and the CSRF token every POST must send back, as a form field or in the X-CSRF-Token header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from grizzly_console.settings import Operator, Settings

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    operator: str
    csrf: str


class Auth:
    def __init__(self, settings: Settings) -> None:
        self._operators = settings.operators
        self._secret = settings.session_secret.encode()
        self._ttl_ms = settings.session_ttl_s * 1000

    def _fingerprint(self, operator: Operator) -> str:
        return hmac.new(self._secret, f"{operator.name}\0{operator.token}".encode(), hashlib.sha256).hexdigest()[:32]

    def match(self, token: str) -> Operator | None:
        """The operator whose token this is. Every operator's token is compared (constant time each), whether or
        not an earlier one matched, so the time taken says nothing about which one did or how close a guess was."""
        given = token.encode()
        found: Operator | None = None
        for operator in self._operators:
            if hmac.compare_digest(given, operator.token.encode()) and given:
                found = operator
        return found

    def log_in(self, request: Request, operator: Operator) -> None:
        """A fresh session: a new CSRF token (the one shown before the login is not reused)."""
        request.session.clear()
        request.session.update(
            {
                "op": operator.name,
                "fp": self._fingerprint(operator),
                "at": int(time.time() * 1000),
                CSRF_FIELD: secrets.token_urlsafe(32),
            }
        )

    def current(self, request: Request) -> Session | None:
        """The logged-in operator, or None (no session, expired, or the operator's token changed)."""
        data: dict[str, Any] = request.session
        name, fingerprint, at, csrf = data.get("op"), data.get("fp"), data.get("at"), data.get(CSRF_FIELD)
        if not (isinstance(name, str) and isinstance(fingerprint, str) and isinstance(at, int) and csrf):
            return None
        if int(time.time() * 1000) - at > self._ttl_ms:
            return None
        for operator in self._operators:
            if operator.name == name and hmac.compare_digest(self._fingerprint(operator), fingerprint):
                return Session(operator=name, csrf=str(csrf))
        return None

    @staticmethod
    def csrf_token(request: Request) -> str:
        """This session's CSRF token (one is made for a visitor who has none yet: the login form needs it too)."""
        token = request.session.get(CSRF_FIELD)
        if not isinstance(token, str) or not token:
            token = secrets.token_urlsafe(32)
            request.session[CSRF_FIELD] = token
        return token

    @staticmethod
    def csrf_ok(request: Request, sent: str | None) -> bool:
        """`sent` (the form field, else the X-CSRF-Token header) equals this session's token."""
        expected = request.session.get(CSRF_FIELD)
        given = sent or request.headers.get(CSRF_HEADER, "")
        if not isinstance(expected, str) or not expected or not given:
            return False
        return hmac.compare_digest(given.encode(), expected.encode())
