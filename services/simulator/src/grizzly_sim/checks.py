"""Protocol checks on the partner's answers and pushes, shared by the simulator and the conformance kit.

Each function returns a list of problems (empty = conformant). They check the wire format only
(protocol.md sections 2-5): JSON numbers where the protocol says number, known status strings, required fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

STATUSES = frozenset({"SUCCESS", "ERROR", "NO_NUMBERS"})
ULONG_MAX = 9_223_372_036_854_775_807

# Dial codes for the country values a partner is likely to report: sms-activate style numeric ids (what Grizzly's
# Data Table most likely uses, protocol.md 9.1), SMSHUB names and ISO 3166 alpha-2. Anything else: pass
# --country-code COUNTRY=DIGITS to the conformance kit (or SIM_COUNTRY_CODES to the simulator).
KNOWN_DIAL_CODES: dict[str, str] = {
    # sms-activate / Grizzly numeric ids
    "0": "7", "1": "380", "2": "7", "6": "62", "12": "1", "16": "44", "32": "40", "43": "49", "78": "33",
    "86": "39", "187": "1",
    # names
    "russia": "7", "ukraine": "380", "kazakhstan": "7", "indonesia": "62", "usa": "1", "usaphysical": "1",
    "england": "44", "uk": "44", "germany": "49", "france": "33", "italy": "39", "spain": "34", "poland": "48",
    "romania": "40", "netherlands": "31", "sweden": "46", "brazil": "55", "india": "91", "philippines": "63",
    "vietnam": "84", "canada": "1", "turkey": "90", "georgia": "995", "uzbekistan": "998", "belarus": "375",
    # ISO 3166 alpha-2
    "ru": "7", "ua": "380", "kz": "7", "id": "62", "us": "1", "gb": "44", "de": "49", "fr": "33", "it": "39",
    "es": "34", "pl": "48", "ro": "40", "nl": "31", "se": "46", "br": "55", "in": "91", "ph": "63", "vn": "84",
    "ca": "1", "tr": "90", "ge": "995", "uz": "998", "by": "375",
}  # fmt: skip


def is_json_int(value: Any) -> bool:
    """A JSON number without a fraction (bool is an int in Python, but true/false is not a number on the wire)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _ulong(value: Any, name: str) -> list[str]:
    if not is_json_int(value):
        return [f"{name} must be a JSON number, got {type(value).__name__} {str(value)[:40]!r}"]
    if not 0 <= value <= ULONG_MAX:
        return [f"{name} {value} is outside 0..{ULONG_MAX}"]
    return []


def envelope_problems(http_status: int, body: Any) -> list[str]:
    """Every answer: HTTP 200, a JSON object with a known status; ERROR carries an error text."""
    problems = []
    if http_status != 200:
        problems.append(f"HTTP {http_status}, expected 200")
    if not isinstance(body, dict):
        return [*problems, f"answer is not a JSON object: {str(body)[:80]!r}"]
    status = body.get("status")
    if status not in STATUSES:
        problems.append(f"unknown status {str(status)[:40]!r}")
    if status == "ERROR" and not (isinstance(body.get("error"), str) and body["error"]):
        problems.append("ERROR without an error text")
    return problems


def error_envelope_problems(http_status: int, body: Any) -> list[str]:
    """Bad input must get HTTP 200 {"status":"ERROR","error":"..."}."""
    problems = envelope_problems(http_status, body)
    if isinstance(body, dict) and body.get("status") != "ERROR":
        problems.append(f"status {str(body.get('status'))[:40]!r}, expected ERROR")
    return problems


def get_services_problems(body: Any) -> list[str]:
    if not isinstance(body, dict) or body.get("status") != "SUCCESS":
        return [f"GET_SERVICES did not answer SUCCESS: {str(body)[:120]}"]
    country_list = body.get("countryList")
    if not isinstance(country_list, list):
        return ["countryList is missing or not an array"]
    problems = []
    for index, item in enumerate(country_list):
        where = f"countryList[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} is not an object")
            continue
        country = item.get("country")
        if isinstance(country, bool) or not isinstance(country, str | int) or str(country) == "":
            problems.append(f"{where}.country must be a string or a number, got {country!r}")
        operator_map = item.get("operatorMap")
        if not isinstance(operator_map, dict):
            problems.append(f"{where}.operatorMap must be an object")
            continue
        if "any" in operator_map and len(operator_map) > 1:
            problems.append(f"{where}: country {country!r} is split by operator and also reports 'any'")
        for operator, services in operator_map.items():
            if not isinstance(services, dict):
                problems.append(f"{where}.operatorMap[{operator!r}] must be an object")
                continue
            for service, count in services.items():
                if not is_json_int(count) or count < 0:
                    problems.append(f"{where}.operatorMap[{operator!r}][{service!r}] must be an int >= 0: {count!r}")
    return problems


