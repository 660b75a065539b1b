"""Pool settings, read once from the environment in main() (see README.md for every variable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from grizzly_common.settings import (
    SettingsError,
    audit_retention_s,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    is_loopback,
)

DEFAULT_SERVICES = ("tg", "wa", "vk", "ok", "go", "fb", "ig", "ds", "dr", "ot")


def parse_country_map(name: str, value: str) -> dict[str, str]:
    """ "ru:0,ua:1" -> {"ru": "0", "ua": "1"}: our country code -> the code this upstream uses."""
    mapping: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        ours, sep, theirs = item.partition(":")
        if not sep or not ours.strip() or not theirs.strip():
            raise SettingsError(f"{name}: expected ours:theirs pairs like ru:0, got {item!r}")
        mapping[ours.strip().lower()] = theirs.strip().lower()
    if len(set(mapping.values())) != len(mapping):
        raise SettingsError(f"{name}: two countries map to the same upstream code")
    return mapping


@dataclass(frozen=True)
class Settings:
    redis_url: str
    key_prefix: str
    host: str
    port: int
    admin_host: str
    admin_port: int
    admin_token: str = field(repr=False)
    api_token: str = field(repr=False)  # POOL_API_TOKEN: every caller of the internal API sends it
    api_next_token: str = field(repr=False)  # POOL_API_NEXT_TOKEN: accepted beside it during a changeover
    max_body_bytes: int  # an internal API request body larger than this is refused (413) before it is read whole
    services: tuple[str, ...]
    split_countries: frozenset[str]  # countries reported per operator; every other country is reported as `any`
    country_maps: dict[str, dict[str, str]]  # upstream -> {our country -> upstream's country code}
    upstreams: tuple[str, ...]
    cancel_limit: int
    sample_size: int
    redis_max_connections: int
    retention_s: int  # AUDIT_RETENTION_DAYS: finished activations, their trail and per-event keys expire after it
    claim_hold_s: float  # an api-edge claim neither confirmed nor released within this is released by the sweeper
    # a device with heartbeats that fell silent this long counts as offline until its next one; 0 = off
    device_timeout_s: float
    suspect_streak: int  # activations in a row that ended without an SMS after which a SIM is suspect
    suspect_offline: bool  # take a suspect SIM offline by itself
    earnings_days: int  # how long a day's earnings are kept
    number_check: bool  # numbers must be valid mobile numbers of their row's country (grizzly_pool.phones)
    number_regions: dict[str, str]  # our country code -> ISO region, for codes that are not one
    log_level: str
    redis_password: str = field(repr=False, default="")  # REDIS_PASSWORD, from the Secret

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, require_token: bool = True) -> Settings:
        upstreams = env_list(env, "UPSTREAMS", ("grizzly",))
        maps = {}
        for upstream in upstreams:
            name = "POOL_COUNTRY_MAP_" + upstream.upper().replace("-", "_")
            maps[upstream] = parse_country_map(name, env.get(name, ""))
        services = env_list(env, "POOL_SERVICES", DEFAULT_SERVICES)
        if not services:
            raise SettingsError("POOL_SERVICES names no service")
        for service in services:
            if not service.isalnum():
                raise SettingsError(f"POOL_SERVICES: {service!r} is not a service code (letters and digits)")
        host = env_str(env, "POOL_HOST", "0.0.0.0")  # a container's service port
        next_token = env.get("POOL_API_NEXT_TOKEN", "").strip()  # optional
        if next_token and require_token:
            next_token = env_secret(env, "POOL_API_NEXT_TOKEN", loopback=is_loopback(host))
        admin_host = env_str(env, "POOL_ADMIN_HOST", "0.0.0.0")
        return cls(
            redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
            key_prefix=env.get("POOL_KEY_PREFIX", "gp:"),
            host=host,
            port=env_int(env, "POOL_PORT", 8081, minimum=1),
            admin_host=admin_host,
            admin_port=env_int(env, "POOL_ADMIN_PORT", 8082, minimum=1),
            admin_token=env_secret(env, "POOL_ADMIN_TOKEN", loopback=is_loopback(admin_host)) if require_token else "",
            api_token=env_secret(env, "POOL_API_TOKEN", loopback=is_loopback(host)) if require_token else "",
            api_next_token=next_token if require_token else "",
            # a /v1/batch of BATCH_MAX claims, each with its platform request for the audit trail (up to ~20 kB
            # with a long exceptionPhoneSet), must fit
            max_body_bytes=env_int(env, "POOL_MAX_BODY_BYTES", 32 << 20, minimum=1024),
            services=tuple(s.lower() for s in services),
            split_countries=frozenset(c.lower() for c in env_list(env, "POOL_SPLIT_COUNTRIES", ())),
            country_maps=maps,
            upstreams=upstreams,
            cancel_limit=env_int(env, "POOL_CANCEL_LIMIT", 4, minimum=1),
            sample_size=env_int(env, "POOL_CLAIM_SAMPLE", 16, minimum=1),
            redis_max_connections=env_int(env, "POOL_REDIS_MAX_CONNECTIONS", 256, minimum=1),
            retention_s=audit_retention_s(env),
            claim_hold_s=env_float(env, "POOL_CLAIM_HOLD_S", 300.0, minimum=0.5),
            device_timeout_s=env_float(env, "POOL_DEVICE_TIMEOUT_S", 300.0, minimum=0.0),
            suspect_streak=env_int(env, "POOL_SUSPECT_STREAK", 5, minimum=1),
            suspect_offline=env_bool(env, "POOL_SUSPECT_OFFLINE", False),
            earnings_days=env_int(env, "POOL_EARNINGS_DAYS", 800, minimum=1),
            number_check=_number_check(env),
            number_regions=_number_regions(env),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            redis_password=env.get("REDIS_PASSWORD", "").strip(),
        )


def _number_check(env: Mapping[str, str]) -> bool:
    value = env.get("POOL_NUMBER_CHECK", "strict").strip().lower()
    if value not in ("strict", "off"):
        raise SettingsError(f"POOL_NUMBER_CHECK must be strict or off, got {value[:16]!r}")
    return value == "strict"


def _number_regions(env: Mapping[str, str]) -> dict[str, str]:
    """POOL_NUMBER_REGIONS="16:GB,0:RU": our country code -> ISO 3166 region of its numbers"""
    regions: dict[str, str] = {}
    for pair in env_list(env, "POOL_NUMBER_REGIONS", ()):
        ours, _, region = pair.partition(":")
        if not ours.strip() or len(region.strip()) != 2 or not region.strip().isalpha():
            raise SettingsError(f"POOL_NUMBER_REGIONS: {pair[:32]!r} is not ours:REGION (e.g. 16:GB)")
        regions[ours.strip().lower()] = region.strip().upper()
    return regions
