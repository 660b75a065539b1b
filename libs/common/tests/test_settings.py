"""Shared settings helpers: retention and topic durability read once, errors name the variable."""

from __future__ import annotations

import pytest
from grizzly_common.settings import (
    SettingsError,
    TopicDurability,
    audit_retention_s,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    is_loopback,
    topic_durability,
    upstreams_from_env,
)


def test_audit_retention_defaults_to_90_days_and_takes_fractions() -> None:
    assert audit_retention_s({}) == 90 * 86400
    assert audit_retention_s({"AUDIT_RETENTION_DAYS": "0.0001"}) == 9
    with pytest.raises(SettingsError, match="AUDIT_RETENTION_DAYS"):
        audit_retention_s({"AUDIT_RETENTION_DAYS": "-1"})


def test_topic_durability_defaults_and_bounds() -> None:
    assert topic_durability({}) == TopicDurability(1, 1)
    assert topic_durability({"KAFKA_REPLICATION_FACTOR": "3"}) == TopicDurability(3, 2)
    with pytest.raises(SettingsError, match="KAFKA_MIN_INSYNC_REPLICAS"):
        topic_durability({"KAFKA_REPLICATION_FACTOR": "2", "KAFKA_MIN_INSYNC_REPLICAS": "3"})


def test_env_helpers_cast_once_and_name_the_variable() -> None:
    env = {"N": " 5 ", "F": "0.5", "B": "yes", "L": "a, b,,c", "EMPTY": "  "}
    assert env_int(env, "N", 1) == 5 and env_int(env, "EMPTY", 7) == 7
    assert env_float(env, "F", 1.0) == 0.5
    assert env_bool(env, "B", False) is True and env_bool(env, "MISSING", False) is False
    assert env_list(env, "L", ()) == ("a", "b", "c")
    assert env_str(env, "MISSING", "d") == "d"
    with pytest.raises(SettingsError, match="X_N"):
        env_int({"X_N": "many"}, "X_N", 1)
    with pytest.raises(SettingsError, match="X_N"):
        env_int({"X_N": "0"}, "X_N", 1, minimum=1)
    with pytest.raises(SettingsError, match="X_F"):
        env_float({"X_F": "fast"}, "X_F", 1.0)
    with pytest.raises(SettingsError, match="X_B"):
        env_bool({"X_B": "maybe"}, "X_B", True)


@pytest.mark.parametrize("value", [None, "", "changeme", "change-me", "short1"])
def test_placeholder_secrets_are_refused_without_echoing_them(value: str | None) -> None:
    env = {} if value is None else {"S_KEY": value}
    with pytest.raises(SettingsError, match="S_KEY") as raised:
        env_secret(env, "S_KEY")
    assert not value or value not in str(raised.value).replace("S_KEY", "")


@pytest.mark.parametrize("value", ["REPLACE_ME_random_admin_token", "replace-me-please"])
def test_example_values_of_the_repository_are_never_secrets(value: str) -> None:
    for loopback in (False, True):
        with pytest.raises(SettingsError, match="S_KEY"):
            env_secret({"S_KEY": value}, "S_KEY", loopback=loopback)


def test_local_dev_values_only_on_loopback() -> None:
    env = {"S_KEY": "local-dev-admin-token"}
    with pytest.raises(SettingsError, match="S_KEY.*loopback"):
        env_secret(env, "S_KEY")
    assert env_secret(env, "S_KEY", loopback=True) == "local-dev-admin-token"


@pytest.mark.parametrize(
    ("where", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("http://127.0.0.1:8081", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("http://pool:8081", False), ("", False), ("https://[::1]:1/", True)],
)  # fmt: skip
def test_is_loopback(where: str, loopback: bool) -> None:
    assert is_loopback(where) is loopback


def test_upstreams_each_with_its_own_key() -> None:
    env = {"UPSTREAMS": "grizzly,sms-hub", "UPSTREAM_GRIZZLY_KEY": "k" * 12, "UPSTREAM_SMS_HUB_KEY": "h" * 12}
    grizzly, hub = upstreams_from_env(env)
    assert (grizzly.name, hub.name, hub.gzip, hub.push_timeout_s) == ("grizzly", "sms-hub", False, 5.0)
    assert "k" * 12 not in repr(grizzly)
    with pytest.raises(SettingsError, match="share one KEY"):
        upstreams_from_env({**env, "UPSTREAM_SMS_HUB_KEY": "k" * 12})
    with pytest.raises(SettingsError, match="UPSTREAMS"):
        upstreams_from_env({"UPSTREAMS": "bad name!"})
