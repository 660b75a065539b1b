"""What every source endpoint does the same way: bounded body, token check, strict JSON, number resolution."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TypeVar

import msgspec
from grizzly_common.errors import BodyTooLarge
from grizzly_common.web import app_state, read_limited_body
from starlette.requests import Request

from grizzly_ingest.errors import BadInput, BadJson, TooLarge, Unauthorized
from grizzly_ingest.model import Accepted, Incoming
from grizzly_ingest.state import Ingest, State

T = TypeVar("T")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known (or read) to exceed `limit` bytes."""
    try:
        return await read_limited_body(request, limit)
    except BodyTooLarge:
        raise TooLarge(f"request body larger than {limit} bytes") from None


def supplied_token(request: Request, *, allow_basic: bool = False) -> str:
    """Authorization: Bearer <token>, or (allow_basic: a gateway that can only be given a URL, as
    http://<any-user>:<token>@host/...) Basic with the token as the password. Never a query string: proxies and
    access logs keep those."""
    if "token" in request.query_params:
        raise Unauthorized("a token in the query string is refused: send it in the Authorization header")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_basic and scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


def check_token(supplied: str, expected: str) -> None:
    """Constant-time comparison; the token itself never appears in an error or a log."""
    if not expected or not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise Unauthorized()


def decode_json(body: bytes, kind: type[T]) -> T:
    if not body.strip():
        raise BadJson("empty body")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise BadInput(f"invalid field: {exc}") from None
    except msgspec.DecodeError:
        raise BadJson() from None
    except RecursionError:  # msgspec recurses per nesting level, even through fields it skips
        raise BadJson("JSON nested too deeply") from None


def state_of(request: Request) -> Ingest:
    return app_state(request, State)["ingest"]


async def publish(state: Ingest, message: Incoming) -> Accepted:
    number = message.number
    if number is None:
        number = await state.resolver.resolve(message.device, message.slot)
    return await state.publisher.accept(message, number)
