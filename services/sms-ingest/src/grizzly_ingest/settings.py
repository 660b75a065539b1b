"""sms-ingest settings, read once from the environment in main() (errors name the variable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from grizzly_common.settings import (
    LOCAL_DURABILITY,
    SettingsError,
    TopicDurability,
    audit_retention_s,
    env_float,
    env_int,
    env_secret,
    env_str,
    is_loopback,
    topic_durability,
)

from grizzly_ingest.goip_protocol import Line, parse_lines
from grizzly_ingest.text import normalise_number


def parse_number_map(name: str, value: str) -> dict[tuple[str, str], int]:
    """ "dev1:1=447700900123,dev1:2=447700900124,dev3=447700900125" -> {(device, slot): number}; slot "" = any."""
    result: dict[tuple[str, str], int] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        where, sep, number_text = item.rpartition("=")
        if not sep or not where.strip():
            raise SettingsError(f"{name}: {item!r} is not device:slot=number")
        device, _, slot = where.strip().partition(":")
        try:
            number = normalise_number(number_text)
        except ValueError as exc:
            raise SettingsError(f"{name}: {item!r}: {exc}") from None
        result[(device.strip(), slot.strip())] = number
    return result


@dataclass(frozen=True)
class Settings:
    port: int
    host: str
    redis_url: str
    kafka_bootstrap: str
    topic_prefix: str
    log_level: str
    token: str = field(repr=False)  # INGEST_TOKEN: Bearer token of the generic endpoints (/v1/sms, /v1/call)
    android_secret: str = field(repr=False)  # signing key of the Android app's webhooks; "": endpoint off
    goip_token: str = field(repr=False, default="")  # INGEST_GOIP_TOKEN: GoIP/Ejoin pushes; "": endpoint off
    android_max_skew_s: int = 300
    pool_url: str = ""  # where /v1/resolve answers (device, slot) -> number; "" = static maps only
    pool_timeout_s: float = 2.0
    pool_token: str = field(repr=False, default="")  # POOL_API_TOKEN (when INGEST_POOL_URL is set)
    redis_password: str = field(repr=False, default="")  # REDIS_PASSWORD, from the Secret
    device_numbers: Mapping[tuple[str, str], int] = field(default_factory=dict)
    topic_partitions: int = 4
    topic_durability: TopicDurability = LOCAL_DURABILITY
    dedupe_ttl_s: int = 7 * 86400
    dedupe_no_ts_ttl_s: int = 120
    multipart_timeout_s: int = 120
    sweep_interval_s: float = 5.0
    max_body_bytes: int = 1 << 20
    publish_timeout_s: float = 10.0
    request_deadline_s: float = 5.0  # every request is answered within this (503 when the work is not done)
    redis_prefix: str = ""
    seen_interval_s: float = 1.0  # heartbeats go to the pool's /v1/seen at most this often
    goip_udp_port: int = 0  # the GoIP SMS-server protocol (UDP); 0 = off
    goip_lines: Mapping[str, Line] = field(default_factory=dict, repr=False)  # by SMS-server id; holds passwords
    goip_sim_ttl_s: int = 600  # a line's keepalive data (number, signal, IMEI, ...) is kept this long
    goip_max_pending: int = 1000  # datagrams handled at once; beyond, they are dropped (the device resends)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        host = env_str(env, "INGEST_HOST", "0.0.0.0")
        loopback = is_loopback(host)
        token = env_secret(env, "INGEST_TOKEN", loopback=loopback)
        # each source its own secret: a leaked gateway password does not let anyone post as another source
        android_secret = env.get("INGEST_ANDROID_SECRET", "").strip()
        if android_secret:
            android_secret = env_secret(env, "INGEST_ANDROID_SECRET", loopback=loopback)
        goip_token = env.get("INGEST_GOIP_TOKEN", "").strip()
        if goip_token:
            goip_token = env_secret(env, "INGEST_GOIP_TOKEN", loopback=loopback)
        if len({token, android_secret, goip_token} - {""}) != len(
            [s for s in (token, android_secret, goip_token) if s]
        ):
            raise SettingsError("INGEST_TOKEN, INGEST_ANDROID_SECRET and INGEST_GOIP_TOKEN must differ from each other")
        numbers = parse_number_map("INGEST_DEVICE_NUMBERS", env_str(env, "INGEST_DEVICE_NUMBERS", ""))
        numbers.update(parse_number_map("INGEST_ANDROID_NUMBERS", env_str(env, "INGEST_ANDROID_NUMBERS", "")))
        multipart_timeout = env_int(env, "INGEST_MULTIPART_TIMEOUT_S", 120, minimum=1)
        pool_url = env_str(env, "INGEST_POOL_URL", "").rstrip("/")
        goip_udp_port = env_int(env, "INGEST_GOIP_UDP_PORT", 0, minimum=0)
        try:
            goip_lines = parse_lines("INGEST_GOIP_LINES", env.get("INGEST_GOIP_LINES", ""))
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if goip_udp_port and not goip_lines:
            raise SettingsError("INGEST_GOIP_UDP_PORT is set but INGEST_GOIP_LINES is empty: no GoIP could log in")
        return cls(
            port=env_int(env, "INGEST_PORT", 8083, minimum=1),
            host=host,
            redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
            kafka_bootstrap=env_str(env, "KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            topic_prefix=env_str(env, "KAFKA_TOPIC_PREFIX", ""),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            token=token,
            android_secret=android_secret,
            goip_token=goip_token,
            android_max_skew_s=env_int(env, "INGEST_ANDROID_MAX_SKEW_S", 300, minimum=1),
            pool_url=pool_url,
            redis_password=env.get("REDIS_PASSWORD", "").strip(),
            pool_token=env_secret(env, "POOL_API_TOKEN", loopback=is_loopback(pool_url)) if pool_url else "",
            pool_timeout_s=env_float(env, "INGEST_POOL_TIMEOUT_S", 2.0, minimum=0.1),
            device_numbers=numbers,
            topic_partitions=env_int(env, "INGEST_TOPIC_PARTITIONS", 12, minimum=1),
            topic_durability=topic_durability(env),
            # fingerprints and multipart texts are per-event keys: never kept past the audit retention
            dedupe_ttl_s=min(env_int(env, "INGEST_DEDUPE_TTL_S", 7 * 86400, minimum=1), audit_retention_s(env)),
            dedupe_no_ts_ttl_s=env_int(env, "INGEST_DEDUPE_NO_TS_TTL_S", 120, minimum=1),
            multipart_timeout_s=multipart_timeout,
            sweep_interval_s=env_float(
                env, "INGEST_SWEEP_INTERVAL_S", min(5.0, max(0.2, multipart_timeout / 4)), minimum=0.05
            ),
            max_body_bytes=env_int(env, "INGEST_MAX_BODY_BYTES", 1 << 20, minimum=1024),
            publish_timeout_s=env_float(env, "INGEST_PUBLISH_TIMEOUT_S", 10.0, minimum=0.5),
            request_deadline_s=env_float(env, "INGEST_REQUEST_DEADLINE_S", 5.0, minimum=0.5),
            redis_prefix=env_str(env, "INGEST_REDIS_PREFIX", ""),
            seen_interval_s=env_float(env, "INGEST_SEEN_INTERVAL_S", 1.0, minimum=0.05),
            goip_udp_port=goip_udp_port,
            goip_lines=goip_lines,
            goip_sim_ttl_s=env_int(env, "INGEST_GOIP_SIM_TTL_S", 600, minimum=30),
            goip_max_pending=env_int(env, "INGEST_GOIP_MAX_PENDING", 1000, minimum=1),
        )
