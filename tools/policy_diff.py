"""Compare the functions' role policies of two compute templates, action by resource.

    python tools/policy_diff.py OLD_compute.json NEW_compute.json

For each function role: the (action, resource) pairs the new template grants that the old one did
not (broader) and those it no longer grants (narrower). Use it when converting a function.yaml
from `environment:`/`permissions:` to `uses:`: the new policy may be equal or narrower, and every
broader line needs a reason (CONTRIBUTING.md, "Add a Lambda function"). Exit 1 when any role is
broader, 0 otherwise.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Grant = tuple[str, str]


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_grants(template: dict[str, Any]) -> dict[str, set[Grant]]:
    """Role logical id -> every (action, resource) its inline Allow statements grant."""
    roles: dict[str, set[Grant]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        pairs: set[Grant] = set()
        for policy in resource["Properties"].get("Policies", []):
            for statement in _listify(policy["PolicyDocument"]["Statement"]):
                if statement["Effect"] != "Allow":
                    continue
                for action in _listify(statement["Action"]):
                    pairs |= {(action, json.dumps(target, sort_keys=True)) for target in _listify(statement["Resource"])}
        roles[logical_id] = pairs
    return roles


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[set[Grant], set[Grant]]]:
    """Role -> (broader: granted only by `new`, narrower: granted only by `old`), for roles that differ."""
    before, after = role_grants(old), role_grants(new)
    differences = {}
    for role in sorted(set(before) | set(after)):
        broader = after.get(role, set()) - before.get(role, set())
        narrower = before.get(role, set()) - after.get(role, set())
        if broader or narrower:
            differences[role] = (broader, narrower)
    return differences


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    old, new = (json.loads(Path(path).read_text(encoding="utf-8")) for path in argv)
    differences = compare(old, new)
    for role, (broader, narrower) in differences.items():
        print(role)
        for sign, pairs in (("+", broader), ("-", narrower)):
            for action, resource in sorted(pairs):
                print(f"  {sign} {action} on {resource}")
    return 1 if any(broader for broader, _ in differences.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
