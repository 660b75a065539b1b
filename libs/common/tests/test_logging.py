"""JSON log lines: one object per line, fields as keys, secrets redacted by name and in messages."""

from __future__ import annotations

import logging

import orjson
import pytest
from grizzly_common.logging import JsonFormatter, log_fields, redact


def line(message: str, *args: object, exc: bool = False, fields: dict[str, object] | None = None) -> dict[str, object]:
    record = logging.LogRecord("grizzly.test", logging.WARNING, __file__, 1, message, args, None)
    if fields:
        record.fields = log_fields(**fields)["fields"]
    if exc:
        try:
            raise ValueError("key=s3cr3t-value")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    return orjson.loads(JsonFormatter("pusher").format(record))  # type: ignore[no-any-return]


def test_a_line_is_one_json_object_with_the_fields() -> None:
    entry = line("pushed %s", "once", fields={"sms_id": 7, "upstream": "grizzly"})
    assert entry["msg"] == "pushed once"
    assert (entry["level"], entry["service"], entry["logger"]) == ("warning", "pusher", "grizzly.test")
    assert (entry["sms_id"], entry["upstream"]) == (7, "grizzly")
    assert str(entry["ts"]).endswith("Z")


@pytest.mark.parametrize("name", ["key", "token", "api_key", "upstream_key", "password", "authorization", "secret"])
def test_fields_named_like_a_secret_are_redacted(name: str) -> None:
    assert line("x", fields={name: "s3cr3t-value"})[name] == "***"


@pytest.mark.parametrize("name", ["sms_id", "keys_seen", "monkey", "tokens_used_total"])
def test_other_fields_are_kept(name: str) -> None:
    assert line("x", fields={name: 5})[name] == 5


@pytest.mark.parametrize(
    "text",
    [
        "key=s3cr3t-value",
        '{"key": "s3cr3t-value", "action": "GET_NUMBER"}',
        "Authorization: Bearer s3cr3t-value",
        "authorization=Basic s3cr3t-value",
        "GET /v1/goip?token=s3cr3t-value&x=1",
        "password: 's3cr3t-value'",
    ],
)
def test_secrets_in_messages_are_redacted(text: str) -> None:
    assert "s3cr3t" not in redact(text)
    assert "s3cr3t" not in str(line(text)["msg"])


def test_tracebacks_are_redacted() -> None:
    entry = line("failed", exc=True)
    assert "ValueError" in str(entry["exc"]) and "s3cr3t" not in str(entry["exc"])


@pytest.mark.parametrize(
    "text",
    [
        "pushing with Bearer s3cr3t-value-0001",
        "redis://:s3cr3t-value@redis:6379/0",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzM2NyM3QifQ.c2lnbmF0dXJl",
        "hex " + "5" * 64,
        "b64 s3cr3t" + "A" * 60,
    ],
)
def test_values_shaped_like_a_secret_are_redacted_whatever_they_are_called(text: str) -> None:
    assert "s3cr3t" not in redact(text) and "5" * 40 not in redact(text) and "eyJ" not in redact(text)


def test_nested_and_string_fields_are_redacted_too() -> None:
    entry = line(
        "x", fields={"request": {"action": "GET_NUMBER", "key": "s3cr3t-value"}, "error": "Bearer s3cr3t-value"}
    )
    assert entry["request"] == {"action": "GET_NUMBER", "key": "***"} and entry["error"] == "Bearer ***"


def test_ids_and_numbers_are_kept() -> None:
    text = "claim 0123456789abcdef0123456789abcdef number 79001234567 path /usr/lib/python3.11/site-packages/x.py"
    assert redact(text) == text
