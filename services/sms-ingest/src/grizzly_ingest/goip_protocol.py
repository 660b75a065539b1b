"""The datagrams of DBL GoIP's "SMS server" protocol (UDP), parsed and answered; no I/O here.

A GoIP line configured with an SMS server sends, every ~30 s, a keepalive

    req:<n>;id:<id>;pass:<password>;num:<msisdn>;signal:<0-31>;gsm_status:LOGIN;...;imei:..;imsi:..;iccid:..;

answered `reg:<n>;status:200;`, and for each SMS it receives

    RECEIVE:<n>;id:<id>;password:<password>;srcnum:<sender>;msg:<text>

repeated until the server answers `RECEIVE <n> OK` (or `RECEIVE <n> ERROR <why>`, which stops the retries).
The text runs to the end of the datagram: it may hold ';', ':' and newlines. Status events (DELIVER, STATE,
RECORD, REMAIN, HANGUP, EXPIRY, CELLS, ...) have the same shape and are answered `<VERB> <n> OK`.
Keys are matched case-insensitively (firmwares differ: pass / password, CELLINFO / cellinfo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grizzly_ingest.text import decode_bytes

MAX_DATAGRAM = 65_507  # the largest UDP payload over IPv4
MAX_FIELDS = 64  # a keepalive has ~20; more is not a GoIP
_VERB = re.compile(r"^[A-Za-z_]{1,16}$")
_SEQ = re.compile(r"^[0-9A-Za-z_.-]{1,32}$")
_LINE_ID = re.compile(r"^[0-9A-Za-z_.@-]{1,64}$")
KEEPALIVE = "req"
RECEIVE = "RECEIVE"


@dataclass(frozen=True)
class Packet:
    verb: str  # "req" (keepalive), "RECEIVE", or a status event's verb in upper case
    seq: str  # <n>: echoed in the answer; the device retransmits with the same one
    fields: dict[str, str] = field(default_factory=dict)  # lower-case keys, values as sent (msg excluded)
    msg: str | None = None  # RECEIVE's text, raw (None when the datagram had no msg:)

    @property
    def device_id(self) -> str:
        return self.fields.get("id", "")

    @property
    def password(self) -> str:
        return self.fields.get("password", self.fields.get("pass", ""))


def parse(data: bytes) -> Packet | None:
    """The packet, or None when the datagram is not a GoIP SMS-server message. Never raises."""
    if not data or len(data) > MAX_DATAGRAM:
        return None
    text = decode_bytes(data)  # UTF-8 as the firmware sends it; Latin-1 rather than an exception otherwise
    head, sep, rest = text.partition(":")
    if not sep or not _VERB.match(head):
        return None
    verb = KEEPALIVE if head.lower() == KEEPALIVE else head.upper()
    seq, _, rest = rest.partition(";")
    seq = seq.strip()
    if not _SEQ.match(seq):
        return None
    fields: dict[str, str] = {}
    msg: str | None = None
    while rest:
        item, sep, tail = rest.partition(";")
        key, colon, value = item.partition(":")
        key = key.strip().lower()
        if colon and key == "msg" and verb == RECEIVE:
            msg = rest[rest.index(":") + 1 :]  # the text, to the end: it may contain ';'
            break
        if key and colon:  # a stray token without a value is skipped, as the firmware's own server does
            if len(fields) >= MAX_FIELDS:
                return None
            fields.setdefault(key, value.strip())
        rest = tail if sep else ""
    if verb == RECEIVE and msg is None:
        return None
    return Packet(verb=verb, seq=seq, fields=fields, msg=msg)


def clean_text(raw: str) -> str:
    """The SMS text of a RECEIVE: the device ends the datagram with the text, sometimes with a line break added
    (one trailing "\\r\\n" or "\\n" is framing, not text). Line breaks inside the text are kept."""
    if raw.endswith("\r\n"):
        return raw[:-2]
    if raw.endswith("\n"):
        return raw[:-1]
    return raw


def reg_ok(seq: str) -> bytes:
    return f"reg:{seq};status:200;".encode()


def ok(verb: str, seq: str) -> bytes:
    return f"{verb} {seq} OK\n".encode()


def error(verb: str, seq: str, why: str) -> bytes:
    reason = " ".join(why.split())[:200]  # one line: the device reads up to the newline
    return f"{verb} {seq} ERROR {reason}\n".encode()


@dataclass(frozen=True)
class Line:
    """One GoIP line configured to use this SMS server: its SMS-server id and password, and the pool's name for
    its SIM (device, slot), as the HTTP goip webhook would give them."""

    id: str
    password: str = field(repr=False)
    device: str
    slot: str = ""


def parse_lines(name: str, value: str) -> dict[str, Line]:
    """ "goip1:secret:bank-a:1,goip2:secret:bank-a:2" -> {id: Line}: id, password, device, slot (may be empty).
    The password is what lies between the id and the last two fields, so it may hold ':'. Errors name the
    variable and the id, never the password."""
    lines: dict[str, Line] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) < 4:
            raise ValueError(f"{name}: entry {len(lines) + 1} is not id:password:device:slot")
        line_id, password, device, slot = parts[0].strip(), ":".join(parts[1:-2]), parts[-2].strip(), parts[-1].strip()
        if not _LINE_ID.match(line_id):
            raise ValueError(f"{name}: entry {len(lines) + 1}: the id must be 1-64 letters, digits, _ . @ -")
        if not password:
            raise ValueError(f"{name}: line {line_id!r} has an empty password")
        if not device:
            raise ValueError(f"{name}: line {line_id!r} has no device")
        if line_id in lines:
            raise ValueError(f"{name}: line {line_id!r} appears twice")
        lines[line_id] = Line(line_id, password, device, slot)
    return lines
