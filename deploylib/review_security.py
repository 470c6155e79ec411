"""IAM and network warnings of the review: what a change does to a policy or a security group.

A warning is raised by what changes, never by the resource type alone: a change whose Scope is
only Tags or Metadata raises none. Each warning names the property and shows its before and
after value: policy documents as the statements removed (-) and added (+), security-group rules
as protocol/port/peer lines. The values come from the change set (DescribeChangeSet with
IncludePropertyValues: Target.Path, BeforeValue, AfterValue); where CloudFormation gives none
that can be read (truncated, given per leaf path, an Add or a Remove) they come from the
templates, and the warning says so. Pure functions of the change set and the templates.
"""
from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from platform_contracts import NETWORK_TYPES, PERMISSION_TYPE_PREFIXES

JSON = dict[str, Any]


class Kind(StrEnum):
    IAM = "iam"
    NETWORK = "network"


class Source(StrEnum):
    """Where a warning's values come from (written to review.json, shown in the review)."""

    CHANGE_SET = "change set"  # BeforeValue / AfterValue of the change set
    TEMPLATES = "templates"  # the deployed and the new template (values truncated or not given)
    TEMPLATE = "template"  # the new template: a stack with no change set yet, or an added resource


# Resource types whose changes are IAM / network warnings (exact types, or a type prefix).
KIND_BY_TYPE: dict[str, Kind] = {
    **dict.fromkeys(PERMISSION_TYPE_PREFIXES, Kind.IAM),
    **dict.fromkeys(NETWORK_TYPES, Kind.NETWORK),
}
POLICY_DOCUMENTS = frozenset({"AssumeRolePolicyDocument", "PolicyDocument", "KeyPolicy", "PolicyText"})
NAMED_POLICIES = "Policies"  # AWS::IAM::Role/User/Group: [{PolicyName, PolicyDocument}]
ARN_LISTS = frozenset({"ManagedPolicyArns"})
RULE_LISTS = {"SecurityGroupIngress": "from", "SecurityGroupEgress": "to"}  # on AWS::EC2::SecurityGroup
RULE_RESOURCES = {"AWS::EC2::SecurityGroupIngress": "from", "AWS::EC2::SecurityGroupEgress": "to"}
RULE_PEERS = ("CidrIp", "CidrIpv6", "SourceSecurityGroupId", "DestinationSecurityGroupId", "SourcePrefixListId",
              "DestinationPrefixListId", "SourceSecurityGroupName")


def kind_of(resource_type: str) -> Kind | None:
    for key, kind in KIND_BY_TYPE.items():
        if resource_type == key or (key.endswith("::") and resource_type.startswith(key)):
            return kind
    return None


