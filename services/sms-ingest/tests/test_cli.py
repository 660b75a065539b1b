from __future__ import annotations

from pathlib import Path

from grizzly_ingest.cli import gammu_from_env, main, parse_gammu_files, parse_smstools, payload


def test_smstools_ucs2_file() -> None:
    raw = (
        b"From: 447781234567\nFrom_TOA: 91 international\nSent: 25-01-01 10:00:00\nReceived: 25-01-01 10:00:05\n"
        b"Subject: GSM1\nModem: GSM1\nIMSI: 234150000000000\nAlphabet: UCS2\nLength: 11\n\n"
        + "رمز 9931 😀".encode("utf-16-be")
    )
    message = parse_smstools(raw)
    assert (message.sender, message.text, message.device) == ("447781234567", "رمز 9931 😀", "GSM1")
    assert message.received_at is not None and message.received_at.startswith("2025-01-01T10:00:05")


def test_smstools_iso_file_with_crlf() -> None:
    message = parse_smstools(b"From: Telegram\r\nAlphabet: ISO\r\n\r\nCode 12345\r\nline 2")
    assert message.sender == "Telegram" and message.text == "Code 12345\r\nline 2" and message.received_at is None


def test_gammu_env_prefers_decoded_text() -> None:
    env = {
        "SMS_MESSAGES": "2",
        "SMS_1_NUMBER": "+4915112345678",
        "SMS_1_TEXT": "a",
        "SMS_2_TEXT": "b",
        "DECODED_PARTS": "1",
        "DECODED_1_TEXT": "Код целиком",
        "PHONE_ID": "modem-3",
    }
    message = gammu_from_env(env)
    assert message is not None and (message.sender, message.text, message.device) == (
        "+4915112345678",
        "Код целиком",
        "modem-3",
    )
    plain = gammu_from_env({k: v for k, v in env.items() if not k.startswith("DECODED")})
    assert plain is not None and plain.text == "ab"
    assert gammu_from_env({}) is None


def test_gammu_inbox_files_joined_by_sequence(tmp_path: Path) -> None:
    first = tmp_path / "IN20250101_100005_00_+4915112345678_00.txt"
    second = tmp_path / "IN20250101_100005_00_+4915112345678_01.txt"
    first.write_text("part one ", encoding="utf-8")
    second.write_bytes("part два".encode("utf-16"))
    [message] = parse_gammu_files([second, first])
    assert message.sender == "+4915112345678" and message.text == "part one part два"


def test_payload_uses_number_or_device() -> None:
    message = parse_smstools(b"From: X\nModem: GSM2\n\nhi")
    assert payload(message, "447700900123", "", "") == {"from": "X", "text": "hi", "number": "447700900123"}
    assert payload(message, "", "", "1") == {"from": "X", "text": "hi", "device": "GSM2", "slot": "1"}


def test_missing_token_or_message_is_usage_error(tmp_path: Path) -> None:
    assert main([], {}) == 64
    assert main([], {"INGEST_TOKEN": "t0000000"}) == 64
    assert main(["RECEIVED", str(tmp_path / "absent")], {"INGEST_TOKEN": "t0000000"}) == 1
    assert main(["SENT", str(tmp_path / "absent")], {"INGEST_TOKEN": "t0000000"}) == 0
