from __future__ import annotations

import pytest
from grizzly_common.settings import SettingsError
from grizzly_ingest.settings import Settings, parse_number_map

BASE = {"INGEST_TOKEN": "a-real-token-123"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.port == 8083 and settings.dedupe_ttl_s == 7 * 86400 and settings.multipart_timeout_s == 120
    assert settings.max_body_bytes == 1 << 20 and settings.topic_partitions == 12 and settings.android_max_skew_s == 300
    assert settings.android_secret == settings.token
    assert "a-real-token-123" not in repr(settings)


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
    ],
)
def test_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_number_map_parser() -> None:
    assert parse_number_map("X", "") == {}
