"""docs/configuration.md lists every environment variable the code reads, and nothing it no longer reads."""

from __future__ import annotations

import re

from tests.deploy import env_scan

DOC = env_scan.ROOT / "docs" / "configuration.md"
ROW = re.compile(r"^\|\s*(`[^|]+`)\s*\|(.*)\|\s*$")


def documented_rows() -> dict[str, str]:
    """variable -> the rest of its table row."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            for name in re.findall(r"`([A-Z][A-Z0-9_<>]*)`", match.group(1)):
                rows[name] = match.group(2)
    return rows


def test_every_variable_read_in_code_is_documented() -> None:
    rows = documented_rows()
    missing = sorted(env_scan.all_variable_names() - set(rows))
    assert not missing, f"add to docs/configuration.md: {missing}"


def test_every_documented_variable_is_read_in_code() -> None:
    stale = sorted(set(documented_rows()) - env_scan.all_variable_names())
    assert not stale, f"documented but read nowhere (renamed or removed?): {stale}"


def test_secrets_are_marked_as_secrets() -> None:
    rows = documented_rows()
    for service in env_scan.scan_all().values():
        for var in service.vars.values():
            if var.secret:
                assert "secret" in rows[var.name].lower(), f"{var.name} is read with env_secret"


def test_variables_of_each_service_are_found_by_the_scanner() -> None:
    """The scanner still sees the variables every service is known to read (it is not silently blind)."""
    scanned = env_scan.scan_all()
    expected = {
        "api-edge": {"EDGE_PORT", "EDGE_POOL_URL", "UPSTREAMS", "UPSTREAM_<NAME>_KEY"},
        "pool": {"POOL_PORT", "POOL_ADMIN_PORT", "POOL_ADMIN_TOKEN", "REDIS_URL"},
        "sms-ingest": {"INGEST_PORT", "INGEST_TOKEN", "REDIS_URL", "KAFKA_BOOTSTRAP", "KAFKA_TOPIC_PREFIX"},
        "pusher": {"PUSHER_PORT", "PUSHER_POOL_URL", "PUSHER_RETRY_S", "REDIS_URL", "KAFKA_BOOTSTRAP"},
    }
    for service, names in expected.items():
        assert names <= set(scanned[service].vars), service
    assert scanned["pool"].vars["POOL_ADMIN_TOKEN"].required
    assert scanned["pusher"].vars["UPSTREAM_<NAME>_KEY"].secret
    assert not scanned["sms-ingest"].vars["INGEST_ANDROID_SECRET"].required  # optional: defaults to the token
