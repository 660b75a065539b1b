from __future__ import annotations

import pytest
from grizzly_ingest.text import (
    decode_base64_text,
    decode_bytes,
    decode_text,
    decode_ucs2_hex,
    normalise_number,
    parse_timestamp_ms,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (447700900123, 447700900123),
        ("447700900123", 447700900123),
        ("+44 7700-900123", 447700900123),
        ("0044 7700 900123", 447700900123),
    ],
)
def test_numbers_are_normalised_to_digits(value: int | str, expected: int) -> None:
    assert normalise_number(value) == expected


@pytest.mark.parametrize("value", ["12ab", "", "+", "0447700900123", "1234", "1234567890123456", True, "٤٤٧٧٠٠٩٠٠١٢٣"])
def test_bad_numbers_are_refused(value: int | str) -> None:
    with pytest.raises(ValueError):
        normalise_number(value)


def test_timestamps_iso_epoch_ms_and_seconds() -> None:
    assert parse_timestamp_ms("2025-01-01T10:00:00Z") == 1735725600000
    assert parse_timestamp_ms("2025-01-01T17:00:00.000+07:00") == 1735725600000
    assert parse_timestamp_ms("2025-01-01T10:00:00") == 1735725600000  # naive = UTC
    assert parse_timestamp_ms(1735725600000) == 1735725600000
    assert parse_timestamp_ms(1735725600) == 1735725600000
    assert parse_timestamp_ms("1735725600") == 1735725600000
    assert parse_timestamp_ms(None) is None
    with pytest.raises(ValueError):
        parse_timestamp_ms("yesterday")


@pytest.mark.parametrize("text", ["Код подтверждения: 4821", "رمز التحقق 9931", "验证码 5521", "Emoji 😀👍 ok"])
def test_ucs2_hex_decodes_cyrillic_arabic_cjk_and_emoji(text: str) -> None:
    assert decode_ucs2_hex(text.encode("utf-16-be").hex()) == text
    assert decode_ucs2_hex(text.encode("utf-16-be").hex().upper()) == text
    assert decode_text(text.encode("utf-16-be").hex(), "ucs2") == text


def test_bad_ucs2_and_base64_are_value_errors() -> None:
    with pytest.raises(ValueError):
        decode_ucs2_hex("zz")
    with pytest.raises(ValueError):
        decode_ucs2_hex("041")
    with pytest.raises(ValueError):
        decode_base64_text("%%%")
    with pytest.raises(ValueError):
        decode_text("x", "morse")


def test_bytes_of_unknown_charset_never_fail() -> None:
    assert decode_bytes("Grüße".encode()) == "Grüße"
    assert decode_bytes("Grüße".encode("latin-1")) == "Grüße"
    assert decode_bytes("Код".encode("utf-16")) == "Код"
