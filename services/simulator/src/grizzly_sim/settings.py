"""grizzly-sim settings, from SIM_* environment variables (read once in main())."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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

from grizzly_sim.checks import parse_dial_codes

FINISH_STATUSES = (1, 3, 4, 5)


def _weights(name: str, entries: tuple[str, ...]) -> tuple[tuple[int, float], ...]:
    weights = []
    for entry in entries:
        status, sep, weight = entry.partition(":")
        try:
            parsed = (int(status), float(weight))
        except ValueError:
            raise SettingsError(f"{name}: {entry!r} must look like STATUS:WEIGHT, e.g. 3:60") from None
        if not sep or parsed[0] not in FINISH_STATUSES or parsed[1] < 0:
            raise SettingsError(f"{name}: {entry!r} must be STATUS:WEIGHT with STATUS in 1,3,4,5 and WEIGHT >= 0")
        weights.append(parsed)
    if not weights or sum(w for _, w in weights) <= 0:
        raise SettingsError(f"{name} must give at least one status a positive weight")
    return tuple(weights)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    partner_url: str
    key: str = field(repr=False)
    seed: int | None
    poll_min_s: float
    poll_max_s: float
    take_p: float  # chance, per poll and per (country, operator, service) with a positive count, to take numbers
    take_max: int  # most numbers taken per key per poll
    max_open: int  # most activations open at once
    exclude_p: float  # chance a GET_NUMBER carries an exceptionPhoneSet
    hold_min_s: float  # how long an activation stays open before FINISH_ACTIVATION
    hold_max_s: float
    finish_weights: tuple[tuple[int, float], ...]
    repeat_finish_p: float  # chance a finish is sent again (idempotence)
    unknown_finish_p: float  # chance per poll to finish an activation id we never got (must be ERROR)
    fail_s: float  # pushes fail for this long after start-up
    fail_mode: str  # error | http500
    get_number_limit_s: float  # slower GET_NUMBER answers are violations
    request_timeout_s: float
    exit_finish_status: int  # finish what is still open with this status on shutdown; 0 leaves it open
    count_check: bool  # NO_NUMBERS right after a positive count (and no exclusions) is a violation
    ingest_url: str  # optional: inject an SMS for each issued number through the partner's own ingestion
    ingest_token: str = field(repr=False)
    sms_deadline_s: float  # an injected SMS not pushed within this is a violation (lost SMS)
    dial_codes: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        seed_text = env_str(env, "SIM_SEED", "")
        try:
            seed = int(seed_text) if seed_text else None
        except ValueError:
            raise SettingsError(f"SIM_SEED must be an integer, got {seed_text!r}") from None
        poll_min = env_float(env, "SIM_POLL_MIN_S", 10.0, minimum=0.01)
        poll_max = env_float(env, "SIM_POLL_MAX_S", 20.0, minimum=0.01)
        if poll_max < poll_min:
            raise SettingsError("SIM_POLL_MAX_S must be >= SIM_POLL_MIN_S")
        hold_min = env_float(env, "SIM_HOLD_MIN_S", 5.0, minimum=0.0)
        hold_max = env_float(env, "SIM_HOLD_MAX_S", 60.0, minimum=0.0)
        if hold_max < hold_min:
            raise SettingsError("SIM_HOLD_MAX_S must be >= SIM_HOLD_MIN_S")
        fail_mode = env_str(env, "SIM_FAIL_MODE", "error")
        if fail_mode not in ("error", "http500"):
            raise SettingsError(f"SIM_FAIL_MODE must be error or http500, got {fail_mode!r}")
        ingest_url = env_str(env, "SIM_INGEST_URL", "")
        partner_url = env_str(env, "SIM_PARTNER_URL", "http://127.0.0.1:8080/")
        try:
            dial_codes = parse_dial_codes(env_list(env, "SIM_COUNTRY_CODES", ()))
        except ValueError as exc:
            raise SettingsError(f"SIM_COUNTRY_CODES: {exc}") from None
        return cls(
            host=env_str(env, "SIM_HOST", "0.0.0.0"),
            port=env_int(env, "SIM_PORT", 8090, minimum=1),
            partner_url=partner_url,
            key=env_secret(env, "SIM_KEY", loopback=is_loopback(partner_url)),  # local-dev keys to loopback only
            seed=seed,
            poll_min_s=poll_min,
            poll_max_s=poll_max,
            take_p=_probability(env, "SIM_TAKE_P", 0.5),
            take_max=env_int(env, "SIM_TAKE_MAX", 2, minimum=1),
            max_open=env_int(env, "SIM_MAX_OPEN", 20, minimum=1),
            exclude_p=_probability(env, "SIM_EXCLUDE_P", 0.3),
            hold_min_s=hold_min,
            hold_max_s=hold_max,
            finish_weights=_weights(
                "SIM_FINISH_WEIGHTS", env_list(env, "SIM_FINISH_WEIGHTS", ("3:60", "4:25", "5:10", "1:5"))
            ),
            repeat_finish_p=_probability(env, "SIM_REPEAT_FINISH_P", 0.3),
            unknown_finish_p=_probability(env, "SIM_UNKNOWN_FINISH_P", 0.1),
            fail_s=env_float(env, "SIM_FAIL_S", 0.0, minimum=0.0),
            fail_mode=fail_mode,
            get_number_limit_s=env_float(env, "SIM_GET_NUMBER_LIMIT_S", 3.0, minimum=0.01),
            request_timeout_s=env_float(env, "SIM_REQUEST_TIMEOUT_S", 10.0, minimum=0.1),
            exit_finish_status=_exit_status(env),
            count_check=env_bool(env, "SIM_COUNT_CHECK", True),
            ingest_url=ingest_url,
            ingest_token=env_secret(env, "SIM_INGEST_TOKEN", loopback=is_loopback(ingest_url)) if ingest_url else "",
            sms_deadline_s=env_float(env, "SIM_SMS_DEADLINE_S", 60.0, minimum=0.1),
            dial_codes=dial_codes,
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
        )


def _exit_status(env: Mapping[str, str]) -> int:
    status = env_int(env, "SIM_EXIT_FINISH_STATUS", 5, minimum=0)
    if status not in (0, *FINISH_STATUSES):
        raise SettingsError(f"SIM_EXIT_FINISH_STATUS must be 0, 1, 3, 4 or 5, got {status}")
    return status


def _probability(env: Mapping[str, str], name: str, default: float) -> float:
    value = env_float(env, name, default, minimum=0.0)
    if value > 1.0:
        raise SettingsError(f"{name} must be between 0 and 1, got {value}")
    return value
