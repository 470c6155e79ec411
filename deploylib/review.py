"""The environment review: a summary and one entry per stack, a pure function of the plans (their
change sets, described with property values), the templates and the provenance. It is printed
(review_render.render_text), written as review.json and as review.md (render_markdown).

Parameter values of NoEcho parameters (listed by the manifest, or shown as **** by
CloudFormation) are masked; nothing else in the review can hold a secret.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from platform_contracts import NO_ECHO_MASK

from .guards import is_stateful, replacing_properties
from .manifest import StackSpec
from .plans import NOTHING_TO_RUN, Action, StackPlan
from .provenance import Provenance
from .review_security import Kind, change_warnings, kind_of, template_warnings

JSON = dict[str, Any]
MASK = NO_ECHO_MASK  # how a NoEcho value is shown: the review, and deployed.json (deployed.py)
WARNING_KEYS = {Kind.IAM: "iam_changes", Kind.NETWORK: "security_group_changes"}
# How the header counts stacks: each action in one column.
STACK_COLUMNS = {
    Action.CREATE: "create", Action.RECREATE: "create", Action.UPDATE: "update", Action.UNCHANGED: "skip",
    Action.NO_OP: "skip", Action.DEFERRED: "deferred", Action.BLOCKED: "blocked", Action.FAILED: "blocked",
}


def console_url(region: str, stack_id: str, change_set_id: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}"
        f"#/stacks/changesets/changes?stackId={quote(stack_id, safe='')}"
        f"&changeSetId={quote(change_set_id, safe='')}"
    )


def parameter_changes(spec: StackSpec, deployed: JSON | None, parameters: dict[str, str] | None = None) -> list[JSON]:
    """What changes between the deployed stack's parameters and `parameters` (the manifest's
    by default; a plan passes its own, deploy-managed values included)."""
    new = spec.parameters if parameters is None else parameters
    old = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (deployed or {}).get("Parameters", [])}
    rows: list[JSON] = []
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


def _properties_changed(change: JSON) -> list[str]:
    return sorted({d.get("Target", {}).get("Name") or d.get("Target", {}).get("Attribute", "")
                   for d in change.get("Details", [])} - {""})


def summarize_changes(spec: StackSpec, changes: list[JSON], previous: JSON | None, new: JSON | None) -> JSON:
    summary: JSON = {"added": [], "modified": [], "removed": [], "replacements": [],
                     "iam_changes": [], "security_group_changes": []}
    for wrapper in changes:
        change = wrapper.get("ResourceChange", {})
        logical_id, resource_type = change.get("LogicalResourceId", ""), change.get("ResourceType", "")
        entry: JSON = {"logical_id": logical_id, "type": resource_type}
        action = change.get("Action")
        if action == "Add":
            summary["added"].append(entry)
        else:
            entry["stateful"] = is_stateful(spec, logical_id, resource_type)
        if action == "Remove":
            summary["removed"].append(entry)
        elif action in ("Modify", "Dynamic"):
            summary["modified"].append({**entry, "properties": _properties_changed(change),
                                        "scope": sorted(change.get("Scope", [])),
                                        "replacement": change.get("Replacement", "False")})
            if change.get("Replacement") in ("True", "Conditional"):
                summary["replacements"].append({**entry, "replacement": change["Replacement"],
                                                "caused_by": replacing_properties(change)})
        kind = kind_of(resource_type)
        if kind is not None:
            summary[WARNING_KEYS[kind]].extend(change_warnings(change, previous, new))
    return summary


def template_summary(spec: StackSpec, template: JSON) -> JSON:
    """A stack whose change set cannot exist yet: what its template adds, IAM and network included."""
    resources = template.get("Resources", {})
    summary: JSON = {"added": [{"logical_id": k, "type": v.get("Type", "")} for k, v in sorted(resources.items())],
                     "from_template": True, "iam_changes": [], "security_group_changes": []}
    for item in template_warnings(template):
        kind = kind_of(item["type"])
        if kind is not None:
            summary[WARNING_KEYS[kind]].append(item)
    return summary


def review_entry(plan: StackPlan) -> JSON:
    """One stack's entry of the review (printed, review.json, review.md)."""
    spec = plan.spec
    entry: JSON = {"stack": spec.name, "region": spec.region, "action": str(plan.action), "note": plan.note,
                   "parameter_changes": parameter_changes(spec, plan.deployed, plan.parameters),
                   "guard_findings": [f.as_dict() for f in plan.findings]}
    if plan.change_set:
        entry.update(summarize_changes(spec, plan.change_set.changes, plan.previous_template, spec.template()))
        entry["change_set_id"] = plan.change_set.id
        entry["console_url"] = console_url(spec.region, plan.change_set.stack_id, plan.change_set.id)
    elif plan.action == Action.RECREATE or (plan.action == Action.DEFERRED and not plan.deployed):
        entry.update(template_summary(spec, spec.template()))
    if plan.action in NOTHING_TO_RUN or plan.parameters is None:
        entry["parameter_changes"] = []
    return entry


def summarize(entries: Sequence[JSON]) -> JSON:
    """The header's counts: what a reviewer must know first."""
    stacks = {column: 0 for column in STACK_COLUMNS.values()}
    for entry in entries:
        column = "blocked" if entry.get("guard_findings") else STACK_COLUMNS[Action(entry["action"])]
        stacks[column] += 1
    resources = {key: sum(len(e.get(key, [])) for e in entries) for key in ("added", "modified", "removed")}
    resources["replaced"] = sum(len(e.get("replacements", [])) for e in entries)
    resources["added_from_templates"] = sum(len(e.get("added", [])) for e in entries if e.get("from_template"))
    stateful = sorted({f"{e['stack']}/{item['logical_id']}" for e in entries
                       for key in ("modified", "removed") for item in e.get(key, []) if item.get("stateful")})
    return {"stacks": stacks, "resources": resources, "stateful_touched": stateful,
            "iam_changes": sum(len(e.get("iam_changes", [])) for e in entries),
            "security_group_changes": sum(len(e.get("security_group_changes", [])) for e in entries)}


def review_document(environment: str, provenance: Provenance, plans: Sequence[StackPlan]) -> JSON:
    entries = [review_entry(plan) for plan in plans]
    return {"environment": environment, "provenance": provenance.as_dict(), "summary": summarize(entries),
            "stacks": entries}


def write_review(path: Path, document: JSON) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
