"""A small evaluator for the policies the templates write: enough of IAM's rules to say whether
a request is allowed (an explicit Deny wins, then any Allow, else denied).

It resolves the intrinsics those policies use (Ref of pseudo parameters or of named resources,
Fn::Sub and Fn::Join of them, Fn::ImportValue by name) for one account and region, matches principals (AWS,
Service, Federated; none in an identity policy), actions, resources (when the request names
one) and the condition operators the templates use, and treats `...IfExists` operators, `Null`,
`ForAllValues:` on multi-valued keys and absent keys the way IAM does.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

ACCOUNT, REGION, PARTITION = "123456789012", "eu-west-1", "aws"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION, "AWS::URLSuffix": "amazonaws.com"}


@dataclass
class Request:
    action: str
    principal: dict = field(default_factory=dict)  # {"AWS": arn}, {"Service": ...} or {"Federated": provider}
    context: dict = field(default_factory=dict)  # condition keys -> value (str, bool, or list: multi-valued)
    resource: str | None = None  # None: resources are not checked


def resolve(node, refs: dict | None = None):
    """Intrinsics resolved: pseudo parameters, `refs` (logical id or export name -> value)."""
    names = {**PSEUDO, **(refs or {})}
    if isinstance(node, dict) and set(node) == {"Ref"}:
        return names[node["Ref"]]
    if isinstance(node, dict) and set(node) == {"Fn::ImportValue"}:
        return names[node["Fn::ImportValue"]]
    if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
        text, values = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        values = {key: resolve(value, refs) for key, value in values.items()}
        return re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: values.get(m[1], names.get(m[1], m[0])), text)
    if isinstance(node, dict) and set(node) == {"Fn::Join"}:
        separator, parts = node["Fn::Join"]
        return separator.join(resolve(part, refs) for part in parts)
    if isinstance(node, dict):
        return {key: resolve(value, refs) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, refs) for item in node]
    return node


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal, request: Request) -> bool:
    if principal is None:  # an identity policy: the principal is the role holding it
        return True
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    for kind, values in principal.items():
        for value in _as_list(values):
            if kind in ("Service", "Federated") and request.principal.get(kind) == value:
                return True
            account_root = re.fullmatch(r"arn:aws:iam::(\d{12}):root", value)
            caller = request.principal.get("AWS", "")
            if kind == "AWS" and account_root and caller.startswith(f"arn:aws:iam::{account_root[1]}:"):
                return True
    return False


def _compare(operator: str, actual, expected) -> bool:
    if operator in ("Bool",):
        return str(actual).lower() == str(expected).lower()
    if operator in ("StringEquals", "ArnEquals"):
        return actual == expected
    if operator in ("StringLike", "ArnLike"):
        return fnmatch.fnmatchcase(str(actual), expected)
    raise AssertionError(f"operator {operator} not supported by this evaluator")


def _pair_holds(raw_operator: str, key: str, expected, context: dict) -> bool:
    if raw_operator == "Null":  # "true": the key must be absent; "false": present
        return (key not in context) == (str(expected).lower() == "true")
    operator = raw_operator.removesuffix("IfExists").removeprefix("ForAnyValue:").removeprefix("ForAllValues:")
    if key not in context:
        # IfExists and ForAllValues (an empty set of values) hold when the key is absent.
        return raw_operator.endswith("IfExists") or raw_operator.startswith("ForAllValues:")
    values = _as_list(expected)
    if raw_operator.startswith("ForAllValues:"):
        return all(any(_compare(operator, actual, value) for value in values) for actual in _as_list(context[key]))
    return any(_compare(operator, actual, value) for value in values for actual in _as_list(context[key]))


def _condition_holds(conditions: dict, context: dict) -> bool:
    return all(_pair_holds(operator, key, expected, context)
               for operator, pairs in conditions.items() for key, expected in pairs.items())


def _resource_matches(statement: dict, request: Request) -> bool:
    if request.resource is None:
        return True
    return any(fnmatch.fnmatchcase(request.resource, pattern) for pattern in _as_list(statement.get("Resource", "*")))


def _matches(statement: dict, request: Request) -> bool:
    actions = _as_list(statement["Action"])
    return (_principal_matches(statement.get("Principal"), request)
            and any(fnmatch.fnmatchcase(request.action, action) for action in actions)
            and _resource_matches(statement, request)
            and _condition_holds(statement.get("Condition", {}), request.context))


def allowed(policy: dict, request: Request, refs: dict | None = None) -> bool:
    """`policy` may also be a list of policy documents (a role's, evaluated together)."""
    documents = policy if isinstance(policy, list) else [policy]
    statements = [resolve(statement, refs) for document in documents for statement in _as_list(document["Statement"])]
    if any(s["Effect"] == "Deny" and _matches(s, request) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, request) for s in statements)
