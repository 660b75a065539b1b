"""Structured JSON logs on stdout, with secrets redacted in one place."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

from grizzly_common.settings import SettingsError

_SECRET_NAMES = r"key|token|password|passwd|secret|signature|authorization|api[_-]?key|cookie"
# key=..., "key":"...", token, password, signature, Authorization: Bearer ...: whatever the message, these values go.
_SECRET_PATTERN = re.compile(
    rf"""(?ix)
    (["']?(?:{_SECRET_NAMES})["']?\s*[:=]\s*)
    (?:(?:bearer|basic|hmac)\s+[^\s,}}&"']+|"[^"]*"|'[^']*'|[^\s,}}&]+)
    """
)
_SECRET_FIELD = re.compile(rf"(?i)(?:^|_)(?:{_SECRET_NAMES})(?:$|_)")  # a structured field named like a secret
_REDACTED = r"\1***"
# Values shaped like a credential, whatever they are called: a scheme's token, a URL's password, a JWT, a long
# hex or base64 run (a uuid's 32 hex digits stay: claim ids are not secrets).
_SECRET_SHAPES = (
    (re.compile(r"(?i)\b((?:bearer|basic|hmac)\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(://[^/\s:@]*:)[^/\s@]+@"), r"\1***@"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "***"),
    (re.compile(r"\b[A-Fa-f0-9]{40,}\b"), "***"),
    (re.compile(r"(?<![A-Za-z0-9+_-])[A-Za-z0-9+_-]{48,}={0,2}"), "***"),  # not across "/": file paths stay
)


def redact(text: str) -> str:
    text = _SECRET_PATTERN.sub(_REDACTED, text)
    for shape, replacement in _SECRET_SHAPES:
        text = shape.sub(replacement, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    """A structured field's value: strings redacted by shape, nested fields named like a secret dropped."""
    if isinstance(value, str):
        return redact(value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {k: "***" if _SECRET_FIELD.search(str(k)) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                entry[name] = "***" if _SECRET_FIELD.search(name) else _scrub(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stdout. An unknown level is a SettingsError naming LOG_LEVEL, before anything changes."""
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would print every request (and bodies never, but keep it quiet by default)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def log_fields(**fields: Any) -> dict[str, Any]:
    """logger.info("pushed", extra=log_fields(sms_id=1, upstream="grizzly"))"""
    return {"fields": fields}
