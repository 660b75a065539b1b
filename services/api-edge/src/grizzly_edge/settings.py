"""api-edge settings, read once in main() from the environment (EDGE_* plus the shared UPSTREAMS/UPSTREAM_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from grizzly_common.settings import (
    SettingsError,
    Upstream,
    env_float,
    env_int,
    env_list,
    env_str,
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
        return cls(
            host=env_str(env, "EDGE_HOST", "0.0.0.0"),
            port=env_int(env, "EDGE_PORT", 8080, minimum=1),
            paths=paths,
            pool_url=pool_url,
            pool_timeout_s=env_float(env, "EDGE_POOL_TIMEOUT_S", 2.5, minimum=0.05),
            pool_connections=env_int(env, "EDGE_POOL_CONNECTIONS", 256, minimum=1),
            max_body_bytes=max_body,
            max_decompressed_bytes=env_int(env, "EDGE_MAX_DECOMPRESSED_BYTES", max_body, minimum=256),
            gzip_min_bytes=env_int(env, "EDGE_GZIP_MIN_BYTES", 0, minimum=0),
            gzip_level=gzip_level,
            upstreams=upstreams_from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
        )
