from __future__ import annotations

import base64
import json

import pytest
from grizzly_ingest.errors import BadInput
from grizzly_ingest.webhooks.goip import is_port_status, parse, parse_content


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_content_with_header_lines_then_body() -> None:
    content = parse_content(
        'Sender: +15550001111\r\nReceiver: "1.01" 447700900123\r\nSCTS: 250101\r\nSlot: "1.01"\r\n\r\nHi\nthere'
    )
    assert content.headers["sender"] == "+15550001111" and content.headers["slot"] == '"1.01"'
    assert content.body == "Hi\nthere"


def test_bare_content_is_the_body() -> None:
    assert parse_content("Your code: 1234\nthanks").body == "Your code: 1234\nthanks"
    assert parse_content("Your code: 1234").headers == {}


def test_push_skips_delivery_reports_and_reads_numbers() -> None:
    body = json.dumps(
        {
            "type": "recv-sms",
            "sms_num": 3,
            "sms": [
                [0, "2.01", 1632718766, "+8613800000000", "+447700900123", b64("Привет 😀")],
                [1, "2.01", 1632718767, "+8613800000000", "", b64("report")],
                [0, "3.01", 1632718768, "Telegram", "", b64('Receiver: "3.01" 447700900999\n\nCode 5')],
                [0, "4.01", "1632718769", "VK", "", b64("no recipient")],
            ],
        }
    ).encode()
    messages, skipped = parse("dev1", body)
    assert skipped == 1
    assert [(m.number, m.slot, m.phone_from, m.text) for m in messages] == [
        (447700900123, "2.01", "8613800000000", "Привет 😀"),
        (447700900999, "3.01", "Telegram", "Code 5"),
        (None, "4.01", "VK", "no recipient"),
    ]
    assert messages[0].received_at_ms == 1632718766000 and messages[0].device == "dev1"


def test_other_types_are_ignored() -> None:
    assert parse("dev1", json.dumps({"type": "port-status", "port": "1.01"}).encode()) == ([], 0)


@pytest.mark.parametrize(
    "rows",
    [
        [[0, "1", 1, "s"]],
        [[0, "1", 1, "s", "", "%%%"]],
        [[0, "1", 1, 5, "", "aGk="]],
        [[0, "1", True, "s", "", "aGk="]],
    ],
)
def test_malformed_rows_are_bad_input(rows: list[list[object]]) -> None:
    with pytest.raises(BadInput):
        parse("dev1", json.dumps({"type": "recv-sms", "sms": rows}).encode())


def test_port_status_push_is_recognised() -> None:
    assert is_port_status(json.dumps({"type": "port-status", "port": "1.01", "status": 3}).encode())
    assert not is_port_status(json.dumps({"type": "recv-sms", "sms": []}).encode())
