"""The console's Starlette app: sessions, login, CSRF, security headers and the pages (pages.py).

Every page is rendered on the server (Jinja2, autoescaped); htmx re-fetches a page's live part every few seconds,
and Chart.js draws the charts from the console's own JSON routes. Both are vendored under static/vendor: the page
loads nothing from anywhere but the console.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

import httpx
from grizzly_common.messages import is_digits
from grizzly_common.security import RateLimiter, client_host
from grizzly_common.web import app_state, json_response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grizzly_console import format as fmt
from grizzly_console.admin_api import AdminApi, AdminFailure
from grizzly_console.auth import CSRF_FIELD, Auth, Session
from grizzly_console.settings import Settings

log = logging.getLogger(__name__)

PACKAGE = Path(str(files("grizzly_console")))
SESSION_COOKIE = "grizzly_console"
LOGIN_RATE = 5 / 60  # login attempts a second per source, on average: 5 a minute
LOGIN_BURST = 5
MAX_FORM_BYTES = 64 * 1024 * 1024  # a CSV upload; larger files: the CLI (grizzly-pool import)

# Everything from the console itself; no inline script, no eval (htmx's allowEval is off, see base.html)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class State(TypedDict):
    settings: Settings
    pool: AdminApi
    pusher: AdminApi
    auth: Auth
    login_limiter: RateLimiter
    templates: Environment


@dataclass
class Page:
    """One request to a logged-in page: who, the state, the form of a POST (CSRF already checked)."""

    request: Request
    state: State
    session: Session
    form: FormData | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def pool(self) -> AdminApi:
        return self.state["pool"]

    @property
    def pusher(self) -> AdminApi:
        return self.state["pusher"]

    @property
    def operator(self) -> str:
        return self.session.operator

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, self.state, template, status_code, session=self.session, **values)

    def redirect(self, url: str, *flashes: tuple[str, str]) -> RedirectResponse:
        """After a change: back to a page (POST/redirect/GET), with messages shown once there."""
        if flashes:
            kept = list(self.request.session.get("flash", []))[-5:]
            self.request.session["flash"] = kept + [[level, text[:500]] for level, text in flashes]
        return RedirectResponse(url, status_code=303)

    def changed(self, action: str, outcome: str, **fields: Any) -> None:
        """One line per change an operator asked for, with who and the outcome (the admin API records it too)."""
        log.info(
            "console change",
            extra={"fields": {"operator": self.operator, "action": action, "outcome": outcome, **fields}},
        )

    def param(self, name: str, default: str = "", limit: int = 100) -> str:
        return self.request.query_params.get(name, default).strip()[:limit]

    def field(self, name: str, limit: int = 200) -> str:
        value = self.form.get(name, "") if self.form is not None else ""
        return value.strip()[:limit] if isinstance(value, str) else ""


def render(request: Request, state: State, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    flashes = request.session.pop("flash", []) if "session" in request.scope else []
    html = (
        state["templates"]
        .get_template(template)
        .render(
            request=request,
            path=request.url.path,
            csrf=Auth.csrf_token(request),
            flashes=flashes,
            **values,
        )
    )
    return HTMLResponse(html, status_code=status_code)


def bad_input(page: Page, message: str) -> HTMLResponse:
    """A form or a parameter the console cannot use: 400, the reason, and a way back."""
    return page.render("error.html", 400, title="Bad input", message=message)


PageHandler = Callable[[Page], Awaitable[Response]]


def _csrf_refused(request: Request, state: State, session: Session) -> Response:
    log.warning(
        "console POST refused: missing or wrong CSRF token",
        extra={"fields": {"path": request.url.path, "operator": session.operator}},
    )
    return render(
        request,
        state,
        "error.html",
        403,
        session=session,
        title="Refused",
        message="This form is out of date or did not come from the console (CSRF token missing or wrong). "
        "Reload the page and try again.",
    )


def page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """A route that needs a logged-in operator; its POSTs need the session's CSRF token too."""

    async def endpoint(request: Request) -> Response:
        state = app_state(request, State)
        session = state["auth"].current(request)
        if session is None:
            if request.method != "GET":
                return render(request, state, "error.html", 403, title="Not logged in", message="Log in first.")
            if request.headers.get("hx-request"):
                return Response(status_code=204, headers={"HX-Redirect": "/login"})  # a poll after the session ended
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        form = None
        try:
            if request.method == "POST":
                form = await request.form(max_files=1, max_fields=50)
                sent = form.get(CSRF_FIELD)
                if not state["auth"].csrf_ok(request, sent if isinstance(sent, str) else None):
                    return _csrf_refused(request, state, session)
            return await handler(Page(request, state, session, form))
        except HTTPException:
            raise  # 413 from BodyLimit while the form was read: its own page
        except Exception:
            # an answer of an admin API the page could not read (a shape it does not know): say so, never a 500
            log.exception("console page failed", extra={"fields": {"path": request.url.path}})
            return render(
                request,
                state,
                "error.html",
                502,
                session=session,
                title="Could not show this page",
                message="An admin API gave an answer this console could not read (a version mismatch?). "
                "The console's log has the details.",
            )
        finally:
            if form is not None:
                await form.close()  # an uploaded file's temporary copy goes now

    return endpoint