# ---- values as readable text -------------------------------------------------------------------
def short(value: Any) -> str:
    """A template value on one line: intrinsics as Ref(X), X.Attr, import(...), Sub strings as written."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Ref":
            return f"Ref({argument})"
        if function == "Fn::GetAtt":
            return ".".join(map(str, argument)) if isinstance(argument, list) else str(argument)
        if function == "Fn::ImportValue":
            return f"import({short(argument)})"
        if function == "Fn::Sub":
            return short(argument[0] if isinstance(argument, list) else argument)
        if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
            return str(argument[0]).join(short(part) for part in argument[1]) if isinstance(argument[1], list) \
                else short(argument[1])
    if isinstance(value, list):
        return ", ".join(short(item) for item in value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def render_condition(condition: Any) -> str:
    """{"ArnLike": {"aws:SourceArn": "arn:..."}} as `ArnLike aws:SourceArn arn:...`, clauses joined by `and`."""
    if not isinstance(condition, dict):
        return short(condition)
    clauses = [f"{operator} {key} {short(value)}" if isinstance(pairs, dict) else f"{operator} {short(pairs)}"
               for operator, pairs in sorted(condition.items())
               for key, value in (sorted(pairs.items()) if isinstance(pairs, dict) else [("", None)])]
    return " and ".join(clauses)


def render_statement(statement: Any) -> str:
    if not isinstance(statement, dict):
        return short(statement)
    parts = [str(statement.get("Effect", "?"))]
    for key in ("Action", "NotAction"):
        if key in statement:
            parts.append(("not " if key == "NotAction" else "") + ", ".join(short(a) for a in _listed(statement[key])))
    principal = statement.get("Principal") or statement.get("NotPrincipal")
    if principal is not None:
        who = principal if not isinstance(principal, dict) else \
            "; ".join(f"{k} {short(v)}" for k, v in sorted(principal.items()))
        parts.append(f"for {short(who)}")
    for key in ("Resource", "NotResource"):
        if key in statement:
            parts.append(("on not " if key == "NotResource" else "on ") + short(_listed(statement[key])))
    if statement.get("Condition"):
        parts.append(f"if {render_condition(statement['Condition'])}")
    if statement.get("Sid"):
        parts.append(f"[{statement['Sid']}]")
    return " ".join(parts)


def policy_statements(document: Any, prefix: str = "") -> list[str]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return [prefix + document]
    if not isinstance(document, dict):
        return [prefix + short(document)]
    return [prefix + render_statement(s) for s in _listed(document.get("Statement", []))]


def render_rule(direction: str, rule: Any) -> str:
    if not isinstance(rule, dict):
        return short(rule)
    protocol = short(rule.get("IpProtocol", "?"))
    if protocol == "-1":
        ports = "all traffic"
    elif protocol in ("icmp", "1", "icmpv6", "58"):  # FromPort/ToPort are the ICMP type and code
        ports = f"{protocol} type {short(rule.get('FromPort'))} code {short(rule.get('ToPort'))}"
    else:
        low, high = rule.get("FromPort"), rule.get("ToPort")
        ports = f"{protocol} {short(low)}" if low == high or high is None else f"{protocol} {short(low)}-{short(high)}"
    peers = [f"{short(rule[key])}" for key in RULE_PEERS if key in rule] or ["?"]
    group = f" into {short(rule['GroupId'])}" if "GroupId" in rule else ""  # a standalone rule resource
    description = f" ({short(rule['Description'])})" if rule.get("Description") else ""
    return f"{ports} {direction} {', '.join(peers)}{group}{description}"


def property_items(resource_type: str, name: str, value: Any) -> list[str] | None:
    """A property as a list of comparable lines (statements, rules, ARNs), or None for a plain value."""
    if value is None:
        return []
    if name in POLICY_DOCUMENTS:
        return policy_statements(value)
    if name == NAMED_POLICIES and isinstance(value, list):
        return [line for policy in value if isinstance(policy, dict)
                for line in policy_statements(policy.get("PolicyDocument"), f"{short(policy.get('PolicyName'))}: ")]
    if name in ARN_LISTS:
        return [short(arn) for arn in _listed(value)]
    if name in RULE_LISTS and resource_type == "AWS::EC2::SecurityGroup":
        return [render_rule(RULE_LISTS[name], rule) for rule in _listed(value)]
    return None


def resource_items(resource_type: str, properties: JSON) -> list[str]:
    """What a whole resource grants or opens, as lines (an added or removed resource)."""
    if resource_type in RULE_RESOURCES:
        return [render_rule(RULE_RESOURCES[resource_type], properties)]
    if resource_type == "AWS::Lambda::Permission":
        source = f" from {short(properties['SourceArn'])}" if "SourceArn" in properties else ""
        return [f"{short(properties.get('Action'))} of {short(properties.get('FunctionName'))} for "
                f"{short(properties.get('Principal'))}{source}"]
    lines: list[str] = []
    for name, value in sorted(properties.items()):
        items = property_items(resource_type, name, value)
        if items:
            lines.extend(f"{name}: {item}" if name in RULE_LISTS or name in ARN_LISTS else item for item in items)
    return lines


def diff_lines(before: list[str], after: list[str]) -> list[str]:
    """Statements or rules removed (-) and added (+); unchanged ones are left out."""
    return [f"- {line}" for line in before if line not in after] + [f"+ {line}" for line in after if line not in before]


# ---- warnings -----------------------------------------------------------------------------------
def _resource(template: JSON | None, logical_id: str) -> JSON | None:
    resource = ((template or {}).get("Resources") or {}).get(logical_id)
    return resource if isinstance(resource, dict) else None


def _properties(template: JSON | None, logical_id: str) -> JSON:
    properties = (_resource(template, logical_id) or {}).get("Properties") or {}
    return properties if isinstance(properties, dict) else {}


def warning(change: JSON, prop: str | None, changes: list[str], source: Source, note: str = "") -> JSON:
    entry: JSON = {"logical_id": change.get("LogicalResourceId", ""), "type": change.get("ResourceType", ""),
                   "action": change.get("Action", ""), "property": prop, "changes": changes, "source": str(source)}
    if note:
        entry["note"] = note
    return entry


TRUNCATED = object()  # a value CloudFormation cut short: it no longer parses


def decode(text: Any) -> Any:
    """A BeforeValue/AfterValue: JSON documents and lists parsed, TRUNCATED if they do not parse."""
    if not isinstance(text, str) or text[:1] not in ("{", "["):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return TRUNCATED


def detail_values(details: list[JSON], name: str) -> tuple[Any, Any] | str:
    """(before, after) of a whole property from the change set, or why the templates are needed."""
    targets = [d.get("Target", {}) for d in details
               if d.get("Target", {}).get("Attribute") == "Properties" and d.get("Target", {}).get("Name") == name]
    whole = [t for t in targets if t.get("Path") == f"/Properties/{name}"]
    if len(whole) != 1 or not ({"BeforeValue", "AfterValue"} & set(whole[0])):
        return "the change set gives no whole value"
    before, after = decode(whole[0].get("BeforeValue")), decode(whole[0].get("AfterValue"))
    if before is TRUNCATED or after is TRUNCATED:
        return "CloudFormation truncated the value"
    return before, after


def _plain_change(before: Any, after: Any) -> list[str]:
    if before is None:
        return [f"set to {short(after)}"]
    if after is None:
        return [f"removed (was {short(before)})"]
    return [f"{short(before)} -> {short(after)}"]


def property_warning(change: JSON, name: str, previous: JSON | None, new: JSON | None) -> JSON:
    resource_type = change.get("ResourceType", "")
    values = detail_values(change.get("Details", []), name)
    source, note = Source.CHANGE_SET, ""
    if isinstance(values, str):
        logical_id = change.get("LogicalResourceId", "")
        source, note = Source.TEMPLATES, f"{values}: diff of the templates"
        values = (_properties(previous, logical_id).get(name), _properties(new, logical_id).get(name))
    before, after = values
    before_items, after_items = property_items(resource_type, name, before), property_items(resource_type, name, after)
    if before_items is not None and after_items is not None:
        lines = diff_lines(before_items, after_items)
    elif before == after:
        causes = sorted({str(d.get("CausingEntity")) for d in change.get("Details", [])
                         if d.get("Target", {}).get("Name") == name and d.get("CausingEntity")})
        lines = [f"value decided at deploy time ({', '.join(causes) or 'a reference'} changes)"]
    else:
        lines = _plain_change(before, after)
    return warning(change, name, lines or ["reordered or reformatted only"], source, note)


def rule_resource_warning(change: JSON, previous: JSON | None, new: JSON | None) -> JSON:
    """A standalone ingress/egress rule: the rule before and after, from the templates with the
    change set's values laid over them where it gives whole, readable ones."""
    logical_id, resource_type = change.get("LogicalResourceId", ""), change.get("ResourceType", "")
    before, after = dict(_properties(previous, logical_id)), dict(_properties(new, logical_id))
    names = sorted({d.get("Target", {}).get("Name") for d in change.get("Details", [])} - {None})
    source = Source.CHANGE_SET
    for name in names:
        values = detail_values(change.get("Details", []), name)
        if isinstance(values, str):
            source = Source.TEMPLATES
            continue
        before[name], after[name] = values
    direction = RULE_RESOURCES[resource_type]
    lines = diff_lines([render_rule(direction, before)], [render_rule(direction, after)])
    return warning(change, ", ".join(names), lines, source)


