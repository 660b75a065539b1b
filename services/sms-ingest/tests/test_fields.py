"""Every source refuses each kind of hostile field with BadInput/BadJson (400), naming the field."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
from grizzly_common.events import MAX_LABEL_CHARS, MAX_SENDER_CHARS, MAX_TEXT_CHARS, MAX_TIME_MS, InboundMessage
from grizzly_ingest import cli, fields
from grizzly_ingest.errors import BadInput, BadJson, IngestError
from grizzly_ingest.model import Incoming
from grizzly_ingest.publisher import Publisher, checked
from grizzly_ingest.webhooks import android, generic, goip

NOW = 1_764_500_000_000  # 2025-11-30
DEEP = b"[" * 100_000 + b"]" * 100_000


def sms_body(**fields_: Any) -> bytes:
    body: dict[str, Any] = {"number": 447700900123, "from": "Telegram", "text": "code 1"}
    body.update(fields_)
    return json.dumps(body).encode()


def android_body(event: dict[str, Any] | None = None, **payload: Any) -> bytes:
    body: dict[str, Any] = {
        "deviceId": "dev-a",
        "event": "sms:received",
        "payload": {"message": "code 2", "phoneNumber": "+6505551212", "simNumber": 1},
    }
    body["payload"].update(payload)
    body.update(event or {})
    return json.dumps(body).encode()


def goip_body(*row: Any) -> bytes:
    base: list[Any] = [0, "1.01", 1735725600, "+15550002222", "", base64.b64encode(b"hi").decode()]
    base[: len(row)] = row
    return json.dumps({"type": "recv-sms", "sms": [base]}).encode()


# timestamps ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        1e300,  # the measured failure: answered SUCCESS, then the pusher choked on it
        -1,
        -1735725600000,
        10**20,
        "1e300",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "99999999999999999999999",
        MAX_TIME_MS + 1,
        "nan",
        "inf",
        True,
    ],
)
def test_absurd_timestamps_are_refused(value: Any) -> None:
    with pytest.raises(BadInput, match="received_at"):
        fields.timestamp("received_at", value, now=NOW)


@pytest.mark.parametrize("value", [NOW + 2 * 86_400_000, "1999-12-31T23:59:59Z", 0, "1980-01-06T00:00:00Z"])
def test_a_wrong_device_clock_gives_way_to_the_ingest_time(value: Any) -> None:
    """Two days ahead, before 2000, an unset modem clock: the SMS is kept, stamped when it reached us."""
    assert fields.timestamp("received_at", value, now=NOW) is None


def test_plausible_timestamps_pass() -> None:
    assert fields.timestamp("t", "2000-01-01T00:00:00Z", now=NOW) == 946_684_800_000
    assert fields.timestamp("t", NOW + 3_600_000, now=NOW) == NOW + 3_600_000  # clock an hour ahead
    assert fields.timestamp("t", 1735725600, now=NOW) == 1735725600000
    assert fields.timestamp("t", None, now=NOW) is None


def test_non_finite_numbers_are_bad_json_or_out_of_range() -> None:
    with pytest.raises(BadJson):
        generic.parse_sms(b'{"number": 447700900123, "from": "x", "text": "t", "received_at": NaN}')
    with pytest.raises(BadJson):
        generic.parse_sms(b'{"number": 447700900123, "from": "x", "text": "t", "received_at": Infinity}')
    with pytest.raises(BadInput):  # beyond a double: msgspec refuses it before we see it
        generic.parse_sms(b'{"number": 447700900123, "from": "x", "text": "t", "received_at": 1e400}')


# the generic webhook ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (sms_body(received_at=1e300), "received_at"),
        (sms_body(number=123456), "number"),  # below MIN_NUMBER
        (sms_body(number=10**15), "number"),  # 16 digits
        (sms_body(number=10**400), "number"),
        (sms_body(number=-447700900123), "number"),
        (sms_body(**{"from": "Tele\ngram"}), "from"),
        (sms_body(**{"from": "x\x00"}), "from"),
        (sms_body(**{"from": "x" * (MAX_SENDER_CHARS + 1)}), "from"),
        (sms_body(**{"from": "   "}), "from"),
        (sms_body(number=None, device="gw\r1"), "device"),
        (sms_body(device="d" * (MAX_LABEL_CHARS + 1)), "device"),
        (sms_body(slot="1\x7f"), "slot"),
        (sms_body(slot=10**200), "slot"),
        (sms_body(id="a\tb"), "id"),
        (sms_body(id="i" * (MAX_LABEL_CHARS + 1)), "id"),
        (sms_body(text="t" * (MAX_TEXT_CHARS + 1)), "text"),
        (sms_body(text="t" * 21000, part={"ref": 1, "total": 2, "seq": 1}), "text"),  # over its share
        (sms_body(part={"ref": "r\x00f", "total": 2, "seq": 1}), "part.ref"),
        (sms_body(part={"ref": 1, "total": 2, "seq": 3}), "part"),
        (sms_body(text=5), "text"),
        (sms_body(number=[447700900123]), "number"),
        (sms_body(part=[1, 2, 3]), "part"),
    ],
)
def test_generic_sms_refuses(body: bytes, field: str) -> None:
    with pytest.raises(BadInput, match=field.replace(".", r"\.")):
        generic.parse_sms(body)


@pytest.mark.parametrize(
    "body",
    [
        sms_body(kind="call", recording_type="audio/\nwav"),
        sms_body(kind="call_record", recording_b64="UklGRg==", recording_type="a" * (MAX_LABEL_CHARS + 1)),
        sms_body(kind="call", received_at=-5),
        sms_body(kind="call", **{"from": "\x1b[31m"}),
        sms_body(kind="call", text="t" * (MAX_TEXT_CHARS + 1)),
    ],
)
def test_generic_call_refuses(body: bytes) -> None:
    with pytest.raises(BadInput):
        generic.parse_call(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"number": 447700900123, "from": "x", "text": "t", "extra": ' + DEEP + b"}",
        b'{"number": 447700900123, "from": "x", "text": ' + DEEP + b"}",
        DEEP,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    ],
)
def test_deep_nesting_is_bad_json_not_a_recursion_error(body: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        generic.parse_sms(body)
    assert caught.value.status == 400


# Android ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (android_body(receivedAt=1e300), "receivedAt"),
        (android_body(receivedAt="9999-01-01T00:00:00Z"), "receivedAt"),
        (android_body(receivedAt=-1), "receivedAt"),
        (android_body(phoneNumber="+65\n05551212"), "phoneNumber"),
        (android_body(phoneNumber=""), "phoneNumber"),
        (android_body(simNumber=10**300), "simNumber"),
        (android_body(simNumber="1\x00"), "simNumber"),
        (android_body(message="m" * (MAX_TEXT_CHARS + 1)), "message"),
        (android_body(messageId="x" * 1000), "messageId"),
        (android_body({"deviceId": "dev\x00"}), "deviceId"),
        (android_body({"deviceId": "d" * (MAX_LABEL_CHARS + 1)}), "deviceId"),
        (android_body({"deviceId": " "}), "deviceId"),
        (android_body(message=["not", "text"]), "message"),
    ],
)
def test_android_refuses(body: bytes, field: str) -> None:
    with pytest.raises(BadInput, match=field):
        android.parse(body)


def test_android_deep_payload_is_bad_json() -> None:
    body = b'{"deviceId": "d", "event": "sms:received", "payload": ' + DEEP + b"}"
    with pytest.raises(BadJson):
        android.parse(body)


# GoIP / Ejoin -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        goip_body(0, "1.01", 1e300),
        goip_body(0, "1.01", -1),
        goip_body(0, "1.01", "3000-01-01T00:00:00Z"),
        goip_body(0, "1\n01"),
        goip_body(0, 10**300),
        goip_body(0, "1.01", 1735725600, "x" * (MAX_SENDER_CHARS + 1)),
        goip_body(0, "1.01", 1735725600, "se\x00nder"),
        goip_body(0, "1.01", 1735725600, "+1555", "4" * 100_000),
        goip_body(0, "1.01", 1735725600, "+1555", "", base64.b64encode(b"Slot: 1\x01\n\nhi").decode()),
        goip_body(0, "1.01", 1735725600, "+1555", "", base64.b64encode(b"t" * (MAX_TEXT_CHARS + 1)).decode()),
        goip_body(0, "1.01", 1735725600, ["nested"]),
        json.dumps({"type": "recv-sms", "sms": [[0, "1", 1, "s", "", "aGk="]] * (goip.MAX_ROWS + 1)}).encode(),
        b'{"type": "recv-sms", "sms": [[0, "1", ' + DEEP + b', "s", "", "aGk="]]}',
        b'{"type": "recv-sms", "sms": "rows"}',
    ],
)
def test_goip_refuses(body: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        goip.parse("gw1", body)
    assert caught.value.status == 400


# the last guard before Kafka ----------------------------------------------------------------------------------
def test_the_publish_guard_names_the_broken_field() -> None:
    good = Incoming(source="generic", phone_from="Telegram", text="t", received_at_ms=1735725600000)
    record = Publisher._record(good, 447700900123)
    assert checked(record) is record
    for name, value in [("received_at_ms", MAX_TIME_MS + 1), ("phone_from", "a\nb"), ("slot", "s" * 200)]:
        bad: InboundMessage = msgspec.structs.replace(record, **{name: value})
        with pytest.raises(BadInput, match=name):
            checked(bad)
    with pytest.raises(BadInput, match="number"):
        checked(Publisher._record(good, 12345))


# the file CLI -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env",
    [
        {"SMS_MESSAGES": str(10**9), "SMS_1_NUMBER": "+1555"},  # would loop a billion times
        {"SMS_MESSAGES": "1", "DECODED_PARTS": str(10**9)},
        {"SMS_MESSAGES": "x"},
    ],
)
def test_cli_refuses_a_hostile_gammu_environment(env: dict[str, str]) -> None:
    assert cli.main([], {"INGEST_TOKEN": "t0000000", **env}) == cli.EXIT_REJECTED
