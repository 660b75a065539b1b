"""Shared settings helpers: retention and topic durability read once, errors name the variable."""

from __future__ import annotations

import pytest
from grizzly_common.settings import SettingsError, TopicDurability, audit_retention_s, topic_durability


def test_audit_retention_defaults_to_90_days_and_takes_fractions() -> None:
    assert audit_retention_s({}) == 90 * 86400
    assert audit_retention_s({"AUDIT_RETENTION_DAYS": "0.0001"}) == 9
    with pytest.raises(SettingsError, match="AUDIT_RETENTION_DAYS"):
        audit_retention_s({"AUDIT_RETENTION_DAYS": "-1"})


def test_topic_durability_defaults_and_bounds() -> None:
    assert topic_durability({}) == TopicDurability(1, 1)
    assert topic_durability({"KAFKA_REPLICATION_FACTOR": "3"}) == TopicDurability(3, 2)
    with pytest.raises(SettingsError, match="KAFKA_MIN_INSYNC_REPLICAS"):
        topic_durability({"KAFKA_REPLICATION_FACTOR": "2", "KAFKA_MIN_INSYNC_REPLICAS": "3"})
