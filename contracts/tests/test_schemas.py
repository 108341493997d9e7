"""The checked-in JSON Schemas are current, and a breaking change is caught."""

import copy
from typing import Any

import pytest

from pmm_contracts import schemas
from pmm_contracts.cli import SCHEMA_DIR, write_schemas
from pmm_contracts.events import ALL_EVENTS, REGISTRY


def test_checked_in_schemas_are_up_to_date() -> None:
    assert write_schemas(check=True, allow_breaking=False) == 0, "run `make schemas`"


def test_checked_in_schemas_cover_every_event_type() -> None:
    names = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert names == {f"{t}.json" for t in REGISTRY}


def test_generated_schemas_are_not_breaking_against_the_checked_in_ones() -> None:
    existing = schemas.read_dir(SCHEMA_DIR)
    for name, schema in schemas.generate(ALL_EVENTS).items():
        assert schemas.breaking_changes(existing[name], schema) == [], name


def _base() -> dict[str, Any]:
    return schemas.event_schema(REGISTRY["nl.maatwerk.case.closed"])


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema["properties"]["data"]["$ref"].split("/")[-1]
    result: dict[str, Any] = schema["$defs"][ref]
    return result


def test_removing_a_field_breaks() -> None:
    old, new = _base(), _base()
    del _data(new)["properties"]["reason"]
    assert any("reason: field removed" in p for p in schemas.breaking_changes(old, new))


def test_changing_a_type_breaks() -> None:
    old, new = _base(), _base()
    _data(new)["properties"]["duration_days"] = {"type": "string"}
    assert any("duration_days: type changed" in p for p in schemas.breaking_changes(old, new))


def test_a_new_required_field_breaks() -> None:
    old, new = _base(), _base()
    _data(new)["properties"]["severity"] = {"type": "integer"}
    _data(new)["required"].append("severity")
    assert any("severity: field became required" in p for p in schemas.breaking_changes(old, new))


def test_a_new_optional_field_does_not_break() -> None:
    old, new = _base(), _base()
    _data(new)["properties"]["remark"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schemas.breaking_changes(old, new) == []


@pytest.mark.parametrize("path", ["case_id", "outcome"])
def test_unchanged_schema_has_no_problems(path: str) -> None:
    old = _base()
    assert path in _data(old)["properties"]
    assert schemas.breaking_changes(old, copy.deepcopy(old)) == []
