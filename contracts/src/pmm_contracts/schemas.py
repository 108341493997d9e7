"""JSON Schemas of every event type, and the check that a change does not break consumers.

The schemas are generated into ``contracts/schemas/`` and checked in, so an organisation
that does not use Python can consume from the schema and the topic name alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pmm_contracts.envelope import CloudEvent, EventData

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_schema(model: type[EventData]) -> dict[str, Any]:
    """The JSON Schema of a whole CloudEvent whose data is ``model``."""
    schema = CloudEvent[model].model_json_schema(mode="serialization")  # type: ignore[valid-type]
    schema["$schema"] = SCHEMA_DIALECT
    schema["$id"] = f"urn:pmm:schema:{model.EVENT_TYPE}"
    schema["title"] = model.EVENT_TYPE
    schema["description"] = (model.__doc__ or "").strip() or model.EVENT_TYPE
    schema["properties"]["type"]["const"] = model.EVENT_TYPE
    return schema


def generate(models: Iterable[type[EventData]]) -> dict[str, dict[str, Any]]:
    """File name -> schema for every model."""
    return {f"{model.EVENT_TYPE}.json": event_schema(model) for model in models}


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_dir(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


# Compatibility ----------------------------------------------------------------------------


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in ``new`` breaks a consumer written against ``old``.

    Breaking: a removed (or renamed) field, a changed type, a field that became required.
    Adding an optional field is not breaking: consumers ignore fields they do not know.
    """
    problems: list[str] = []
    _compare(old, new, old, new, "", problems)
    return problems


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in node and seen < 20:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node


def _types(node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    node = _resolve(node, root)
    if "anyOf" in node:
        result: set[str] = set()
        for option in node["anyOf"]:
            result |= _types(option, root)
        return result
    if "const" in node and "type" not in node:
        return {type(node["const"]).__name__}
    kind = node.get("type")
    if isinstance(kind, list):
        return set(kind)
    if kind is None:
        return {"enum"} if "enum" in node else {"any"}
    return {kind}


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    path: str,
    problems: list[str],
) -> None:
    old = _resolve(old, old_root)
    new = _resolve(new, new_root)
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if "any" not in old_types and old_types != new_types:
        # Another type (or null where there was none) is data the consumer cannot read.
        problems.append(
            f"{path or '<root>'}: type changed from {sorted(old_types)} to {sorted(new_types)}"
        )
        return
    old_props = old.get("properties", {})
    new_props = new.get("properties", {})
    for name, old_prop in old_props.items():
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: field removed or renamed")
            continue
        _compare(old_prop, new_props[name], old_root, new_root, where, problems)
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        where = f"{path}.{name}" if path else name
        problems.append(f"{where}: field became required")
    if "items" in old and "items" in new:
        _compare(old["items"], new["items"], old_root, new_root, f"{path}[]", problems)
    for key in ("anyOf",):
        for option in old.get(key, []):
            option = _resolve(option, old_root)
            if option.get("type") == "object" or "properties" in option:
                for candidate in new.get(key, []):
                    candidate = _resolve(candidate, new_root)
                    if "properties" in candidate:
                        _compare(option, candidate, old_root, new_root, path, problems)
