"""CloudFormation resource schemas, as cfn-lint ships them (cfnlint/data/schemas/providers).

moto gap covered: moto's CloudFormation accepts any property (unknown ones are ignored, a typo
deploys), knows nothing of which properties force a replacement, and accepts Fn::GetAtt of any
attribute name. The registry schemas answer all three the way CloudFormation does:
- unknown properties fail the resource ("Encountered unsupported property X"), missing required
  ones too; nested objects are checked where the schema closes them (additionalProperties false);
- createOnlyProperties / conditionalCreateOnlyProperties give a change set's Replacement;
- the GetAtt attributes of a type are cfn-lint's list for it (readOnly and gettable properties).
"""
from __future__ import annotations

import re
from functools import cache

try:  # schema patterns are ECMA regexes (\p{L} & co.): the `regex` module understands them
    import regex as _ecma
except ImportError:  # pragma: no cover
    _ecma = re
from typing import Any

from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER, ResourceNotFoundError

CUSTOM_TYPE_PREFIXES = ("Custom::",)
CUSTOM_TYPES = frozenset({"AWS::CloudFormation::CustomResource"})
# Types CloudFormation handles itself (no provider schema describes them in cfn-lint's set).
BUILTIN_TYPES = frozenset({
    "AWS::CloudFormation::WaitConditionHandle", "AWS::CloudFormation::WaitCondition",
    "AWS::CloudFormation::Stack", "AWS::CloudFormation::Macro",
})


def is_custom(resource_type: str) -> bool:
    return resource_type.startswith(CUSTOM_TYPE_PREFIXES) or resource_type in CUSTOM_TYPES


@cache
def schema_for(resource_type: str, region: str) -> dict | None:
    """The provider schema of a type in a region, None when CloudFormation does not know it."""
    if is_custom(resource_type):
        return None
    try:
        return PROVIDER_SCHEMA_MANAGER.get_resource_schema(region=region, resource_type=resource_type).schema
    except ResourceNotFoundError:
        return None
    except Exception:  # a type name cfn-lint cannot even normalize
        return None


def is_known_type(resource_type: str, region: str) -> bool:
    return is_custom(resource_type) or resource_type in BUILTIN_TYPES or schema_for(resource_type, region) is not None


@cache
def getatt_names(resource_type: str, region: str) -> frozenset[str] | None:
    """Attribute names Fn::GetAtt accepts for a type; None means "any" (custom resources)."""
    if is_custom(resource_type) or resource_type in BUILTIN_TYPES:
        return None
    try:
        return frozenset(PROVIDER_SCHEMA_MANAGER.get_type_getatts(resource_type=resource_type, region=region))
    except Exception:
        return None


def _pointer_paths(schema: dict, key: str) -> list[tuple[str, ...]]:
    paths = []
    for pointer in schema.get(key, []) or []:
        parts = tuple(p for p in pointer.split("/") if p)
        if parts and parts[0] == "properties":
            paths.append(parts[1:])
    return paths


@cache
def create_only_paths(resource_type: str, region: str) -> tuple[tuple[str, ...], ...]:
    schema = schema_for(resource_type, region) or {}
    return tuple(_pointer_paths(schema, "createOnlyProperties"))


@cache
def conditional_create_only_paths(resource_type: str, region: str) -> tuple[tuple[str, ...], ...]:
    schema = schema_for(resource_type, region) or {}
    return tuple(_pointer_paths(schema, "conditionalCreateOnlyProperties"))


@cache
def write_only_properties(resource_type: str, region: str) -> frozenset[str]:
    schema = schema_for(resource_type, region) or {}
    return frozenset(path[0] for path in _pointer_paths(schema, "writeOnlyProperties") if path)


def _get_path(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part == "*":
            return value
        else:
            return None
    return value


def replacement_for(resource_type: str, region: str, prop: str, old: dict, new: dict) -> str:
    """"Always", "Conditionally" or "Never": does a change of `prop` recreate the resource?"""
    for path in create_only_paths(resource_type, region):
        if path and path[0] == prop and _get_path(old, path) != _get_path(new, path):
            return "Always"
    for path in conditional_create_only_paths(resource_type, region):
        if path and path[0] == prop and _get_path(old, path) != _get_path(new, path):
            return "Conditionally"
    return "Never"


def is_create_only(resource_type: str, region: str, prop: str) -> bool:
    return any(path and path[0] == prop for path in create_only_paths(resource_type, region))


@cache
def tag_property(resource_type: str, region: str) -> str | None:
    """The property holding the resource's tags when the type is taggable."""
    schema = schema_for(resource_type, region) or {}
    tagging = schema.get("tagging") or {}
    if not tagging.get("taggable", bool(tagging)):
        return None
    pointer = tagging.get("tagProperty", "/properties/Tags")
    return pointer.rsplit("/", 1)[-1]


# ---- validation --------------------------------------------------------------------------------
def _resolve_ref(node: dict, root: dict) -> dict:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        pointer = node["$ref"]
        if not pointer.startswith("#/"):
            return {}
        target: Any = root
        for part in pointer[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node


@cache
def _pattern(pattern: str):
    try:
        return _ecma.compile(pattern)
    except Exception:
        return None


def _matches(pattern: str, key: str) -> bool:
    compiled = _pattern(pattern)
    return True if compiled is None else bool(compiled.search(key))


def _check_object(node: dict, value: Any, path: str, root: dict) -> str | None:
    node = _resolve_ref(node, root)
    if not isinstance(node, dict):
        return None
    if isinstance(value, dict):
        properties = node.get("properties")
        patterns = node.get("patternProperties") or {}
        if properties is not None or patterns:
            properties = properties or {}
            if node.get("additionalProperties") is False:
                for key in value:
                    if key not in properties and not any(_matches(p, key) for p in patterns):
                        return f"{path}: extraneous key [{key}] is not permitted"
            for key in node.get("required", []) or []:
                if key not in value:
                    return f"{path}: required key [{key}] not found"
            for key, item in value.items():
                if key in properties:
                    error = _check_object(properties[key], item, f"{path}/{key}", root)
                    if error:
                        return error
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            error = _check_object(node["items"], item, f"{path}/{index}", root)
            if error:
                return error
    return None


def validate_properties(resource_type: str, region: str, logical_id: str, properties: dict) -> str | None:
    """None, or the reason CloudFormation gives for refusing these (resolved) properties."""
    schema = schema_for(resource_type, region)
    if schema is None:
        return None
    if not isinstance(properties, dict):
        return "Properties validation failed: #: expected type: JSONObject"
    declared = schema.get("properties", {})
    for key in properties:
        if key not in declared:
            return f"Encountered unsupported property {key}"
    for key in schema.get("required", []) or []:
        if key not in properties:
            return f"Properties validation failed for resource {logical_id} with message: #: required key [{key}] not found"
    for key, item in properties.items():
        error = _check_object(declared[key], item, f"#/{key}", schema)
        if error:
            return f"Properties validation failed for resource {logical_id} with message: {error}"
    return None
