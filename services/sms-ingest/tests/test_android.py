from __future__ import annotations

import json

import pytest
from grizzly_ingest.errors import BadInput, BadSignature, StaleTimestamp
from grizzly_ingest.webhooks.android import expected_signature, parse, ping_device, verify_signature

SECRET = "android-signing-key"
BODY = json.dumps(
    {
        "deviceId": "ffffffffceb0b1db0000018e937c815b",
        "event": "sms:received",
        "id": "Ey6ECgOkVVFjz3CL48B8C",
        "payload": {
            "messageId": "abc",
            "message": "Android is always a good choice.",
            "phoneNumber": "6505551212",
            "simNumber": 1,
            "receivedAt": "2024-06-07T11:41:31.000+07:00",
        },
        "webhookId": "LreFUt-Z3sSq0JufY9uWB",
    }
).encode()


def test_signature_is_hmac_sha256_of_body_and_timestamp() -> None:
    signature = expected_signature(SECRET, BODY, "1717700000")
    verify_signature(SECRET, BODY, signature, "1717700000", 300, now_s=1717700100)
    verify_signature(SECRET, BODY, signature.upper(), "1717700000", 300, now_s=1717700100)


@pytest.mark.parametrize(
    ("signature", "timestamp", "error"),
    [("", "1717700000", BadSignature), ("00" * 32, "1717700000", BadSignature), ("sig", "", BadSignature)],
)
def test_wrong_or_missing_signature_is_refused(signature: str, timestamp: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_signature(SECRET, BODY, signature, timestamp, 300, now_s=1717700000)


def test_tampered_body_or_stale_timestamp_is_refused() -> None:
    signature = expected_signature(SECRET, BODY, "1717700000")
    with pytest.raises(BadSignature):
        verify_signature(SECRET, BODY + b" ", signature, "1717700000", 300, now_s=1717700000)
    with pytest.raises(StaleTimestamp):
        verify_signature(SECRET, BODY, signature, "1717700000", 300, now_s=1717700301)


def test_sms_received_is_parsed_with_device_slot_and_sender() -> None:
    message = parse(BODY)
    assert message is not None
    assert (message.device, message.slot, message.phone_from) == ("ffffffffceb0b1db0000018e937c815b", "1", "6505551212")
    assert message.text == "Android is always a good choice." and message.received_at_ms == 1717735291000
    assert message.number is None and message.source == "android" and message.source_id == "abc"


def test_other_events_are_ignored_and_null_sim_is_empty_slot() -> None:
    assert parse(json.dumps({"deviceId": "d", "event": "system:ping", "payload": {"health": {}}}).encode()) is None
    event = json.loads(BODY)
    event["payload"]["simNumber"] = None
    message = parse(json.dumps(event).encode())
    assert message is not None and message.slot == ""


def test_wrong_types_are_bad_input() -> None:
    event = json.loads(BODY)
    event["payload"]["message"] = 5
    with pytest.raises(BadInput):
        parse(json.dumps(event).encode())


def test_system_ping_names_its_device_other_events_do_not() -> None:
    ping = {"deviceId": "pixel-7", "event": "system:ping", "payload": {"health": {"status": "pass"}}}
    assert ping_device(json.dumps(ping).encode()) == "pixel-7"
    assert ping_device(json.dumps(dict(ping, event="sms:sent")).encode()) is None
    assert ping_device(json.dumps(dict(ping, deviceId="")).encode()) is None
