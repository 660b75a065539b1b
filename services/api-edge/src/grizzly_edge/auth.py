"""Which upstream sent this request: the `key` compared in constant time against every configured key (each
upstream's current key and, during a changeover, its next one)."""

from __future__ import annotations

import hmac

from grizzly_common.settings import Upstream


class KeyRing:
    def __init__(self, upstreams: tuple[Upstream, ...]) -> None:
        self._keys = [(u.name, key.encode()) for u in upstreams for key in (u.key, u.next_key) if key]

    def __repr__(self) -> str:
        return f"KeyRing({sorted({name for name, _ in self._keys})})"  # never the keys

    def upstream_for(self, key: str) -> str | None:
        """The matching upstream's name, or None. Every key is compared (no early exit), so the time taken
        does not tell which upstream, or how much of a key, matched."""
        given = key.encode("utf-8", "surrogatepass")
        found: str | None = None
        for name, expected in self._keys:
            if hmac.compare_digest(given, expected) and found is None:
                found = name
        return found
