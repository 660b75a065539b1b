"""api-edge settings, read once in main() from the environment (EDGE_* plus the shared UPSTREAMS/UPSTREAM_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from grizzly_common.security import IPNetwork, parse_networks
from grizzly_common.settings import (
    SettingsError,
    Upstream,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    is_loopback,
    upstreams_from_env,
)

DEFAULT_PATHS = ("/", "/GrizzlySMS.php")


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    paths: tuple[str, ...]  # every path answers the partner protocol (dispatch on `action`)
    pool_url: str
    pool_timeout_s: float
    pool_connections: int
    max_body_bytes: int  # raw request body, counted while reading
    max_decompressed_bytes: int  # a gzip request body after decompression (zip-bomb guard)
    gzip_min_bytes: int  # answers at least this long are gzipped when the client accepts gzip
    gzip_level: int
    upstreams: tuple[Upstream, ...]  # keys are repr=False on Upstream
    log_level: str
    pool_token: str = field(repr=False, default="")  # POOL_API_TOKEN, sent to the pool's internal API
    ops_host: str = "0.0.0.0"
    ops_port: int = 0  # /healthz, /readyz, /metrics; 0: on the partner port (never on an internet-facing one)
    allow: Mapping[str, tuple[IPNetwork, ...]] = field(default_factory=dict)  # upstream -> its source CIDRs
    rate_limit_rps: float = 0.0  # per source address not in any allowlist; 0: no limit
    rate_limit_burst: float = 1.0
    tls_certfile: str = ""
    tls_keyfile: str = ""
    forwarded_allow_ips: str = ""  # proxies whose X-Forwarded-For gives the client address

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        paths = env_list(env, "EDGE_PATHS", DEFAULT_PATHS)
        if not paths:
            raise SettingsError("EDGE_PATHS names no path")
        for path in paths:
            if not path.startswith("/"):
                raise SettingsError(f"EDGE_PATHS: {path!r} must start with /")
            if path in ("/healthz", "/readyz", "/metrics"):
                raise SettingsError(f"EDGE_PATHS: {path!r} is reserved for health and metrics")
        pool_url = env_str(env, "EDGE_POOL_URL", "http://127.0.0.1:8081").rstrip("/")
        if not pool_url.startswith(("http://", "https://")):
            raise SettingsError(f"EDGE_POOL_URL must be an http(s) URL, got {pool_url!r}")
        max_body = env_int(env, "EDGE_MAX_BODY_BYTES", 64 * 1024, minimum=256)
        gzip_level = env_int(env, "EDGE_GZIP_LEVEL", 5, minimum=1)
        if gzip_level > 9:
            raise SettingsError(f"EDGE_GZIP_LEVEL must be 1..9, got {gzip_level}")
        host = env_str(env, "EDGE_HOST", "0.0.0.0")
        port = env_int(env, "EDGE_PORT", 8080, minimum=1)
        ops_port = env_int(env, "EDGE_OPS_PORT", 8086, minimum=0)
        if ops_port == port:
            raise SettingsError(f"EDGE_OPS_PORT must differ from EDGE_PORT ({port}); 0 puts them on EDGE_PORT")
        upstreams = upstreams_from_env(env, listen_host=host)
        allow = {}
        for upstream in upstreams:
            prefix = "UPSTREAM_" + upstream.name.upper().replace("-", "_") + "_"
            name = prefix + "ALLOW_CIDRS"
            try:
                allow[upstream.name] = parse_networks(name, env_list(env, prefix + "ALLOW_CIDRS", ()))
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
        certfile = env_str(env, "EDGE_TLS_CERTFILE", "")
        keyfile = env_str(env, "EDGE_TLS_KEYFILE", "")
        if bool(certfile) != bool(keyfile):
            raise SettingsError("EDGE_TLS_CERTFILE and EDGE_TLS_KEYFILE go together: set both or neither")
        return cls(
            host=host,
            port=port,
            paths=paths,
            pool_url=pool_url,
            pool_timeout_s=env_float(env, "EDGE_POOL_TIMEOUT_S", 2.5, minimum=0.05),
            pool_connections=env_int(env, "EDGE_POOL_CONNECTIONS", 256, minimum=1),
            max_body_bytes=max_body,
            max_decompressed_bytes=env_int(env, "EDGE_MAX_DECOMPRESSED_BYTES", max_body, minimum=256),
            gzip_min_bytes=env_int(env, "EDGE_GZIP_MIN_BYTES", 0, minimum=0),
            gzip_level=gzip_level,
            upstreams=upstreams,
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            pool_token=env_secret(env, "POOL_API_TOKEN", loopback=is_loopback(pool_url)),
            ops_host=env_str(env, "EDGE_OPS_HOST", "0.0.0.0"),
            ops_port=ops_port,
            allow=allow,
            rate_limit_rps=env_float(env, "EDGE_RATE_LIMIT_RPS", 100.0, minimum=0.0),
            rate_limit_burst=env_float(env, "EDGE_RATE_LIMIT_BURST", 400.0, minimum=1.0),
            tls_certfile=certfile,
            tls_keyfile=keyfile,
            forwarded_allow_ips=env_str(env, "EDGE_FORWARDED_ALLOW_IPS", ""),
        )
