"""Templates: parsing, intrinsic functions, conditions, dependency order, dynamic references.

moto gap covered: moto's `clean_json` resolves intrinsics lazily while it creates resources (so
a failure half-way cannot be rolled back), returns the moto object itself for a Ref to some
types, does not know Fn::Cidr / Fn::Length, resolves Fn::GetAZs to four made-up zones, leaves
`{{resolve:...}}` dynamic references in place, and orders resources only by DependsOn. This
module evaluates a template the way CloudFormation does, independently of resource creation:
the engine asks it for one resource's properties at a time, with the values of the resources
created so far.
"""
from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

import yaml

PSEUDO_PARAMETERS = frozenset({
    "AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition", "AWS::Region",
    "AWS::StackId", "AWS::StackName", "AWS::URLSuffix",
})
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:([a-z-]+):((?:(?!\}\}).)+)\}\}")


class TemplateError(Exception):
    """A template CloudFormation would refuse (the message is AWS's wording)."""


class NoValue:
    """AWS::NoValue: the property it stands for is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = NoValue()


# ---- parsing ---------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic tags (!Ref, !Sub, !GetAtt ...)."""


def _construct_tag(loader: _Loader, tag_suffix: str, node: yaml.Node) -> dict:
    name = "Ref" if tag_suffix == "Ref" else ("Condition" if tag_suffix == "Condition" else f"Fn::{tag_suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _construct_tag)


def parse_template(body: str) -> dict:
    """JSON or YAML template body as a dict; TemplateError when it is neither."""
    text = body.strip()
    try:
        parsed = json.loads(text) if text.startswith("{") else yaml.load(text, Loader=_Loader)  # noqa: S506 (SafeLoader subclass)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise TemplateError(f"Template format error: not a valid JSON or YAML template ({str(error).splitlines()[0]})") from None
    if not isinstance(parsed, dict):
        raise TemplateError("Template format error: JSON not well-formed.")
    return parsed


# ---- walking ---------------------------------------------------------------------------------
def walk(node: Any, visit: Callable[[str, Any], None]) -> None:
    """Calls visit(key, value) for every single-key intrinsic-looking mapping entry."""
    if isinstance(node, dict):
        for key, value in node.items():
            visit(key, value)
            walk(value, visit)
    elif isinstance(node, list):
        for item in node:
            walk(item, visit)


def sub_parts(value: Any) -> tuple[str, dict]:
    if isinstance(value, list):
        text, variables = value[0], (value[1] if len(value) > 1 else {})
        return text, variables or {}
    return value, {}


def sub_references(text: str) -> list[str]:
    """Names referenced by ${...} in a Fn::Sub string (without ${!Literal})."""
    return [m.group(1) for m in _SUB_VARIABLE.finditer(text) if not m.group(1).startswith("!")]


def getatt_parts(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return logical_id, attribute
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        attribute = value[1]
        return value[0], attribute if isinstance(attribute, str) else json.dumps(attribute)
    raise TemplateError("Template error: every Fn::GetAtt object requires two non-empty parameters.")


# ---- evaluation ------------------------------------------------------------------------------
@dataclass
class Context:
    """What intrinsic functions can see while one stack operation runs.

    `resource_ref` / `resource_att` are called for Ref / Fn::GetAtt of a resource; `import_value`
    for Fn::ImportValue; they raise TemplateError (with AWS's message) when they cannot answer.
    """

    account_id: str
    region: str
    stack_name: str
    stack_id: str
    parameters: dict[str, Any]  # resolved values: str, or list[str] for list types
    conditions: dict[str, bool]
    mappings: dict[str, Any]
    resource_ref: Callable[[str], Any]
    resource_att: Callable[[str, str], Any]
    import_value: Callable[[str], Any]
    availability_zones: Callable[[str], list[str]]
    notification_arns: list[str] = field(default_factory=list)

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::AccountId": self.account_id,
            "AWS::NotificationARNs": list(self.notification_arns),
            "AWS::NoValue": NO_VALUE,
            "AWS::Partition": partition_of(self.region),
            "AWS::Region": self.region,
            "AWS::StackId": self.stack_id,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com",
        }[name]


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


class Evaluator:
    """Resolves intrinsic functions in one node against a Context."""

    def __init__(self, context: Context):
        self.ctx = context

    def ref(self, name: str) -> Any:
        if name in PSEUDO_PARAMETERS:
            return self.ctx.pseudo(name)
        if name in self.ctx.parameters:
            return self.ctx.parameters[name]
        return self.ctx.resource_ref(name)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            handler = _FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, value)
        resolved = {}
        for key, value in node.items():
            item = self.resolve(value)
            if item is not NO_VALUE:
                resolved[key] = item
        return resolved

    def condition(self, name: str) -> bool:
        if name not in self.ctx.conditions:
            raise TemplateError(f"Template format error: Unresolved condition dependency {name} in Fn::If")
        return self.ctx.conditions[name]

    # -- functions --
    def fn_ref(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise TemplateError("Template format error: Every Ref object must have a single String value.")
        return self.ref(value)

    def fn_getatt(self, value: Any) -> Any:
        logical_id, attribute = getatt_parts(value)
        if isinstance(value, list) and isinstance(value[1], dict):
            attribute = _stringify(self.resolve(value[1]))
        return self.ctx.resource_att(logical_id, attribute)

    def fn_sub(self, value: Any) -> Any:
        text, variables = sub_parts(value)
        if not isinstance(text, str):
            raise TemplateError("Template error: One or more Fn::Sub intrinsic functions don't specify expected arguments.")
        values = {name: self.resolve(expression) for name, expression in variables.items()}

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                found = values[name]
            elif "." in name and name.split(".", 1)[0] not in self.ctx.parameters and name not in PSEUDO_PARAMETERS:
                logical_id, attribute = name.split(".", 1)
                found = self.ctx.resource_att(logical_id, attribute)
            else:
                found = self.ref(name)
            if isinstance(found, list):
                raise TemplateError(f"Template error: variable {name} in Fn::Sub expression does not resolve to a string")
            return _stringify(found)

        return _SUB_VARIABLE.sub(substitute, text)

    def fn_join(self, value: Any) -> Any:
        delimiter, items = value
        items = self.resolve(items)
        if not isinstance(items, list):
            raise TemplateError("Template error: every Fn::Join object requires two parameters, (1) a string delimiter and (2) a list of strings to be joined or a function that returns a list of strings (such as Fn::GetAZs) to be joined.")
        return self.resolve(delimiter).join(_stringify(item) for item in items)

    def fn_split(self, value: Any) -> Any:
        delimiter, text = value
        text = self.resolve(text)
        if isinstance(text, list):
            text = ",".join(text)
        return _stringify(text).split(self.resolve(delimiter))

    def fn_select(self, value: Any) -> Any:
        index, items = value
        index = int(self.resolve(index))
        items = self.resolve(items)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise TemplateError("Template error: Fn::Select cannot select nonexistent value at index " + str(index))
        return items[index]

    def fn_if(self, value: Any) -> Any:
        name, when_true, when_false = value
        return self.resolve(when_true if self.condition(name) else when_false)

    def fn_equals(self, value: Any) -> bool:
        left, right = (self.resolve(item) for item in value)
        return _stringify(left) == _stringify(right) if not isinstance(left, list) else left == right

    def fn_and(self, value: Any) -> bool:
        return all(self._boolean(item) for item in value)

    def fn_or(self, value: Any) -> bool:
        return any(self._boolean(item) for item in value)

    def fn_not(self, value: Any) -> bool:
        return not self._boolean(value[0])

    def _boolean(self, item: Any) -> bool:
        if isinstance(item, dict) and set(item) == {"Condition"}:
            return self.condition(item["Condition"])
        result = self.resolve(item)
        if isinstance(result, bool):
            return result
        return _stringify(result).lower() == "true"

    def fn_condition(self, value: Any) -> bool:
        return self.condition(value)

    def fn_import_value(self, value: Any) -> Any:
        name = self.resolve(value)
        return self.ctx.import_value(_stringify(name))

    def fn_find_in_map(self, value: Any) -> Any:
        default = None
        if len(value) == 4 and isinstance(value[3], dict) and "DefaultValue" in value[3]:
            default = value[3]["DefaultValue"]
            value = value[:3]
        name, top, second = (self.resolve(item) for item in value)
        try:
            return self.ctx.mappings[name][_stringify(top)][_stringify(second)]
        except (KeyError, TypeError):
            if default is not None:
                return self.resolve(default)
            raise TemplateError(f"Template error: Unable to get mapping for {name}::{top}::{second}") from None

    def fn_get_azs(self, value: Any) -> Any:
        region = self.resolve(value) or self.ctx.region
        return self.ctx.availability_zones(region)

    def fn_base64(self, value: Any) -> Any:
        return base64.b64encode(_stringify(self.resolve(value)).encode()).decode()

    def fn_cidr(self, value: Any) -> Any:
        block, count, bits = (self.resolve(item) for item in value)
        network = ipaddress.ip_network(block, strict=False)
        prefix = network.max_prefixlen - int(bits)
        subnets = []
        for subnet in network.subnets(new_prefix=prefix):
            subnets.append(str(subnet))
            if len(subnets) == int(count):
                break
        return subnets

    def fn_length(self, value: Any) -> Any:
        return len(self.resolve(value))

    def fn_to_json_string(self, value: Any) -> Any:
        return json.dumps(self.resolve(value), separators=(",", ":"))


_FUNCTIONS: dict[str, Callable[[Evaluator, Any], Any]] = {
    "Ref": Evaluator.fn_ref,
    "Fn::GetAtt": Evaluator.fn_getatt,
    "Fn::Sub": Evaluator.fn_sub,
    "Fn::Join": Evaluator.fn_join,
    "Fn::Split": Evaluator.fn_split,
    "Fn::Select": Evaluator.fn_select,
    "Fn::If": Evaluator.fn_if,
    "Fn::Equals": Evaluator.fn_equals,
    "Fn::And": Evaluator.fn_and,
    "Fn::Or": Evaluator.fn_or,
    "Fn::Not": Evaluator.fn_not,
    "Condition": Evaluator.fn_condition,
    "Fn::ImportValue": Evaluator.fn_import_value,
    "Fn::FindInMap": Evaluator.fn_find_in_map,
    "Fn::GetAZs": Evaluator.fn_get_azs,
    "Fn::Base64": Evaluator.fn_base64,
    "Fn::Cidr": Evaluator.fn_cidr,
    "Fn::Length": Evaluator.fn_length,
    "Fn::ToJsonString": Evaluator.fn_to_json_string,
}


def evaluate_conditions(template: dict, context: Context) -> dict[str, bool]:
    """Every condition of the template, in dependency order (a condition may use another)."""
    definitions = template.get("Conditions") or {}
    results: dict[str, bool] = {}
    visiting: set[str] = set()
    context.conditions = results

    def evaluate(name: str) -> bool:
        if name in results:
            return results[name]
        if name not in definitions:
            raise TemplateError(f"Template format error: Unresolved dependencies [{name}]. Cannot reference resources in the Conditions block of the template")
        if name in visiting:
            raise TemplateError(f"Template format error: Circular dependency between conditions: [{name}]")
        visiting.add(name)

        def nested(_key: str, value: Any) -> None:
            if _key == "Condition" and isinstance(value, str):
                evaluate(value)

        walk(definitions[name], nested)
        results[name] = Evaluator(context)._boolean(definitions[name])
        visiting.discard(name)
        return results[name]

    for condition_name in definitions:
        evaluate(condition_name)
    return results


# ---- dependencies ----------------------------------------------------------------------------
def active_node(node: Any, conditions: dict[str, bool]) -> Any:
    """The node with every Fn::If replaced by its taken branch (for dependency discovery)."""
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node and isinstance(node["Fn::If"], list) and len(node["Fn::If"]) == 3:
            name, when_true, when_false = node["Fn::If"]
            return active_node(when_true if conditions.get(name, False) else when_false, conditions)
        return {key: active_node(value, conditions) for key, value in node.items()}
    if isinstance(node, list):
        return [active_node(item, conditions) for item in node]
    return node


def references(node: Any) -> set[str]:
    """Logical ids / parameter names a node refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()

    def visit(key: str, value: Any) -> None:
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::GetAtt":
            with contextlib.suppress(TemplateError):
                found.add(getatt_parts(value)[0])
        elif key == "Fn::Sub":
            text, variables = sub_parts(value)
            if isinstance(text, str):
                for name in sub_references(text):
                    if name not in variables:
                        found.add(name.split(".", 1)[0] if "." in name and not name.startswith("AWS::") else name)

    walk(node, visit)
    return found


def attribute_references(node: Any) -> set[tuple[str, str]]:
    """(logical id, attribute) pairs of Fn::GetAtt and ${X.Attr} in a node."""
    found: set[tuple[str, str]] = set()

    def visit(key: str, value: Any) -> None:
        if key == "Fn::GetAtt":
            with contextlib.suppress(TemplateError):
                found.add(getatt_parts(value))
        elif key == "Fn::Sub":
            text, variables = sub_parts(value)
            if isinstance(text, str):
                for name in sub_references(text):
                    if "." in name and name not in variables and not name.startswith("AWS::"):
                        logical_id, attribute = name.split(".", 1)
                        found.add((logical_id, attribute))

    walk(node, visit)
    return found


def resource_dependencies(resources: dict[str, dict], conditions: dict[str, bool]) -> dict[str, set[str]]:
    """{logical id: logical ids it needs first} over the resources that exist (Condition true)."""
    graph: dict[str, set[str]] = {}
    for logical_id, body in resources.items():
        needs = references(active_node(body.get("Properties", {}), conditions))
        depends_on = body.get("DependsOn", [])
        needs |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        graph[logical_id] = {name for name in needs if name in resources and name != logical_id}
    return graph


def creation_order(resources: dict[str, dict], conditions: dict[str, bool]) -> list[str]:
    """Resources in an order where each comes after what it needs; template order breaks ties."""
    graph = resource_dependencies(resources, conditions)
    position = {name: index for index, name in enumerate(resources)}
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as error:
        cycle = sorted(set(error.args[1]))
        raise TemplateError(f"Circular dependency between resources: [{', '.join(cycle)}]") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order


def imported_names(node: Any, evaluate: Callable[[Any], Any]) -> set[str]:
    """Export names a node imports (the name expression evaluated with `evaluate`)."""
    found: set[str] = set()

    def visit(key: str, value: Any) -> None:
        if key == "Fn::ImportValue":
            found.add(_stringify(evaluate(value)))

    walk(node, visit)
    return found


# ---- dynamic references -----------------------------------------------------------------------
def resolve_dynamic_references(node: Any, resolver: Callable[[str, str], str]) -> Any:
    """Replaces {{resolve:service:reference}} in every string (resolver raises TemplateError)."""
    if isinstance(node, str):
        if "{{resolve:" not in node:
            return node
        return _DYNAMIC_REFERENCE.sub(lambda m: resolver(m.group(1), m.group(2)), node)
    if isinstance(node, list):
        return [resolve_dynamic_references(item, resolver) for item in node]
    if isinstance(node, dict):
        return {key: resolve_dynamic_references(value, resolver) for key, value in node.items()}
    return node


def has_dynamic_reference(node: Any) -> bool:
    if isinstance(node, str):
        return "{{resolve:" in node
    if isinstance(node, list):
        return any(has_dynamic_reference(item) for item in node)
    if isinstance(node, dict):
        return any(has_dynamic_reference(value) for value in node.values())
    return False


def stringify_output(value: Any) -> str:
    """An output value as CloudFormation shows it (lists are comma-joined)."""
    if isinstance(value, list):
        return ",".join(_stringify(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return _stringify(value)
