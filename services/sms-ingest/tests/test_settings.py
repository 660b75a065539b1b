from __future__ import annotations

import pytest
from grizzly_common.settings import SettingsError
from grizzly_ingest.settings import Settings, parse_number_map

BASE = {"INGEST_TOKEN": "a-real-token-123"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.port == 8083 and settings.dedupe_ttl_s == 7 * 86400 and settings.multipart_timeout_s == 120
    assert settings.max_body_bytes == 1 << 20 and settings.topic_partitions == 12 and settings.android_max_skew_s == 300
    assert settings.android_secret == settings.goip_token == "" and settings.request_deadline_s == 5.0
    assert "a-real-token-123" not in repr(settings)


def test_per_event_keys_never_outlive_the_audit_retention() -> None:
    assert Settings.from_env(dict(BASE, AUDIT_RETENTION_DAYS="1")).dedupe_ttl_s == 86400
    assert Settings.from_env(dict(BASE, AUDIT_RETENTION_DAYS="30")).dedupe_ttl_s == 7 * 86400


def test_number_maps_merge() -> None:
    settings = Settings.from_env(
        dict(
            BASE,
            INGEST_DEVICE_NUMBERS="gw:1A=+447700900301, gw2=447700900400",
            INGEST_ANDROID_NUMBERS="px:1=447700900201",
        )
    )
    assert settings.device_numbers == {("gw", "1A"): 447700900301, ("gw2", ""): 447700900400, ("px", "1"): 447700900201}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "INGEST_TOKEN"),
        ({"INGEST_TOKEN": "changeme"}, "INGEST_TOKEN"),
        (dict(BASE, INGEST_MULTIPART_TIMEOUT_S="x"), "INGEST_MULTIPART_TIMEOUT_S"),
        (dict(BASE, INGEST_ANDROID_NUMBERS="px:1"), "INGEST_ANDROID_NUMBERS"),
        (dict(BASE, INGEST_DEVICE_NUMBERS="px:1=12ab"), "INGEST_DEVICE_NUMBERS"),
        (dict(BASE, INGEST_ANDROID_SECRET="short"), "INGEST_ANDROID_SECRET"),
        (dict(BASE, INGEST_GOIP_TOKEN="REPLACE_ME_goip"), "INGEST_GOIP_TOKEN"),
        (dict(BASE, INGEST_GOIP_TOKEN="a-real-token-123"), "INGEST_GOIP_TOKEN"),  # the same as INGEST_TOKEN
        (dict(BASE, INGEST_POOL_URL="http://pool:8081"), "POOL_API_TOKEN"),
        ({"INGEST_TOKEN": "local-dev-ingest-token"}, "INGEST_TOKEN"),  # an example value on 0.0.0.0
        (dict(BASE, INGEST_REQUEST_DEADLINE_S="0.1"), "INGEST_REQUEST_DEADLINE_S"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_number_map_parser() -> None:
    assert parse_number_map("X", "") == {}


def test_goip_udp_is_off_by_default_and_its_passwords_never_shown() -> None:
    assert Settings.from_env(BASE).goip_udp_port == 0 and Settings.from_env(BASE).seen_interval_s == 1.0
    settings = Settings.from_env(
        dict(BASE, INGEST_GOIP_UDP_PORT="44444", INGEST_GOIP_LINES="goip1:secret-pw-9:bank-a:1,goip2:s:e:c:bank-a:")
    )
    assert settings.goip_udp_port == 44444 and settings.goip_lines["goip2"].password == "s:e:c"
    assert settings.goip_lines["goip1"].device == "bank-a" and settings.goip_lines["goip2"].slot == ""
    assert "secret-pw-9" not in repr(settings) and "goip1" not in repr(settings)


def test_goip_port_without_lines_or_a_bad_line_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="INGEST_GOIP_LINES is empty"):
        Settings.from_env(dict(BASE, INGEST_GOIP_UDP_PORT="44444"))
    with pytest.raises(SettingsError, match="INGEST_GOIP_LINES") as info:
        Settings.from_env(dict(BASE, INGEST_GOIP_UDP_PORT="44444", INGEST_GOIP_LINES="goip1:secret-pw-9"))
    assert "secret-pw-9" not in str(info.value)