class BodyLimit:
    """Refuse a request body larger than max_bytes (413), counted as it arrives: an upload cannot fill the disk."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if is_digits(declared) and int(declared) > self.max:
            await _too_large(send, self.max)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max:
                    raise HTTPException(413, "too large")
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send, limit: int) -> None:
    mib = limit // (1024 * 1024)
    body = f"Request too large (limit {mib} MiB): import big files with grizzly-pool import.".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """CSP and friends on every answer (pages, fragments, static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                if scope["path"].startswith("/static/"):
                    extra = [(n, v) for n, v in extra if n != b"cache-control"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


# -- login, logout, health ---------------------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only a path of this console: never another site (an open redirect)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def login_form(request: Request) -> Response:
    state = app_state(request, State)
    if state["auth"].current(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next", "/")), status_code=303)
    return render(request, state, "login.html", next=_safe_next(request.query_params.get("next", "/")))


async def login(request: Request) -> Response:
    state = app_state(request, State)
    source = client_host(request.scope) or "?"
    form = await request.form(max_files=0, max_fields=10)
    target = _safe_next(str(form.get("next", "/")))
    sent = form.get(CSRF_FIELD)
    if not state["auth"].csrf_ok(request, sent if isinstance(sent, str) else None):
        return render(
            request, state, "login.html", 403, next=target, error="The login form was out of date: try again."
        )
    # only wrong tokens count: a good login never uses up the attempts of others behind the same address
    if not state["login_limiter"].peek(source):
        log.warning("console login refused: too many attempts", extra={"fields": {"source": source}})
        return render(request, state, "login.html", 429, next=target, error="Too many login attempts: wait a minute.")
    token = form.get("token", "")
    operator = state["auth"].match(token if isinstance(token, str) else "")
    if operator is None:
        state["login_limiter"].allow(source)
        log.warning("console login failed: unknown token", extra={"fields": {"source": source}})
        return render(request, state, "login.html", 401, next=target, error="Wrong token.")
    state["auth"].log_in(request, operator)
    log.info("console login", extra={"fields": {"operator": operator.name, "source": source}})
    return RedirectResponse(target, status_code=303)


@page
async def logout(page: Page) -> Response:
    log.info("console logout", extra={"fields": {"operator": page.operator}})
    page.request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Both admin APIs answer the console's token (a cheap authenticated read of each)."""
    state = app_state(request, State)
    checks: dict[str, str] = {}
    for name, api, path in (("pool", state["pool"], "/admin/unmatched"), ("pusher", state["pusher"], "/admin/parked")):
        try:
            await api.get(path, {"count": 1})
            checks[name] = "ok"
        except AdminFailure as exc:
            checks[name] = exc.message
    ready = all(v == "ok" for v in checks.values())
    return json_response({"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503)


async def not_found(request: Request, exc: Exception) -> Response:
    state = app_state(request, State)
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status == 413:
        return Response("Request too large: import big files with grizzly-pool import.", 413)
    title = "Not found" if status == 404 else f"HTTP {status}"
    return render(request, state, "error.html", status, title=title, message="There is no such page.")


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(PACKAGE / "templates"),
        autoescape=select_autoescape(("html",), default=True),  # every value escaped, whatever it holds
        trim_blocks=True,
        lstrip_blocks=True,
    )
    fmt.register(env)
    return env


def create_app(
    settings: Settings,
    *,
    pool_transport: httpx.AsyncBaseTransport | None = None,
    pusher_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """transports: the tests' fake admin APIs (httpx.ASGITransport); None is the network."""
    from grizzly_console import pages

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with contextlib.AsyncExitStack() as stack:
            pool = AdminApi(
                "pool", settings.pool_admin_url, settings.pool_admin_token, settings.admin_timeout_s, pool_transport
            )
            stack.push_async_callback(pool.aclose)
            pusher = AdminApi(
                "pusher",
                settings.pusher_admin_url,
                settings.pusher_admin_token,
                settings.admin_timeout_s,
                pusher_transport,
            )
            stack.push_async_callback(pusher.aclose)
            yield State(
                settings=settings,
                pool=pool,
                pusher=pusher,
                auth=Auth(settings),
                login_limiter=RateLimiter(LOGIN_RATE, LOGIN_BURST, max_sources=10_000),
                templates=templates(),
            )

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static"),
        *[Route(path, page(handler), methods=methods) for path, handler, methods in pages.ROUTES],
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, max_bytes=MAX_FORM_BYTES),
        Middleware(
            SessionMiddleware,
            secret_key=settings.session_secret,
            session_cookie=SESSION_COOKIE,
            max_age=settings.session_ttl_s,
            same_site="strict",
            https_only=settings.cookie_secure,
        ),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found, 413: not_found},
    )
