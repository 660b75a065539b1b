"""The console's settings, read once from the environment in main()."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from grizzly_common import audit
from grizzly_common.settings import (
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    is_loopback,
)

# the same shape the admin APIs accept in X-Operator: the name goes there unchanged


@dataclass(frozen=True)
class Operator:
    name: str
    token: str = field(repr=False)


def variable_part(name: str) -> str:
    """An operator's name as it appears in CONSOLE_OPERATOR_<NAME>_TOKEN: upper-cased, every character other than a
    letter or a digit as "_"."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    log_level: str
    pool_admin_url: str
    pusher_admin_url: str
    operators: tuple[Operator, ...]
    session_ttl_s: int
    cookie_secure: bool
    admin_timeout_s: float
    forwarded_allow_ips: str  # proxies whose X-Forwarded-For names the client (the login rate limit sees it)
    pool_admin_token: str = field(repr=False, default="")
    pusher_admin_token: str = field(repr=False, default="")
    session_secret: str = field(repr=False, default="")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        host = env_str(env, "CONSOLE_HOST", "0.0.0.0")  # a container listens on all interfaces
        forwarded = env_list(env, "CONSOLE_FORWARDED_ALLOW_IPS", ())
        # reached from this machine only: the local-dev-... example secrets are allowed; not behind a proxy, which
        # makes a loopback console as public as the proxy
        local = is_loopback(host) and not forwarded
        pool_url = env_str(env, "CONSOLE_POOL_ADMIN_URL", "http://127.0.0.1:8082").rstrip("/")
        pusher_url = env_str(env, "CONSOLE_PUSHER_ADMIN_URL", "http://127.0.0.1:8084").rstrip("/")
        names = env_list(env, "CONSOLE_OPERATORS", ())
        if not names:
            raise SettingsError("CONSOLE_OPERATORS is required (comma list of operator names, e.g. admin)")
        operators = []
        for name in names:
            if not audit.is_operator_name(name):
                raise SettingsError(f"CONSOLE_OPERATORS: {name!r} is not a valid name (1-64 of A-Z a-z 0-9 . _ @ -)")
            token = env_secret(env, f"CONSOLE_OPERATOR_{variable_part(name)}_TOKEN", loopback=local)
            if len(token) < 16 and not local:  # a login facing a network, guarded only by a per-address limit
                raise SettingsError(f"CONSOLE_OPERATOR_{variable_part(name)}_TOKEN must be at least 16 characters")
            operators.append(Operator(name, token))
        if len({o.name for o in operators}) != len(operators):
            raise SettingsError("CONSOLE_OPERATORS names an operator twice")
        if len({o.token for o in operators}) != len(operators):
            # the token alone says who logs in: two operators with one token would be one person to the audit trail
            raise SettingsError("two operators share one CONSOLE_OPERATOR_*_TOKEN: every operator needs their own")
        session_secret = env_secret(env, "CONSOLE_SESSION_SECRET", loopback=local)
        if len(session_secret) < 16:
            raise SettingsError("CONSOLE_SESSION_SECRET must be at least 16 characters (it signs the session cookie)")
        return cls(
            host=host,
            port=env_int(env, "CONSOLE_PORT", 8085, minimum=1),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            pool_admin_url=pool_url,
            pool_admin_token=env_secret(env, "POOL_ADMIN_TOKEN", loopback=is_loopback(pool_url)),
            pusher_admin_url=pusher_url,
            pusher_admin_token=env_secret(env, "PUSHER_ADMIN_TOKEN", loopback=is_loopback(pusher_url)),
            operators=tuple(operators),
            session_secret=session_secret,
            session_ttl_s=env_int(env, "CONSOLE_SESSION_TTL_S", 43200, minimum=60),
            cookie_secure=env_bool(env, "CONSOLE_COOKIE_SECURE", True),
            admin_timeout_s=env_float(env, "CONSOLE_ADMIN_TIMEOUT_S", 5.0, minimum=0.1),
            forwarded_allow_ips=",".join(forwarded),
        )
