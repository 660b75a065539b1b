"""The conformance kit against an in-memory partner: a correct one passes every item, each bug fails its item."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grizzly_sim.conformance import Options, run
from grizzly_testkit.infra import free_port
from sim_fake_partner import INGEST_TOKEN, KEY, FakePartner

NUMBERS = [79001000000 + i for i in range(12)] + [79281000000 + i for i in range(8)]


def conformance(bugs: frozenset[str] = frozenset(), pushes: bool = False, **overrides: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        listen = ("127.0.0.1", free_port())
        fake = FakePartner(list(NUMBERS), bugs=bugs, push_url=f"http://127.0.0.1:{listen[1]}/agent/api/sms")
        async with fake.running():
            options = Options(
                url=fake.url, key=KEY, push_listen=listen if pushes else None,
                ingest_url=fake.ingest_url if pushes else "", ingest_token=INGEST_TOKEN if pushes else "",
                **{"push_wait_s": 5, "retry_wait_s": 5, "dup_window_s": 1.5, "max_count": 50, **overrides},
            )  # fmt: skip
            report = await run(options)
            report["left_open"] = len(fake.busy)
            return report

    return asyncio.run(go())


def results(report: dict[str, Any]) -> dict[str, str]:
    return {item["id"]: item["result"] for item in report["items"]}


def test_correct_partner_passes_every_item_and_is_left_clean() -> None:
    # generous waits: they end at the first SUCCESS, and a loaded CI machine must not turn slowness into a FAIL
    report = conformance(pushes=True, push_wait_s=30, retry_wait_s=30, destructive=True)
    details = {item["id"]: (item["result"], item["detail"]) for item in report["items"]}
    assert report["passed"], {k: v for k, v in details.items() if v[0] != "PASS"}
    assert all(result in ("PASS",) for result in results(report).values()), details
    assert report["left_open"] == 0


def test_push_and_retire_items_are_skipped_not_passed_without_ingestion_and_destructive() -> None:
    report = conformance(concurrency=(30,))
    found = results(report)
    assert found["push.types"] == found["push.retry"] == found["push.no_resend_after_success"] == "SKIP"
    assert found["retire.sold"] == found["retire.do_not_offer"] == "SKIP"
    assert report["passed"] and report["summary"]["SKIP"] == 5


@pytest.mark.parametrize(
    ("bug", "failing"),
    [
        ("duplicates", {"concurrency.30", "services.count_accuracy"}),
        ("string_number", {"get_number.types"}),
        ("ignore_exclusions", {"exclusion.prefix"}),
        ("overreport", {"services.count_accuracy"}),
        ("finish_once", {"finish.idempotent"}),
        ("http_errors", {"bad.wrong_key", "bad.malformed_json", "bad.get_request", "bad.huge_body"}),
        ("lenient_types", {"bad.numeric_as_string"}),
        ("reoffer_retired", {"retire.sold", "retire.do_not_offer"}),
    ],
)
def test_each_bug_fails_its_item(bug: str, failing: set[str]) -> None:
    report = conformance(frozenset({bug}), concurrency=(30,), destructive=True)
    found = results(report)
    assert not report["passed"]
    assert {item for item in failing if found[item] == "FAIL"} == failing, found
    assert report["left_open"] == 0 or bug in ("duplicates", "string_number")


def test_a_number_retired_for_every_service_is_a_warning_not_a_pass() -> None:
    # nothing the platform fines, but the number is lost and the re-offer check proved nothing
    report = conformance(frozenset({"retire_everywhere"}), concurrency=(30,), destructive=True)
    found = results(report)
    assert found["retire.sold"] == found["retire.do_not_offer"] == "WARN", report["items"]
    assert report["passed"]


@pytest.mark.parametrize(
    ("bug", "failing"), [("push_twice", "push.no_resend_after_success"), ("no_retry", "push.retry")]
)
def test_push_bugs_fail_their_item(bug: str, failing: str) -> None:
    report = conformance(frozenset({bug}), pushes=True, concurrency=(30,))
    assert results(report)[failing] == "FAIL"
