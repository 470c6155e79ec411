"""A small evaluator for the key policies the templates write: enough of IAM's rules to say
whether a request on "this key" is allowed (an explicit Deny wins, then any Allow, else denied).
Identity policies (a role's statements: no Principal) are evaluated too when the request names
its resource, which is then matched against each statement's Resource.

It resolves the intrinsics those policies use (Ref of pseudo parameters, Fn::Sub of them) for
one account and region, matches principals, actions and the condition operators the templates
use, and treats `...IfExists` operators and absent keys the way IAM does.
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
    principal: dict  # {"AWS": arn} or {"Service": "x.amazonaws.com"}
    context: dict = field(default_factory=dict)  # condition keys -> value (str or bool)
    resource: str | None = None  # identity policies: the ARN the request acts on


def resolve(node):
    if isinstance(node, dict) and set(node) == {"Ref"}:
        return PSEUDO[node["Ref"]]
    if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
        text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
        return re.sub(r"\$\{(AWS::[A-Za-z]+)\}", lambda m: PSEUDO[m[1]], text)
    if isinstance(node, dict) and set(node) == {"Fn::Join"}:
        separator, parts = node["Fn::Join"]
        return separator.join(resolve(part) for part in parts)
    if isinstance(node, dict):
        return {key: resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item) for item in node]
    return node


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal, request: Request) -> bool:
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    for kind, values in principal.items():
        for value in _as_list(values):
            if kind == "Service" and request.principal.get("Service") == value:
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


def _condition_holds(conditions: dict, context: dict) -> bool:
    for raw_operator, pairs in conditions.items():
        if_exists = raw_operator.endswith("IfExists")
        operator = raw_operator.removesuffix("IfExists").removeprefix("ForAnyValue:")
        for key, expected in pairs.items():
            if key not in context:
                if if_exists:
                    continue
                return False
            values = _as_list(expected)
            if not any(_compare(operator, context[key], value) for value in values):
                return False
    return True


def _matches(statement: dict, request: Request) -> bool:
    actions = _as_list(statement["Action"])
    resources = _as_list(statement.get("Resource", "*"))
    return (("Principal" not in statement or _principal_matches(statement["Principal"], request))
            and (request.resource is None or any(fnmatch.fnmatchcase(request.resource, r) for r in resources))
            and any(fnmatch.fnmatchcase(request.action, action) for action in actions)
            and _condition_holds(statement.get("Condition", {}), request.context))


def allowed(policy: dict, request: Request) -> bool:
    statements = [resolve(statement) for statement in policy["Statement"]]
    if any(s["Effect"] == "Deny" and _matches(s, request) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, request) for s in statements)
