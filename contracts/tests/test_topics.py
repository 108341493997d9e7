import pytest

from pmm_contracts.events import REGISTRY
from pmm_contracts.topics import (
    CATALOGUE,
    org_topics,
    signals_assigned_topic,
    signals_responses_topic,
)


def test_every_event_type_travels_on_exactly_one_kind_of_topic() -> None:
    specs = [*CATALOGUE, *org_topics("uwv")]
    declared = [t for spec in specs for t in spec.event_types]
    assert sorted(declared) == sorted(set(declared)), "an event type is on two topics"
    assert set(declared) == set(REGISTRY)


def test_topic_names_are_unique_and_keys_documented() -> None:
    names = [spec.name for spec in CATALOGUE]
    assert len(names) == len(set(names))
    assert all(spec.key and spec.partitions >= 1 for spec in CATALOGUE)


def test_changelogs_are_compacted() -> None:
    compacted = {spec.name for spec in CATALOGUE if spec.cleanup_policy == "compact"}
    assert compacted == {"pmm.register.organisations", "pmm.register.professionals"}


def test_each_organisation_has_its_own_topics() -> None:
    assert signals_assigned_topic("uwv") == "pmm.signalen.assigned.uwv"
    assert signals_responses_topic("gm0363") == "pmm.signalen.responses.gm0363"
    with pytest.raises(ValueError, match="organisation code"):
        signals_assigned_topic("UWV; drop")
