"""The pusher's settings, read once from the environment in main()."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from grizzly_common.settings import (
    SettingsError,
    TopicDurability,
    Upstream,
    audit_retention_s,
    env_float,
    env_int,
    env_secret,
    env_str,
    is_loopback,
    topic_durability,
    upstreams_from_env,
)


@dataclass(frozen=True)
class Settings:
    redis_url: str
    kafka_bootstrap: str
    topic_prefix: str
    log_level: str
    upstreams: tuple[Upstream, ...]
    host: str
    port: int
    pool_url: str  # the pool's internal API, for POST /v1/lookup
    pool_timeout_s: float
    retry_s: float  # delay between two attempts of one push (the protocol says 10 s)
    concurrency: int  # pushes in flight at once, per process
    ledger_ttl_s: int  # how long "delivered" is remembered per (upstream, smsId)
    max_retry_age_s: int  # after this age (since ingestion) a failing push is parked, not retried
    lease_s: float  # how long a push's owner holds it before another pusher may take it over; > the slowest push
    group_id: str
    topic_partitions: int  # used only when the pusher creates the inbound topic itself
    topic_durability: TopicDurability  # likewise
    shutdown_grace_s: float  # SIGTERM: in-flight pushes get this long to finish before they are handed back
    retry_poll_s: float  # how often the retry schedule is polled for due tasks
    audit_retention_s: int  # AUDIT_RETENTION_DAYS: the audit events the pusher appends expire after this
    pool_token: str = field(repr=False, default="")  # POOL_API_TOKEN, sent to the pool's internal API
    redis_password: str = field(repr=False, default="")  # REDIS_PASSWORD, from the Secret
    admin_token: str = field(default="", repr=False)  # PUSHER_ADMIN_TOKEN: the /admin routes; "" = they are off
    sms_log_max: int = 10_000  # PUSHER_SMS_LOG_MAX: SMS kept in the console's recent log (activity.py)

    @property
    def hold_s(self) -> float:
        """An owner's hold on a push: never shorter than the retry delay, so a crash never brings a retry sooner."""
        return max(self.lease_s, self.retry_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        upstreams = upstreams_from_env(env)
        slowest = max(u.push_timeout_s for u in upstreams)
        lease_s = env_float(env, "PUSHER_LEASE_S", max(30.0, 2 * slowest + 10), minimum=1.0)
        if lease_s <= slowest:
            raise SettingsError(f"PUSHER_LEASE_S must exceed the slowest UPSTREAM_*_PUSH_TIMEOUT_S ({slowest}s)")
        ledger_ttl_s = env_int(env, "PUSHER_LEDGER_TTL_S", 30 * 86400, minimum=1)
        max_retry_age_s = env_int(env, "PUSHER_MAX_RETRY_AGE_S", 86400, minimum=1)
        if ledger_ttl_s < max_retry_age_s:
            # a push may be retried (and its record read again) until then: the ledger must still say "delivered"
            raise SettingsError(
                f"PUSHER_LEDGER_TTL_S ({ledger_ttl_s}) must be at least PUSHER_MAX_RETRY_AGE_S ({max_retry_age_s})"
            )
        pool_url = env_str(env, "PUSHER_POOL_URL", "http://127.0.0.1:8081").rstrip("/")
        host = env_str(env, "PUSHER_HOST", "0.0.0.0")  # a container listens on all interfaces
        return cls(
            redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
            kafka_bootstrap=env_str(env, "KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            topic_prefix=env_str(env, "KAFKA_TOPIC_PREFIX", ""),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            upstreams=upstreams,
            host=host,
            port=env_int(env, "PUSHER_PORT", 8084, minimum=1),
            pool_url=pool_url,
            pool_token=env_secret(env, "POOL_API_TOKEN", loopback=is_loopback(pool_url)),
            redis_password=env.get("REDIS_PASSWORD", "").strip(),
            pool_timeout_s=env_float(env, "PUSHER_POOL_TIMEOUT_S", 3.0, minimum=0.1),
            retry_s=env_float(env, "PUSHER_RETRY_S", 10.0, minimum=0.1),
            concurrency=env_int(env, "PUSHER_CONCURRENCY", 64, minimum=1),
            ledger_ttl_s=ledger_ttl_s,
            max_retry_age_s=max_retry_age_s,
            lease_s=lease_s,
            group_id=env_str(env, "PUSHER_GROUP_ID", "grizzly-pusher"),
            topic_partitions=env_int(env, "PUSHER_TOPIC_PARTITIONS", 12, minimum=1),
            topic_durability=topic_durability(env),
            shutdown_grace_s=env_float(env, "PUSHER_SHUTDOWN_GRACE_S", 20.0, minimum=1.0),
            retry_poll_s=env_float(env, "PUSHER_RETRY_POLL_S", 0.2, minimum=0.01),
            audit_retention_s=audit_retention_s(env),
            sms_log_max=env_int(env, "PUSHER_SMS_LOG_MAX", 10_000, minimum=1),
            admin_token=env_secret(env, "PUSHER_ADMIN_TOKEN", loopback=is_loopback(host))
            if env.get("PUSHER_ADMIN_TOKEN", "").strip()
            else "",
        )

    def upstream(self, name: str) -> Upstream | None:
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        return None
