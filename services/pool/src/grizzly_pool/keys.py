"""The pool's Redis key names, defined once: PoolKeys builds them in Python (passed to the scripts in keys=), and
LUA renders the same names as Lua functions for the keys a script can only derive itself (those of the number it
picks, of ids it reads from a set). Every key is under the configurable prefix (POOL_KEY_PREFIX, default "gp:"):

  num:{number}        hash  country, operator, device, slot, online (1/0), flashcall, voice, act (open activation id
                            or ""), last_act
  hist:{number}       hash  per-service history, global across upstreams: b:{svc} blocked (why: 1, 3, 4),
                            c:{svc} cancels, r:{svc} refunds; kept when the number is removed
  slots:{device}      hash  slot -> number (resolve)
  dev:{device}        hash  online (1/0), cap (max simultaneously active modules, 0 = no limit), active, numbers,
                            alive (0: marked dead, silent past POOL_DEVICE_TIMEOUT_S), seen_ms (last heartbeat)
  seen                zset  device -> last heartbeat (ms), for the devices with a heartbeat source not marked dead
  sh:{number}         hash  SIM health: issued, sold, refused, cancelled, refunded, sms, last_sms_ms, streak
                            (activations in a row that ended without an SMS)
  suspects            set   numbers whose streak reached POOL_SUSPECT_STREAK
  earn:{day}          hash  "{upstream}|{service}|{country}|{currency}|{metric}" -> value, metric: issued, sold,
                            refused, cancelled, refunded, amount (sold minus refunded, in millionths); day UTC
  groups              hash  group -> how many numbers the group holds (group = "country|operator|device")
  free:{group}        set   numbers of the group that are online and not in an open activation
  bf:{group}          hash  service -> how many members of free:{group} are blocked for that service
  devices             set   every device that holds a number (the inventory is listed device by device)
  numbers             set   every number, in versions before: removed by migrate (about 60 B a number)
  act:{id}            hash  number, upstream, service, country, operator, device, sum, currency, request, status
                            ("open", the first finish status, or "released"), created_ms, finished_ms, repeats,
                            claim (api-edge's claim id), prev (the number's previous activation: a chain the admin
                            API walks for a number's history); expires AUDIT_RETENTION_DAYS after it ends
  held                zset  activation id -> when it is released (ms) unless api-edge confirms it first
  claim:{claim id}    string  the activation id of an api-edge claim, or "released"; expires after 2 x the hold
  actid               string  the activation id counter
  dg:{device}         set   the groups of the device (each holds at least one number)
  co                  hash  "country|operator" -> how many numbers it holds (the rows GET_SERVICES reports)
  cs:{country}|{op}   hash  count terms of a split row: "_" -> T, service -> D; count(service) = T - D
  ca:{country}        hash  count terms of the country's `any` row, the same way
  totals              hash  free -> how many numbers are free (in a free set)
  cg:{country}        set   claim index: the groups of the country whose free set is not empty and whose device
                            can take an activation now (online, below its cap)
  og:{country}|{op}   set   claim index: the same per (country, operator)
  layout              string  "2" once the count terms, dg: and the indexes exist (migrate.lua builds them)
  layout:lock         string  held by the pool process that migrates (the others wait for layout)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SEP: Final = "|"  # joins the parts of a group and of og:'s (country, operator)

# name -> the parts after "name:" (joined with SEP); these are the names LUA renders
_PARTS: Final[dict[str, tuple[str, ...]]] = {
    "num": ("number",),
    "hist": ("number",),
    "slots": ("device",),
    "dev": ("device",),
    "free": ("group",),
    "bf": ("group",),
    "act": ("id",),
    "claim": ("claim_id",),
    "cg": ("country",),
    "og": ("country", "operator"),
    "dg": ("device",),
    "sh": ("number",),
    "earn": ("day",),
    "cs": ("country", "operator"),
    "ca": ("country",),
}
# names without parts
_FIXED: Final[dict[str, str]] = {
    "groups": "groups",
    "numbers": "numbers",
    "devices": "devices",
    "held": "held",
    "actid": "actid",
    "co": "co",
    "totals": "totals",
    "layout": "layout",
    "migrating": "layout:lock",
    "seen": "seen",
    "suspects": "suspects",
}


def group_of(country: str, operator: str, device: str) -> str:
    return SEP.join((country, operator, device))


def split_group(value: str) -> tuple[str, str, str]:
    country, operator, device = value.split(SEP, 2)
    return country, operator, device


@dataclass(frozen=True)
class PoolKeys:
    prefix: str

    def _key(self, name: str, *parts: str | int) -> str:
        assert len(parts) == len(_PARTS[name])
        if len(parts) == 1:  # most keys, several per claim and finish: no join
            return f"{self.prefix}{name}:{parts[0]}"
        return f"{self.prefix}{name}:{SEP.join(map(str, parts))}"

    def num(self, number: int | str) -> str:
        return self._key("num", number)

    def hist(self, number: int | str) -> str:
        return self._key("hist", number)

    def slots(self, device: str) -> str:
        return self._key("slots", device)

    def dev(self, device: str) -> str:
        return self._key("dev", device)

    def free(self, group: str) -> str:
        return self._key("free", group)

    def bf(self, group: str) -> str:
        return self._key("bf", group)

    def act(self, activation_id: int | str) -> str:
        return self._key("act", activation_id)

    def claim(self, claim_id: str) -> str:
        return self._key("claim", claim_id)

    def cg(self, country: str) -> str:
        return self._key("cg", country)

    def og(self, country: str, operator: str) -> str:
        return self._key("og", country, operator)

    def sh(self, number: int | str) -> str:
        return self._key("sh", number)

    def earn(self, day: str) -> str:
        return self._key("earn", day)

    def dg(self, device: str) -> str:
        return self._key("dg", device)

    def cs(self, country: str, operator: str) -> str:
        return self._key("cs", country, operator)

    def ca(self, country: str) -> str:
        return self._key("ca", country)

    def fixed(self, name: str) -> str:
        """groups, numbers, devices, held, actid, co, totals, layout, migrating, seen, suspects"""
        return self.prefix + _FIXED[name]


def _lua() -> str:
    lines = [
        "-- Pool key names (rendered by grizzly_pool.keys, which also builds them in Python): key = pool_keys(prefix),",
        "-- then key.num(number), key.free(group), key.og(country, operator), key.fixed('co') ...; group_of(country,",
        "-- operator, device) -> group; split_group(group) -> country, operator, device.",
        "local function pool_keys(prefix)",
        "  local key = {}",
    ]
    for name, parts in _PARTS.items():
        joined = f" .. '{SEP}' .. ".join(parts)
        lines.append(f"  function key.{name}({', '.join(parts)}) return prefix .. '{name}:' .. {joined} end")
    names = ", ".join(f"{name} = '{value}'" for name, value in _FIXED.items())
    lines += [
        f"  local fixed = {{{names}}}",
        "  function key.fixed(name) return prefix .. fixed[name] end",
        "  return key",
        "end",
        "local function group_of(country, operator, device)",
        f"  return country .. '{SEP}' .. operator .. '{SEP}' .. device",
        "end",
        "local function split_group(group)",
        f"  return string.match(group, '^([^{SEP}]*){SEP}([^{SEP}]*){SEP}(.*)$')",
        "end",
        "",
    ]
    return "\n".join(lines)


# prepended by load_lua (before pool.lua) to every script that derives a key itself
LUA: Final = _lua()