def counts(body: Any) -> dict[tuple[str, str, str], int]:
    """{(country, operator, service): count} from a GET_SERVICES answer (country as its string form)."""
    result: dict[tuple[str, str, str], int] = {}
    if not isinstance(body, dict) or not isinstance(body.get("countryList"), list):
        return result
    for item in body["countryList"]:
        if not isinstance(item, dict) or not isinstance(item.get("operatorMap"), dict):
            continue
        for operator, services in item["operatorMap"].items():
            if not isinstance(services, dict):
                continue
            for service, count in services.items():
                if is_json_int(count):
                    result[(str(item.get("country")), str(operator), str(service))] = count
    return result


def country_values(body: Any) -> dict[str, str | int]:
    """The country values exactly as reported (so GET_NUMBER can send back the same JSON type)."""
    values: dict[str, str | int] = {}
    if isinstance(body, dict) and isinstance(body.get("countryList"), list):
        for item in body["countryList"]:
            if isinstance(item, dict) and isinstance(item.get("country"), str | int):
                values[str(item["country"])] = item["country"]
    return values


def get_number_problems(body: Any) -> list[str]:
    """A GET_NUMBER answer: SUCCESS with numeric number/activationId (and boolean flags), NO_NUMBERS, or ERROR."""
    if not isinstance(body, dict):
        return ["answer is not a JSON object"]
    status = body.get("status")
    if status != "SUCCESS":
        return [] if status in ("NO_NUMBERS", "ERROR") else [f"unknown status {status!r}"]
    problems = [*_ulong(body.get("number"), "number"), *_ulong(body.get("activationId"), "activationId")]
    for flag in ("flashcall", "voice"):
        if flag in body and not isinstance(body[flag], bool):
            problems.append(f"{flag} must be true or false, got {body[flag]!r}")
    return problems


def number_problems(number: int, country: str, dial_codes: dict[str, str]) -> list[str]:
    """The number carries its country code: E.164 digits (8-15, no leading 0) starting with the dial code."""
    digits = str(number)
    problems = []
    if not 8 <= len(digits) <= 15:
        problems.append(f"number {digits} has {len(digits)} digits; a full international number has 8-15")
    if digits.startswith("0"):
        problems.append(f"number {digits} starts with 0 (a national format, not country code + number)")
    code = dial_codes.get(str(country).strip().lower())
    if code is not None and not digits.startswith(code):
        problems.append(f"number {digits} does not start with country {country!r}'s code {code}")
    return problems


def matching_prefix(number: int, prefixes: Iterable[str | int]) -> str | None:
    digits = str(number)
    for prefix in prefixes:
        text = str(prefix).lstrip("+")
        if text and digits.startswith(text):
            return text
    return None


def push_problems(body: Any, key: str) -> list[str]:
    """A PUSH_SMS / PUSH_CALL body as the platform's endpoint receives it (JSON)."""
    if not isinstance(body, dict):
        return ["push body is not a JSON object"]
    action = body.get("action")
    problems = []
    if body.get("key") != key:
        problems.append("wrong or missing key")
    if action == "PUSH_SMS":
        problems += _ulong(body.get("smsId"), "smsId") + _ulong(body.get("phone"), "phone")
        if not isinstance(body.get("phoneFrom"), str):
            problems.append("phoneFrom must be a string")
        if not isinstance(body.get("text"), str):
            problems.append("text must be a string")
    elif action == "PUSH_CALL":
        problems += _ulong(body.get("callId"), "callId") + _ulong(body.get("phone"), "phone")
        if not isinstance(body.get("phoneFrom"), str):
            problems.append("phoneFrom must be a string")
    else:
        problems.append(f"unknown push action {str(action)[:40]!r}")
    return problems


def parse_dial_codes(entries: Iterable[str]) -> dict[str, str]:
    """["ru=7", "0=7"] -> {"ru": "7", "0": "7"} merged over KNOWN_DIAL_CODES."""
    codes = dict(KNOWN_DIAL_CODES)
    for entry in entries:
        country, sep, code = entry.partition("=")
        if not sep or not code.strip().isdigit():
            raise ValueError(f"country code mapping {entry!r} must look like COUNTRY=DIGITS")
        codes[country.strip().lower()] = code.strip()
    return codes
