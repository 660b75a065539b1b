"""GET_SERVICES: the counts the pool can serve right now, as {"status":"SUCCESS","countryList":[...]}."""

from __future__ import annotations

from typing import Any

from grizzly_common.messages import get_services_success

from grizzly_edge.actions import Answer, Call
from grizzly_edge.metrics import COUNTS_REPORTED

_last_reported: dict[str, set[str]] = {}  # upstream -> services in its last answer (to zero the gauge of dropped ones)


def _record_counts(upstream: str, country_list: list[dict[str, Any]]) -> None:
    totals: dict[str, int] = {}
    for country in country_list:
        operators = country.get("operatorMap")
        if not isinstance(operators, dict):
            continue
        for services in operators.values():
            if not isinstance(services, dict):
                continue
            for service, count in services.items():
                if isinstance(count, int) and not isinstance(count, bool):
                    totals[service] = totals.get(service, 0) + count
    for service in _last_reported.get(upstream, set()) - totals.keys():
        COUNTS_REPORTED.labels(upstream, service).set(0)
    for service, total in totals.items():
        COUNTS_REPORTED.labels(upstream, service).set(total)
    _last_reported[upstream] = set(totals)


async def handle(call: Call) -> Answer:
    result = await call.pool.services(call.upstream)
    _record_counts(call.upstream, result.countryList)
    return Answer("SUCCESS", get_services_success(result.countryList))
