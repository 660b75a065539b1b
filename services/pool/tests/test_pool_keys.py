"""The one key builder: the Lua key functions the scripts use name exactly the keys PoolKeys builds in Python."""

from __future__ import annotations

import asyncio

from grizzly_common.redis_client import make_redis
from grizzly_pool.keys import LUA, PoolKeys, group_of, split_group

GROUP = group_of("ru", "mts", "gw-1:a")
LUA_CALLS = """
local key = pool_keys(ARGV[1])
local country, operator, device = split_group(ARGV[6])
return {key.num(ARGV[2]), key.hist(ARGV[2]), key.slots(ARGV[3]), key.dev(ARGV[3]), key.free(ARGV[6]),
  key.bf(ARGV[6]), key.act(ARGV[4]), key.claim(ARGV[5]), key.dg(device), key.cs(country, operator), key.ca(country),
  key.fixed('co'), key.fixed('totals'), key.fixed('layout'), key.cg(country), key.og(country, operator),
  group_of(country, operator, device)}
"""


def test_lua_key_functions_name_the_keys_python_builds(redis_url: str) -> None:
    k = PoolKeys("gp:")
    expected = [
        k.num(79000000001), k.hist(79000000001), k.slots("gw-1:a"), k.dev("gw-1:a"), k.free(GROUP), k.bf(GROUP),
        k.act(1760000000000001), k.claim("c-1760000000000001"), k.dg("gw-1:a"), k.cs("ru", "mts"), k.ca("ru"),
        k.fixed("co"), k.fixed("totals"), k.fixed("layout"), k.cg("ru"), k.og("ru", "mts"), GROUP,
    ]  # fmt: skip
    assert expected[:3] == ["gp:num:79000000001", "gp:hist:79000000001", "gp:slots:gw-1:a"]
    assert expected[-3:] == ["gp:cg:ru", "gp:og:ru|mts", "ru|mts|gw-1:a"]
    assert split_group(GROUP) == ("ru", "mts", "gw-1:a")

    async def main() -> list[str]:
        client = make_redis(redis_url)
        try:
            args: list[str | int] = ["gp:", 79000000001, "gw-1:a", 1760000000000001, "c-1760000000000001", GROUP]
            return [v.decode() for v in await client.eval(LUA + LUA_CALLS, 0, *args)]
        finally:
            await client.aclose()

    assert asyncio.run(main()) == expected


def test_fixed_keys() -> None:
    k = PoolKeys("hy1:")
    names = ("groups", "numbers", "devices", "held", "actid", "co", "totals", "layout")
    assert [k.fixed(n) for n in names] == ["hy1:groups", "hy1:numbers", "hy1:devices", "hy1:held", "hy1:actid",
                                           "hy1:co", "hy1:totals", "hy1:layout"]  # fmt: skip
