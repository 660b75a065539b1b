"""Reading settings from environment variables: cast once at start-up, errors name the variable.

Each service defines a frozen dataclass with a ``from_env`` classmethod built from these helpers and calls it
in ``main()``; nothing reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Values that are never accepted as a secret: they come from copied examples, not from an operator.
_PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "changethis", "secret", "password", "key"})
# The repository's own example values: REPLACE_ME_... (deploy/k8s) is never a secret; local-dev-... (scripts/stack.sh)
# only on a service that listens on, or talks to, this machine's loopback alone.
_EXAMPLE_PREFIXES = ("replace_me", "replace-me")
_LOCAL_PREFIXES = ("local-dev-",)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(env, name)
    return default if value is None else value


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {number}")
    return number


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {number}")
    return number


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {value!r}")


def env_list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = _raw(env, name)
    if value is None:
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


def is_loopback(host_or_url: str) -> bool:
    """127.0.0.0/8, ::1 or localhost, given as a host or as a URL's host."""
    host = urlsplit(host_or_url).hostname if "://" in host_or_url else host_or_url.strip("[]")
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_secret(env: Mapping[str, str], name: str, *, loopback: bool = False) -> str:
    """A required secret. The value itself never appears in an error message. `loopback`: the service only listens
    on (or only sends this secret to) 127.0.0.1, where the local-dev-... example values are allowed."""
    value = _raw(env, name)
    if value is None:
        raise SettingsError(f"{name} is required")
    lowered = value.lower()
    if lowered in _PLACEHOLDER_SECRETS or len(value) < 8 or lowered.startswith(_EXAMPLE_PREFIXES):
        raise SettingsError(f"{name} looks like a placeholder; set a real secret of at least 8 characters")
    if lowered.startswith(_LOCAL_PREFIXES) and not loopback:
        raise SettingsError(f"{name} is a local-dev example value: allowed only on loopback; set a real secret")
    return value


def audit_retention_s(env: Mapping[str, str]) -> int:
    """AUDIT_RETENTION_DAYS (default 90): how long finished activations, their audit trail and every other
    per-event key are kept after their last change. Open activations never expire. A fraction of a day is
    allowed (tests use seconds)."""
    return max(1, round(env_float(env, "AUDIT_RETENTION_DAYS", 90.0, minimum=1 / 86400) * 86400))


@dataclass(frozen=True)
class TopicDurability:
    """How the inbound topic is created when a service finds it missing (an existing topic is left as it is)."""

    replication: int
    min_insync_replicas: int


LOCAL_DURABILITY = TopicDurability(replication=1, min_insync_replicas=1)  # one broker: tests and a local stack


def topic_durability(env: Mapping[str, str]) -> TopicDurability:
    """KAFKA_REPLICATION_FACTOR (default 1: one local broker) and KAFKA_MIN_INSYNC_REPLICAS (default: the factor
    minus one, at least 1). With acks=all a write is acknowledged only once that many replicas have it."""
    replication = env_int(env, "KAFKA_REPLICATION_FACTOR", 1, minimum=1)
    min_insync = env_int(env, "KAFKA_MIN_INSYNC_REPLICAS", max(1, replication - 1), minimum=1)
    if min_insync > replication:
        raise SettingsError(
            f"KAFKA_MIN_INSYNC_REPLICAS ({min_insync}) must not exceed KAFKA_REPLICATION_FACTOR ({replication})"
        )
    return TopicDurability(replication, min_insync)


@dataclass(frozen=True)
class Upstream:
    """One platform this server is a partner of (Grizzly, an SMSHUB-compatible platform, ...)."""

    name: str
    key: str = field(repr=False)  # the protocol key: in every request the platform sends and every push
    push_url: str
    user_agent: str
    gzip: bool  # SMSHUB-family platforms want gzip request bodies on pushes
    push_timeout_s: float
    # during a key changeover: the key the platform switches to, accepted beside `key` (pushes keep `key`)
    next_key: str = field(repr=False, default="")


DEFAULT_PUSH_URL = "https://api.grizzlysms.com/agent/api/sms"  # third-party evidence; confirm with support
DEFAULT_USER_AGENT = "grizzly-partner/0.1"


def upstreams_from_env(env: Mapping[str, str], *, listen_host: str | None = None) -> tuple[Upstream, ...]:
    """UPSTREAMS=grizzly,smshub then UPSTREAM_<NAME>_KEY / _PUSH_URL / _GZIP / _USER_AGENT / _PUSH_TIMEOUT_S.

    listen_host: where the reader of the keys listens (api-edge: platforms send the key there); None (the pusher):
    the key goes to each upstream's push URL. Example keys are refused unless that is loopback."""
    names = env_list(env, "UPSTREAMS", ("grizzly",))
    if not names:
        raise SettingsError("UPSTREAMS names no upstream")
    upstreams = []
    for name in names:
        if not name.replace("_", "").replace("-", "").isalnum() or len(name) > 32 or not name.isascii():
            raise SettingsError(
                f"UPSTREAMS: {name!r} is not a valid upstream name (at most 32 letters, digits, - and _)"
            )
        prefix = "UPSTREAM_" + name.upper().replace("-", "_") + "_"
        push_url = env_str(env, prefix + "PUSH_URL", DEFAULT_PUSH_URL)
        loopback = is_loopback(listen_host or push_url)
        next_key = env.get(prefix + "NEXT_KEY", "").strip()  # optional
        if next_key:
            next_key = env_secret(env, prefix + "NEXT_KEY", loopback=loopback)
        upstreams.append(
            Upstream(
                name=name,
                key=env_secret(env, prefix + "KEY", loopback=loopback),
                push_url=push_url,
                user_agent=env_str(env, prefix + "USER_AGENT", DEFAULT_USER_AGENT),
                gzip=env_bool(env, prefix + "GZIP", False),
                push_timeout_s=env_float(env, prefix + "PUSH_TIMEOUT_S", 5.0, minimum=0.1),
                next_key=next_key,
            )
        )
    keys = [k for u in upstreams for k in (u.key, u.next_key) if k]
    if len(set(keys)) != len(keys):
        raise SettingsError("two upstreams share one KEY (or NEXT_KEY): every upstream needs its own protocol key")
    return tuple(upstreams)


def environ() -> Mapping[str, str]:
    """The process environment; the one place settings code touches os.environ."""
    return os.environ
