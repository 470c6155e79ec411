"""The environment review: one entry per stack, printed and written as review.json.

Parameter values of NoEcho parameters (listed by the manifest, or shown as **** by
CloudFormation) are masked; nothing else in the review can hold a secret.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from .guards import is_stateful, replacing_properties
from .manifest import StackSpec
from .plans import NOTHING_TO_RUN, Action, StackPlan

MASK = "****"  # how a NoEcho value is shown: the review, and deployed.json (deployed.py)
SECURITY_GROUP_TYPES = ("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")
IAM_TYPE_PREFIXES = ("AWS::IAM::", "AWS::Lambda::Permission", "AWS::KMS::Key", "AWS::SQS::QueuePolicy",
                     "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy")


def console_url(region: str, stack_id: str, change_set_id: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}"
        f"#/stacks/changesets/changes?stackId={quote(stack_id, safe='')}"
        f"&changeSetId={quote(change_set_id, safe='')}"
    )


def parameter_changes(spec: StackSpec, deployed: dict | None, parameters: dict[str, str] | None = None) -> list[dict]:
    """What changes between the deployed stack's parameters and `parameters` (the manifest's
    by default; a plan passes its own, deploy-managed values included)."""
    new = spec.parameters if parameters is None else parameters
    old = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (deployed or {}).get("Parameters", [])}
    rows = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        secret = name in spec.no_echo_parameters or before == MASK
        if secret:
            # the old value is unknown (****): report that it is passed, never what it is
            rows.append({"name": name, "old": MASK if before is not None else None,
                         "new": MASK if after is not None else None, "no_echo": True})
        elif before != after:
            rows.append({"name": name, "old": before, "new": after, "no_echo": False})
    return rows


def summarize_changes(spec: StackSpec, changes: list[dict]) -> dict:
    summary = {"added": [], "modified": [], "removed": [], "replacements": [],
               "iam_changes": [], "security_group_changes": []}
    for wrapper in changes:
        change = wrapper.get("ResourceChange", {})
        logical_id = change.get("LogicalResourceId", "")
        resource_type = change.get("ResourceType", "")
        entry = {"logical_id": logical_id, "type": resource_type}
        action = change.get("Action")
        if action == "Add":
            summary["added"].append(entry)
        elif action == "Remove":
            summary["removed"].append(entry)
        elif action in ("Modify", "Dynamic"):
            properties = sorted({d.get("Target", {}).get("Name") or d.get("Target", {}).get("Attribute", "")
                                 for d in change.get("Details", [])} - {""})
            summary["modified"].append({**entry, "properties": properties,
                                        "replacement": change.get("Replacement", "False")})
            if change.get("Replacement") in ("True", "Conditional"):
                summary["replacements"].append({
                    **entry, "replacement": change["Replacement"],
                    "caused_by": replacing_properties(change),
                    "stateful": is_stateful(spec, logical_id, resource_type),
                })
        if resource_type.startswith(IAM_TYPE_PREFIXES):
            summary["iam_changes"].append({**entry, "action": action})
        if resource_type in SECURITY_GROUP_TYPES:
            summary["security_group_changes"].append({**entry, "action": action})
    return summary


def template_resources(spec: StackSpec) -> list[dict]:
    """Resources of a stack whose change set cannot exist yet (new stack waiting for imports)."""
    resources = spec.template().get("Resources", {})
    return [{"logical_id": k, "type": v.get("Type", "")} for k, v in sorted(resources.items())]


def review_entry(plan: StackPlan) -> dict:
    """One stack's entry of the review (printed, review.json)."""
    spec = plan.spec
    entry = {"stack": spec.name, "region": spec.region, "action": str(plan.action), "note": plan.note,
             "parameter_changes": parameter_changes(spec, plan.deployed, plan.parameters),
             "guard_findings": [f.as_dict() for f in plan.findings]}
    if plan.change_set:
        entry.update(summarize_changes(spec, plan.change_set.changes))
        entry["change_set_id"] = plan.change_set.id
        entry["console_url"] = console_url(spec.region, plan.change_set.stack_id, plan.change_set.id)
    elif plan.action == Action.RECREATE or (plan.action == Action.DEFERRED and not plan.deployed):
        entry["added"] = template_resources(spec)
    if plan.action in NOTHING_TO_RUN or plan.parameters is None:
        entry["parameter_changes"] = []
    return entry


def render(entries: list[dict], header: str = "") -> str:
    lines = ["", f"=== Review{': ' + header if header else ''} ==="]
    for entry in entries:
        lines.append(f"\n{entry['stack']} ({entry['region']}): {entry['action'].upper()}"
                     + (f" - {entry['note']}" if entry.get("note") else ""))
        for label in ("added", "modified", "removed"):
            items = entry.get(label, [])
            if items:
                lines.append(f"  {label} ({len(items)}):")
                for item in items:
                    extra = ""
                    if item.get("properties"):
                        extra = f" [{', '.join(item['properties'])}]"
                    lines.append(f"    {item['logical_id']} {item['type']}{extra}")
        for item in entry.get("replacements", []):
            stateful = " STATEFUL" if item["stateful"] else ""
            lines.append(f"  REPLACES{stateful}: {item['logical_id']} {item['type']} "
                         f"(Replacement={item['replacement']}, caused by {', '.join(item['caused_by']) or '?'})")
        for item in entry.get("iam_changes", []):
            lines.append(f"  IAM/policy: {item['action']} {item['logical_id']} {item['type']}")
        for item in entry.get("security_group_changes", []):
            lines.append(f"  Security group: {item['action']} {item['logical_id']} {item['type']}")
        for item in entry.get("parameter_changes", []):
            lines.append(f"  parameter {item['name']}: {item['old']!r} -> {item['new']!r}")
        for finding in entry.get("guard_findings", []):
            lines.append(f"  BLOCKED ({finding['guard']} guard): {finding['message']}")
        if entry.get("console_url"):
            lines.append(f"  console: {entry['console_url']}")
    return "\n".join(lines)


def write_review(path: Path, environment: str, entries: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment, "stacks": entries}, indent=2, sort_keys=True) + "\n")
