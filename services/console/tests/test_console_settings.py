"""The console's settings: operators and their tokens, placeholder secrets, loopback-only example values."""

from __future__ import annotations

import pytest
from console_fakes import ENV
from grizzly_common.settings import SettingsError
from grizzly_console.settings import Settings


def test_defaults_and_operators() -> None:
    settings = Settings.from_env(ENV)
    assert (settings.host, settings.port, settings.session_ttl_s) == ("0.0.0.0", 8085, 43200)
    assert settings.pool_admin_url == "http://127.0.0.1:8082" and settings.pusher_admin_url == "http://127.0.0.1:8084"
    assert [o.name for o in settings.operators] == ["admin", "alice"]
    assert "test-operator" not in repr(settings) and "session-secret" not in repr(settings)


def test_an_operator_name_with_punctuation_reads_its_token_from_an_upper_case_variable() -> None:
    env = {
        **ENV,
        "CONSOLE_OPERATORS": "ops.night@farm-2",
        "CONSOLE_OPERATOR_OPS_NIGHT_FARM_2_TOKEN": "night-shift-token-0001",
    }
    assert [o.name for o in Settings.from_env(env).operators] == ["ops.night@farm-2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CONSOLE_OPERATORS": ""}, "CONSOLE_OPERATORS is required"),
        ({"CONSOLE_OPERATORS": "admin,bob"}, "CONSOLE_OPERATOR_BOB_TOKEN is required"),
        ({"CONSOLE_OPERATORS": "a dmin"}, "not a valid name"),
        ({"CONSOLE_OPERATORS": "admin,admin"}, "names an operator twice"),
        ({"CONSOLE_OPERATOR_ALICE_TOKEN": ENV["CONSOLE_OPERATOR_ADMIN_TOKEN"]}, "share one"),
        ({"CONSOLE_OPERATOR_ADMIN_TOKEN": "changeme"}, "placeholder"),
        ({"CONSOLE_SESSION_SECRET": "short-secret"}, "at least 16"),
        ({"CONSOLE_SESSION_SECRET": ""}, "CONSOLE_SESSION_SECRET is required"),
        ({"POOL_ADMIN_TOKEN": ""}, "POOL_ADMIN_TOKEN is required"),
        ({"CONSOLE_COOKIE_SECURE": "maybe"}, "CONSOLE_COOKIE_SECURE must be true or false"),
        ({"CONSOLE_SESSION_TTL_S": "10"}, "CONSOLE_SESSION_TTL_S must be >= 60"),
        ({"CONSOLE_OPERATOR_ADMIN_TOKEN": "short-token-1"}, "at least 16"),
        (
            {
                "CONSOLE_HOST": "127.0.0.1",
                "CONSOLE_FORWARDED_ALLOW_IPS": "127.0.0.1",
                "CONSOLE_SESSION_SECRET": "local-dev-console-session-secret",
            },
            "local-dev example",
        ),  # behind a proxy
    ],
)
def test_bad_settings_name_the_variable_and_never_the_secret(change: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.from_env({**ENV, **change})
    assert ENV["CONSOLE_OPERATOR_ADMIN_TOKEN"] not in str(caught.value)


def test_local_dev_example_secrets_only_when_listening_on_loopback() -> None:
    local = {
        **ENV,
        "CONSOLE_SESSION_SECRET": "local-dev-console-session",
        "CONSOLE_OPERATOR_ADMIN_TOKEN": "local-dev-admin",
    }
    with pytest.raises(SettingsError, match="local-dev example"):
        Settings.from_env(local)  # 0.0.0.0: reachable from elsewhere
    assert Settings.from_env({**local, "CONSOLE_HOST": "127.0.0.1"}).host == "127.0.0.1"
