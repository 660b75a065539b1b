"""grizzly-ingest-file: hand SMS received by a modem daemon to the running sms-ingest (POST /v1/sms).

Gammu SMSD, RunOnReceive = grizzly-ingest-file
    reads SMS_MESSAGES, SMS_<n>_NUMBER, SMS_<n>_TEXT, DECODED_PARTS, DECODED_<n>_TEXT and PHONE_ID from the
    environment; without them, the arguments are inbox files of the files backend
    (IN<date>_<time>_<n>_<sender>_<seq>.txt).
smstools3, eventhandler = grizzly-ingest-file
    called as `grizzly-ingest-file RECEIVED /var/spool/sms/incoming/<file>` (CALL files go to /v1/call;
    SENT, FAILED, REPORT ... are ignored).

The receiving number is --number (INGEST_FILE_NUMBER), else the device (--device, smstools "Modem:", gammu
PHONE_ID) and --slot are resolved by sms-ingest. Exit 0 once sms-ingest acknowledged every message; non-zero
otherwise, so the daemon keeps the file and can run us again (a retried message gets the same smsId).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

from grizzly_ingest.text import decode_bytes

EXIT_REJECTED = 1  # sms-ingest refused the message (bad input, token, unknown device): retrying will not help
EXIT_TEMPFAIL = 75  # sms-ingest unreachable or unavailable after the retries (sysexits EX_TEMPFAIL)
EXIT_USAGE = 64
MAX_PARTS = 255

SMSTOOLS_EVENTS_IGNORED = {"SENT", "FAILED", "REPORT"}
N = TypeVar("N", int, float)
_GAMMU_FILE = re.compile(r"^IN(\d{8})_(\d{6})_(\d+)_(.*)_(\d+)\.txt$")


@dataclass(frozen=True)
class ModemMessage:
    sender: str
    text: str
    kind: str = "sms"  # sms | call
    received_at: str | None = None  # ISO-8601 with offset
    device: str = ""
    source_id: str = ""


def _smstools_time(value: str) -> str | None:
    """smstools writes local time as "yy-mm-dd hh:mm:ss"."""
    for fmt in ("%y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value.strip(), fmt).astimezone().isoformat()
        except ValueError:
            continue
    return None


def parse_smstools(raw: bytes, kind: str = "sms") -> ModemMessage:
    """Header lines ("From: ...", "Received: ...", "Alphabet: UCS2", "Modem: GSM1") then a blank line then the body."""
    match = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: match.start()], raw[match.end() :]) if match else (raw, b"")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    sender = headers.get("from", "")
    if not sender:
        raise ValueError("no From: header")
    alphabet = headers.get("alphabet", "").upper()
    if alphabet.startswith("UCS"):
        text = body.decode("utf-16-be", errors="replace")
    else:
        text = decode_bytes(body)
    return ModemMessage(
        sender=sender,
        text=text,
        kind=kind,
        received_at=_smstools_time(headers.get("received", "")) if headers.get("received") else None,
        device=headers.get("modem", "") or headers.get("subject", ""),
    )


def gammu_from_env(env: Mapping[str, str]) -> ModemMessage | None:
    """The message Gammu SMSD describes in RunOnReceive's environment (parts already linked), or None."""
    count = int(env.get("SMS_MESSAGES", "0") or 0)
    if count <= 0:
        return None
    decoded_parts = int(env.get("DECODED_PARTS", "0") or 0)
    if count > MAX_PARTS or decoded_parts > MAX_PARTS:  # a message has at most 255 parts
        raise ValueError(f"SMS_MESSAGES / DECODED_PARTS above {MAX_PARTS}")
    sender = env.get("SMS_1_NUMBER", "")
    decoded = [env.get(f"DECODED_{n}_TEXT") for n in range(1, decoded_parts + 1)]
    if decoded_parts and all(part is not None for part in decoded):
        text = "".join(part or "" for part in decoded)
    else:
        text = "".join(env.get(f"SMS_{n}_TEXT", "") for n in range(1, count + 1))
    return ModemMessage(sender=sender, text=text, device=env.get("PHONE_ID", ""))


def parse_gammu_files(paths: Sequence[Path]) -> list[ModemMessage]:
    """Files-backend inbox files; parts of one message (same name but the sequence) are joined in order."""
    groups: dict[tuple[str, str, str, str], list[tuple[int, str]]] = {}
    for path in paths:
        match = _GAMMU_FILE.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: not a Gammu inbox file name (IN<date>_<time>_<n>_<sender>_<seq>.txt)")
        date, clock, serial, sender, seq = match.groups()
        groups.setdefault((date, clock, serial, sender), []).append((int(seq), decode_bytes(path.read_bytes())))
    messages = []
    for (date, clock, serial, sender), parts in groups.items():
        received = datetime.strptime(date + clock, "%Y%m%d%H%M%S").astimezone().isoformat()
        text = "".join(part for _seq, part in sorted(parts))
        source_id = f"{date}{clock}{serial}"
        messages.append(ModemMessage(sender=sender, text=text, received_at=received, source_id=source_id))
    return messages


