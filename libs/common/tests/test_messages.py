"""The protocol models (grizzly_common.messages): strict types, the way the platform's type tests expect."""

from __future__ import annotations

import gzip
from decimal import Decimal

import orjson
import pytest
from grizzly_common.errors import BadRequest
from grizzly_common.messages import (
    NO_NUMBERS_BODY,
    SUCCESS_BODY,
    as_decimal,
    country_code,
    decode_envelope,
    decode_finish,
    decode_get_number,
    error_body,
    get_number_success,
    get_services_success,
    normalize_prefixes,
    push_sms_body,
    push_succeeded,
)

GET_NUMBER = {"action": "GET_NUMBER", "key": "k", "country": 0, "operator": "any", "service": "tg", "sum": 0.35}


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


# --- envelope ------------------------------------------------------------------------------------------------


def test_envelope_reads_action_and_key_and_ignores_extra_fields() -> None:
    envelope = decode_envelope(dumps({"action": "GET_SERVICES", "key": "abc", "extra": [1, 2]}))
    assert (envelope.action, envelope.key) == ("GET_SERVICES", "abc")


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        (b"", "empty"),
        (b"{", "json"),
        (b"not json", "json"),
        (b"[]", "object"),
        (b"3", "object"),
        (b"null", "object"),
        (b'{"key":"k"}', "action"),
        (b'{"action":"GET_SERVICES"}', "key"),
        (b'{"action":1,"key":"k"}', "action"),
        (b'{"action":"GET_SERVICES","key":123}', "key"),
    ],
)
def test_envelope_rejects(body: bytes, contains: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_envelope(body)
    assert contains in info.value.error.lower()


# --- GET_NUMBER ----------------------------------------------------------------------------------------------


def test_get_number_accepts_country_as_string_or_number() -> None:
    assert country_code(decode_get_number(dumps(GET_NUMBER)).country) == "0"
    assert country_code(decode_get_number(dumps({**GET_NUMBER, "country": "0"})).country) == "0"
    assert country_code(decode_get_number(dumps({**GET_NUMBER, "country": " Russia "})).country) == "russia"


def test_get_number_optional_fields_default() -> None:
    request = decode_get_number(dumps(GET_NUMBER))
    assert request.currency is None
    assert request.exceptionPhoneSet == []


@pytest.mark.parametrize(
    ("change", "contains"),
    [
        ({"sum": "0.35"}, "sum"),  # a numeric field sent as a string
        ({"sum": True}, "sum"),  # a boolean where a number is expected
        ({"sum": -0.01}, "sum"),
        ({"sum": 1e400}, "sum"),
        ({"currency": "643"}, "currency"),
        ({"currency": False}, "currency"),
        ({"country": True}, "country"),
        ({"country": ""}, "empty"),
        ({"service": ""}, "empty"),
        ({"operator": None}, "operator"),
        ({"exceptionPhoneSet": "7918"}, "exceptionphoneset"),
        ({"exceptionPhoneSet": [None]}, "exceptionphoneset"),
    ],
)
def test_get_number_rejects(change: dict[str, object], contains: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_get_number(dumps({**GET_NUMBER, **change}))
    assert contains in info.value.error.lower()


def test_get_number_missing_field() -> None:
    body = dict(GET_NUMBER)
    del body["sum"]
    with pytest.raises(BadRequest, match="sum"):
        decode_get_number(dumps(body))


def test_sum_is_a_decimal_without_float_noise() -> None:
    request = decode_get_number(dumps({**GET_NUMBER, "sum": 0.35}))
    assert as_decimal(request.sum) == Decimal("0.35")
    assert str(as_decimal(decode_get_number(dumps({**GET_NUMBER, "sum": 177.77})).sum)) == "177.77"
    assert str(as_decimal(decode_get_number(dumps({**GET_NUMBER, "sum": 2})).sum)) == "2"


def test_exception_prefixes_strings_or_numbers() -> None:
    request = decode_get_number(dumps({**GET_NUMBER, "exceptionPhoneSet": ["7918", 79281, "+44742", " 44740 "]}))
    assert normalize_prefixes(request.exceptionPhoneSet) == ["7918", "79281", "44742", "44740"]


@pytest.mark.parametrize("entry", ["79a", "", "+", "7 918", "-7", "٣", "7²"])
def test_exception_prefixes_with_non_digits_rejected(entry: str) -> None:
    with pytest.raises(BadRequest, match="exceptionPhoneSet"):
        normalize_prefixes([entry])


def test_exception_prefix_boolean_rejected() -> None:
    with pytest.raises(BadRequest):
        normalize_prefixes([True])
    with pytest.raises(BadRequest):
        decode_get_number(dumps({**GET_NUMBER, "exceptionPhoneSet": [True]}))


# --- FINISH_ACTIVATION ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [1, 3, 4, 5])
def test_finish_accepts_known_statuses(status: int) -> None:
    request = decode_finish(dumps({"activationId": 100245, "status": status}))
    assert (request.activationId, request.status) == (100245, status)


@pytest.mark.parametrize(
    ("fields", "contains"),
    [
        ({"activationId": "123", "status": 3}, "activationid"),  # numeric field as a string
        ({"activationId": 123, "status": "3"}, "status"),
        ({"activationId": True, "status": 3}, "activationid"),  # boolean where a number is expected
        ({"activationId": 123, "status": False}, "status"),
        ({"activationId": 1.5, "status": 3}, "activationid"),
        ({"activationId": -1, "status": 3}, "activationid"),
        ({"activationId": 2**63, "status": 3}, "activationid"),
        ({"activationId": 123, "status": 0}, "status"),
        ({"activationId": 123, "status": 2}, "status"),
        ({"activationId": 123, "status": 6}, "status"),
        ({"activationId": 123, "status": 8}, "status"),
        ({"status": 3}, "activationid"),
        ({"activationId": 123}, "status"),
    ],
)
def test_finish_rejects(fields: dict[str, object], contains: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_finish(dumps(fields))
    assert contains in info.value.error.lower()


# --- answers -------------------------------------------------------------------------------------------------


def test_get_number_answer_types() -> None:
    answer = orjson.loads(get_number_success(447700900123, 100245, False, True))
    assert answer == {
        "status": "SUCCESS",
        "number": 447700900123,
        "activationId": 100245,
        "flashcall": False,
        "voice": True,
    }
    assert type(answer["number"]) is int and type(answer["activationId"]) is int


def test_fixed_answers() -> None:
    assert orjson.loads(SUCCESS_BODY) == {"status": "SUCCESS"}
    assert orjson.loads(NO_NUMBERS_BODY) == {"status": "NO_NUMBERS"}
    assert orjson.loads(error_body("wrong key")) == {"status": "ERROR", "error": "wrong key"}
    services = orjson.loads(get_services_success([{"country": "0", "operatorMap": {"any": {"tg": 1}}}]))
    assert services == {"status": "SUCCESS", "countryList": [{"country": "0", "operatorMap": {"any": {"tg": 1}}}]}


def test_gzip_round_trip_of_a_request_and_an_answer() -> None:
    body = dumps({**GET_NUMBER, "exceptionPhoneSet": ["44742"]})
    request = decode_get_number(gzip.decompress(gzip.compress(body)))
    assert request.exceptionPhoneSet == ["44742"]
    answer = get_number_success(79001234567, 1, False, False)
    assert gzip.decompress(gzip.compress(answer)) == answer


def test_push_sms_body_types_and_reply() -> None:
    body = orjson.loads(push_sms_body("k", 880031, 447700900123, "Telegram", "code 51920"))
    assert type(body["smsId"]) is int and type(body["phone"]) is int
    assert push_succeeded(b'{"status":"SUCCESS"}')
    assert not push_succeeded(b'{"status":"ERROR","error":"x"}')
    assert not push_succeeded(b"<html>")


@pytest.mark.parametrize(
    "change",
    [
        {"service": "t|g"},
        {"service": "tg\u0000"},
        {"operator": "mts beeline"},
        {"country": "ru:0"},
        {"country": -1},
        {"service": "x" * 33},
        {"currency": 2**64 - 1},
        {"currency": -1},
        {"sum": 0.123456},
        {"sum": 1e-7},
        {"sum": 1e13},
        {"exceptionPhoneSet": ["7" * 16]},
        {"exceptionPhoneSet": ["7"] * 1001},
    ],
)
def test_get_number_fields_outside_the_bounds_are_bad_requests(change: dict[str, object]) -> None:
    with pytest.raises(BadRequest, match="invalid field"):
        request = decode_get_number(dumps({**GET_NUMBER, **change}))
        normalize_prefixes(request.exceptionPhoneSet)


def test_get_number_codes_are_trimmed_and_amounts_kept_exact() -> None:
    request = decode_get_number(dumps({**GET_NUMBER, "operator": " mts ", "service": "tg ", "sum": 12.3456}))
    assert (request.operator, request.service, str(as_decimal(request.sum))) == ("mts", "tg", "12.3456")
    assert decode_get_number(dumps({**GET_NUMBER, "currency": 643})).currency == 643
    assert str(as_decimal(decode_get_number(dumps({**GET_NUMBER, "sum": -0.0})).sum)) == "0"


def test_deeply_nested_json_is_a_bad_request_not_a_recursion_error() -> None:
    deep = b'{"action": "GET_NUMBER", "key": "k", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BadRequest, match="nested too deeply"):
        decode_envelope(deep)
