from __future__ import annotations

import json

import pytest
from grizzly_ingest.errors import BadInput, BadJson
from grizzly_ingest.model import Part
from grizzly_ingest.webhooks.generic import parse_call, parse_sms


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_sms_with_number_string_and_part() -> None:
    message = parse_sms(
        body(
            number="+447700900123",
            text="hi",
            received_at=1735725600000,
            part={"ref": 7, "total": 2, "seq": 2},
            **{"from": "+4917"},
        )
    )
    assert message.number == 447700900123 and message.phone_from == "4917" and message.part == Part("7", 2, 2)
    assert message.received_at_ms == 1735725600000


def test_sms_by_device_and_slot() -> None:
    message = parse_sms(body(device="gw1", slot=3, text="hi", **{"from": "X"}))
    assert (message.number, message.device, message.slot) == (None, "gw1", "3")


@pytest.mark.parametrize(
    "raw",
    [
        body(text="hi", **{"from": "X"}),
        body(number=447700900123, text=1, **{"from": "X"}),
        body(number=447700900123, text="hi"),
        body(number=447700900123, text="hi", **{"from": ""}),
        body(number=447700900123, text="hi", part={"ref": 1, "total": 0, "seq": 1}, **{"from": "X"}),
        body(number=447700900123, text="hi", part={"ref": 1, "total": 300, "seq": 1}, **{"from": "X"}),
        body(number=447700900123, text="hi", received_at=True, **{"from": "X"}),
    ],
)
def test_wrong_fields_are_bad_input(raw: bytes) -> None:
    with pytest.raises(BadInput):
        parse_sms(raw)


def test_not_json_is_bad_json() -> None:
    with pytest.raises(BadJson):
        parse_sms(b"{")
    with pytest.raises(BadJson):
        parse_sms(b"  ")


def test_calls_and_call_records() -> None:
    call = parse_call(body(number=447700900123, **{"from": "447781234567"}))
    assert call.kind == "call" and call.text == ""
    record = parse_call(body(number=447700900123, kind="call_record", recording_b64="UklGRg==", **{"from": "1"}))
    assert record.kind == "call_record" and record.recording_type == "audio/wav"
    with pytest.raises(BadInput):
        parse_call(body(number=447700900123, kind="call_record", **{"from": "1"}))
    with pytest.raises(BadInput):
        parse_call(body(number=447700900123, kind="call_record", recording_b64="%%", **{"from": "1"}))
