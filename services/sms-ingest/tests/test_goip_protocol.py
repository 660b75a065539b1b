from __future__ import annotations

import pytest
from grizzly_ingest.goip_protocol import clean_text, error, ok, parse, parse_lines, reg_ok
from hypothesis import given, settings
from hypothesis import strategies as st

KEEPALIVE = (
    b"req:57;id:goip1;pass:pw-0001;num:+447700900123;signal:23;gsm_status:LOGIN;voip_status:LOGOUT;"
    b"voip_state:IDLE;remain_time:-1;imei:867495020000001;imsi:234150000000001;iccid:8944110000000000001;"
    b"pro:EE;idle:5;disable_status:0;SMS_LOGIN:N;SMS_NO:0;CELLINFO:LAC:1F2,CELL ID:3A4B;CGATT:Y;"
)


def test_keepalive_fields() -> None:
    packet = parse(KEEPALIVE)
    assert packet is not None
    assert packet.verb == "req" and packet.seq == "57" and packet.device_id == "goip1" and packet.password == "pw-0001"
    assert packet.fields["num"] == "+447700900123" and packet.fields["signal"] == "23"
    assert packet.fields["imei"] == "867495020000001" and packet.fields["iccid"] == "8944110000000000001"
    assert packet.fields["cellinfo"] == "LAC:1F2,CELL ID:3A4B"  # a value may hold ':'
    assert reg_ok(packet.seq) == b"reg:57;status:200;"


def test_receive_text_runs_to_the_end_with_semicolons_colons_and_lines() -> None:
    data = "RECEIVE:1734804704;id:goip1;password:pw-0001;srcnum:+15551234567;msg:Code: 51920;\nnot id:x;"
    packet = parse(data.encode())
    assert packet is not None and packet.verb == "RECEIVE" and packet.seq == "1734804704"
    assert packet.fields["srcnum"] == "+15551234567" and packet.password == "pw-0001"
    assert packet.msg == "Code: 51920;\nnot id:x;"
    assert "id" in packet.fields and packet.fields["id"] == "goip1"  # the text's "id:x" is not a field
    assert ok(packet.verb, packet.seq) == b"RECEIVE 1734804704 OK\n"


def test_receive_utf8_text_and_empty_text() -> None:
    packet = parse("RECEIVE:9;id:a;password:b;srcnum:VK;msg:Привет 😀".encode())
    assert packet is not None and packet.msg == "Привет 😀"
    empty = parse(b"RECEIVE:9;id:a;password:b;srcnum:VK;msg:")
    assert empty is not None and empty.msg == ""


def test_receive_without_msg_or_garbage_is_none() -> None:
    assert parse(b"RECEIVE:9;id:a;password:b;srcnum:VK") is None
    assert parse(b"") is None
    assert parse(b"\x00\xff\xfe garbage") is None
    assert parse(b"hello world") is None
    assert parse(b"req:;id:a;pass:b") is None  # no sequence number to answer with
    assert parse(b"req:1 2;id:a") is None


def test_status_events_are_upper_case_verbs() -> None:
    packet = parse(b"deliver:12;id:a;password:b;sms_no:3;state:0;num:123")
    assert packet is not None and packet.verb == "DELIVER" and packet.fields["state"] == "0"
    assert ok(packet.verb, packet.seq) == b"DELIVER 12 OK\n"


def test_clean_text_drops_one_trailing_line_break_only() -> None:
    assert clean_text("a\nb\n") == "a\nb"
    assert clean_text("a\r\n") == "a"
    assert clean_text("a\n\n") == "a\n"
    assert clean_text("a") == "a"


def test_error_answer_is_one_line() -> None:
    assert (
        error("RECEIVE", "4", "invalid field:\nsrcnum too long") == b"RECEIVE 4 ERROR invalid field: srcnum too long\n"
    )


def test_lines_setting() -> None:
    lines = parse_lines("X", "goip1:pw:bank-a:1, goip2:p:w:d:bank-a:2,goip3:pw3:bank-b:")
    assert lines["goip1"].device == "bank-a" and lines["goip1"].slot == "1" and lines["goip1"].password == "pw"
    assert lines["goip2"].password == "p:w:d" and lines["goip2"].slot == "2"
    assert lines["goip3"].slot == ""
    assert "pw" not in repr(lines["goip1"])


@pytest.mark.parametrize(
    ("value", "error_part"),
    [("goip1:pw:bank", "id:password:device:slot"), ("goip1::bank:1", "empty password"), ("a:p:d:1,a:q:d:2", "twice")],
)
def test_lines_setting_errors_name_the_variable_not_the_password(value: str, error_part: str) -> None:
    with pytest.raises(ValueError, match=error_part) as info:
        parse_lines("INGEST_GOIP_LINES", value)
    assert "INGEST_GOIP_LINES" in str(info.value) and "pw" not in str(info.value)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parse(data)


@settings(max_examples=300)
@given(
    st.sampled_from(["req", "RECEIVE", "DELIVER", "state", "x"]),
    st.text(max_size=12),
    st.lists(st.tuples(st.text(max_size=8), st.text(max_size=20)), max_size=8),
)
def test_arbitrary_packets_never_raise(verb: str, seq: str, items: list[tuple[str, str]]) -> None:
    body = ";".join(f"{key}:{value}" for key, value in items)
    packet = parse(f"{verb}:{seq};{body}".encode(errors="surrogatepass"))
    if packet is not None:
        assert packet.seq and (packet.verb != "RECEIVE" or packet.msg is not None)
