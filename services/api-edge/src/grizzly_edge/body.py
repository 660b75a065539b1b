"""gzip in and out: request bodies inflated with a decompressed-size limit, answers gzipped for clients that accept
them. (The raw byte limit is grizzly_common.web.read_limited_body.)"""

from __future__ import annotations

import gzip
import zlib

from grizzly_common.errors import BadRequest, BodyTooLarge


def decode_content(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo Content-Encoding: identity or gzip. The decompressed size is bounded (zip bombs)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BadRequest(f"unsupported Content-Encoding {encoding[:32]!r} (only gzip)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise BadRequest("body is not valid gzip") from None
    if len(data) > max_bytes:
        raise BodyTooLarge(f"decompressed request body too large (limit {max_bytes} bytes)")
    if not inflater.eof:
        raise BadRequest("body is not valid gzip (truncated)")
    return data


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when Accept-Encoding lists gzip (or *) without q=0."""
    if not accept_encoding:
        return False
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip() not in ("gzip", "x-gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


def compress(body: bytes, level: int) -> bytes:
    return gzip.compress(body, compresslevel=level, mtime=0)