def payload(message: ModemMessage, number: str, device: str, slot: str) -> dict[str, object]:
    body: dict[str, object] = {"from": message.sender, "text": message.text}
    if message.kind == "call":
        body["kind"] = "call"
    if number:
        body["number"] = number
    else:
        body["device"] = device or message.device
        body["slot"] = slot
    if message.received_at:
        body["received_at"] = message.received_at
    if message.source_id:
        body["id"] = message.source_id
    return body


def post(url: str, token: str, body: dict[str, object], retries: int, timeout_s: float) -> int:
    """0 when accepted; EXIT_REJECTED on a 4xx; EXIT_TEMPFAIL when still unavailable after the retries."""
    data = json.dumps(body, ensure_ascii=False).encode()
    delay = 0.5
    for attempt in range(retries + 1):
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as reply:
                answer = json.loads(reply.read() or b"{}")
                if isinstance(answer, dict) and answer.get("status") == "SUCCESS":
                    return 0
                error = f"unexpected answer {answer!r}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
            if 400 <= exc.code < 500 and exc.code != 429:
                sys.stderr.write(f"grizzly-ingest-file: rejected: {error}\n")
                return EXIT_REJECTED
        except (OSError, ValueError) as exc:
            error = repr(exc)
        if attempt < retries:
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    sys.stderr.write(f"grizzly-ingest-file: not accepted after {retries + 1} attempts: {error}\n")
    return EXIT_TEMPFAIL


def _env_number(env: Mapping[str, str], name: str, default: N, cast: Callable[[str], N]) -> N:
    value = env.get(name)
    if not value:
        return default
    try:
        return cast(value)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if cast is int else 'a number'}, got {value!r}") from None


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    default_url = env.get("INGEST_URL") or f"http://127.0.0.1:{env.get('INGEST_PORT', '8083')}"
    parser = argparse.ArgumentParser(
        prog="grizzly-ingest-file", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('grizzly-sms-ingest')}")
    parser.add_argument("args", nargs="*", help="smstools: EVENT FILE; gammu: inbox file names")
    parser.add_argument("--url", default=default_url, help="sms-ingest base URL (INGEST_URL)")
    parser.add_argument("--token-file", help="file holding the token (else INGEST_TOKEN)")
    parser.add_argument("--number", default=env.get("INGEST_FILE_NUMBER", ""), help="receiving number of this modem")
    parser.add_argument("--device", default=env.get("INGEST_FILE_DEVICE", ""), help="device id to resolve")
    parser.add_argument("--slot", default=env.get("INGEST_FILE_SLOT", ""), help="SIM slot to resolve")
    parser.add_argument("--retries", type=int, default=_env_number(env, "INGEST_FILE_RETRIES", 5, int))
    parser.add_argument("--timeout", type=float, default=_env_number(env, "INGEST_FILE_TIMEOUT_S", 10.0, float))
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        parser = _parser(env)
    except ValueError as exc:
        sys.stderr.write(f"grizzly-ingest-file: {exc}\n")
        return EXIT_USAGE
    options = parser.parse_args(argv)
    token = Path(options.token_file).read_text().strip() if options.token_file else env.get("INGEST_TOKEN", "")
    if not token:
        sys.stderr.write("grizzly-ingest-file: set INGEST_TOKEN or --token-file\n")
        return EXIT_USAGE
    args: list[str] = options.args
    try:
        messages: list[ModemMessage]
        if args and args[0].upper() in {"RECEIVED", "CALL", *SMSTOOLS_EVENTS_IGNORED} and len(args) >= 2:
            event = args[0].upper()
            if event in SMSTOOLS_EVENTS_IGNORED:
                return 0
            raw = Path(args[1]).read_bytes()
            messages = [parse_smstools(raw, "call" if event == "CALL" else "sms")]
        elif (from_env := gammu_from_env(env)) is not None:
            messages = [from_env]
        elif args:
            paths = [Path(a) for a in args]
            if all(_GAMMU_FILE.match(p.name) for p in paths):
                messages = parse_gammu_files(paths)
            else:
                messages = [parse_smstools(p.read_bytes()) for p in paths]
        else:
            sys.stderr.write("grizzly-ingest-file: no message (no arguments and no SMS_MESSAGES)\n")
            return EXIT_USAGE
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"grizzly-ingest-file: cannot read the message: {exc}\n")
        return EXIT_REJECTED
    base = options.url.rstrip("/")
    device = options.device or env.get("PHONE_ID", "")
    for message in messages:
        path = "/v1/call" if message.kind == "call" else "/v1/sms"
        body = payload(message, options.number, device, options.slot)
        code = post(base + path, token, body, options.retries, options.timeout)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