def change_warnings(change: JSON, previous: JSON | None, new: JSON | None) -> list[JSON]:
    """The warnings of one ResourceChange of an IAM or network type (none for other types, and
    none for a change of Tags or Metadata only)."""
    resource_type, logical_id = change.get("ResourceType", ""), change.get("LogicalResourceId", "")
    if kind_of(resource_type) is None:
        return []
    action = change.get("Action")
    if action == "Add":
        return [warning(change, None, [f"+ {line}" for line in resource_items(resource_type, _properties(new, logical_id))],
                        Source.TEMPLATE)]
    if action == "Remove":
        return [warning(change, None, [f"- {line}" for line in resource_items(resource_type, _properties(previous, logical_id))],
                        Source.TEMPLATES)]
    names = sorted({d.get("Target", {}).get("Name") for d in change.get("Details", [])
                    if d.get("Target", {}).get("Attribute") == "Properties"} - {None})
    if not names:
        return []  # Tags, Metadata: nothing granted or opened changes
    if resource_type in RULE_RESOURCES:
        return [rule_resource_warning(change, previous, new)]
    return [property_warning(change, name, previous, new) for name in names]


def template_warnings(template: JSON) -> list[JSON]:
    """What a stack without a change set yet will add, read from its template."""
    warnings = []
    for logical_id, resource in sorted((template.get("Resources") or {}).items()):
        resource_type = resource.get("Type", "")
        if kind_of(resource_type) is None:
            continue
        change = {"LogicalResourceId": logical_id, "ResourceType": resource_type, "Action": "Add"}
        lines = [f"+ {line}" for line in resource_items(resource_type, resource.get("Properties") or {})]
        warnings.append(warning(change, None, lines, Source.TEMPLATE))
    return warnings
