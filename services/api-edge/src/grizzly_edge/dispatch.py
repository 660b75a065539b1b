"""The partner URL's router: authenticate the key, then pick the action's module by `action`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from grizzly_common.errors import UnknownAction, WrongKey
from grizzly_common.messages import decode_envelope

from grizzly_edge.actions import Answer, Call, finish_activation, get_number, get_services
from grizzly_edge.auth import KeyRing

Handler = Callable[[Call], Awaitable[Answer]]

ACTIONS: dict[str, Handler] = {
    "GET_SERVICES": get_services.handle,
    "GET_NUMBER": get_number.handle,
    "FINISH_ACTIVATION": finish_activation.handle,
}


@dataclass(frozen=True)
class Target:
    action: str
    upstream: str
    handler: Handler


def route(body: bytes, keys: KeyRing) -> Target:
    """Raises BadRequest (not a JSON object, no action/key), WrongKey, or UnknownAction.

    The key is checked before the action, so a caller without a key learns nothing about what we support.
    """
    envelope = decode_envelope(body)
    upstream = keys.upstream_for(envelope.key)
    if upstream is None:
        raise WrongKey()
    handler = ACTIONS.get(envelope.action)
    if handler is None:
        raise UnknownAction(f"unknown action {envelope.action[:40]!r}")
    return Target(envelope.action, upstream, handler)
