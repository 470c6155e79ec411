"""The two guards that stop a deploy before execution.

Stateful guard: a change set that replaces (Replacement True or Conditional) or removes a
stateful resource stops the deploy, naming the resource and the property forcing replacement,
unless the logical id was passed with --allow-replace for this run.

Export guard: an export the new template removes, or whose value may change (its output
expression changed, or it refers to a resource being replaced or removed, or to a parameter
whose value changes), is checked with ListImports; an importer stops the deploy.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from platform_contracts import STATEFUL_TYPES

from .aws import Context, error_message
from .manifest import StackSpec
from .shapes import Change, JsonObject, Stack, Template

_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


@dataclass
class GuardFinding:
    guard: str  # "stateful" or "export"
    message: str
    logical_id: str = ""

    def as_dict(self) -> JsonObject:
        return {"guard": self.guard, "logical_id": self.logical_id, "message": self.message}


def is_stateful(spec: StackSpec, logical_id: str, resource_type: str) -> bool:
    """The manifest's stateful resources, or a resource of a type the build treats as stateful:
    the type check is what catches a stateful resource the new template removes (the new manifest
    no longer lists it). Exact types, the build's list: an Aurora instance or a bucket policy
    holds no data."""
    return logical_id in spec.stateful_resources or resource_type in STATEFUL_TYPES


def replacing_properties(change: JsonObject) -> list[str]:
    names = []
    for detail in change.get("Details", []):
        target = detail.get("Target", {})
        if target.get("RequiresRecreation") in ("Always", "Conditionally"):
            names.append(target.get("Name") or target.get("Attribute", "?"))
    return sorted(set(names))


def stateful_guard(spec: StackSpec, changes: list[Change], allowed: set[str]) -> list[GuardFinding]:
    findings = []
    for wrapper in changes:
        change = wrapper.get("ResourceChange", {})
        logical_id = change.get("LogicalResourceId", "")
        resource_type = change.get("ResourceType", "")
        if not is_stateful(spec, logical_id, resource_type) or logical_id in allowed:
            continue
        action = change.get("Action")
        if action == "Remove":
            findings.append(GuardFinding(
                "stateful",
                f"{spec.name}: {logical_id} ({resource_type}) would be REMOVED with its data; "
                f"rerun with --allow-replace {logical_id} if that is intended",
                logical_id,
            ))
        elif action == "Modify" and change.get("Replacement") in ("True", "Conditional"):
            properties = ", ".join(replacing_properties(change)) or "unknown property"
            certainty = "would be" if change["Replacement"] == "True" else "may be"
            findings.append(GuardFinding(
                "stateful",
                f"{spec.name}: {logical_id} ({resource_type}) {certainty} REPLACED (new resource, "
                f"data not carried over) because of a change to {properties}; rerun with "
                f"--allow-replace {logical_id} if that is intended",
                logical_id,
            ))
    return findings


def references(expression: object) -> set[str]:
    """Logical ids and parameter names a template expression (an output value, a property) refers to."""
    found: set[str] = set()
    if isinstance(expression, dict):
        for key, value in expression.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found.update(_SUB_REFERENCE.findall(text))
                if isinstance(value, list) and len(value) > 1:
                    found.update(references(value[1]))
            else:
                found.update(references(value))
    elif isinstance(expression, list):
        for item in expression:
            found.update(references(item))
    return found


def exports_at_risk(
    spec: StackSpec,
    deployed_stack: Stack,
    old_template: Template,
    new_template: Template,
    changes: list[Change],
    changed_parameters: set[str],
) -> dict[str, str]:
    """{export name: why it may change or disappear} for the exports this stack has now."""
    unstable = set(changed_parameters)
    for wrapper in changes:
        change = wrapper.get("ResourceChange", {})
        if change.get("Action") == "Remove" or change.get("Replacement") in ("True", "Conditional"):
            unstable.add(change.get("LogicalResourceId", ""))
    new_outputs = new_template.get("Outputs", {})
    old_outputs = old_template.get("Outputs", {})
    at_risk = {}
    for output in deployed_stack.get("Outputs", []):
        export_name = output.get("ExportName")
        if not export_name:
            continue
        key = output["OutputKey"]
        if export_name not in spec.exports or key not in new_outputs:
            at_risk[export_name] = "removed by the new template"
            continue
        new_value = new_outputs[key].get("Value")
        if old_outputs and new_value != old_outputs.get(key, {}).get("Value"):
            at_risk[export_name] = "its value expression changes"
            continue
        touched = references(new_value) & unstable
        if touched:
            at_risk[export_name] = f"it refers to {', '.join(sorted(touched))}, which changes"
    return at_risk


def importers(ctx: Context, region: str, export_name: str) -> list[str] | None:
    """Stacks importing the export; None only when the endpoint does not implement ListImports
    (moto). Any other error is raised: the export guard fails closed on real CloudFormation."""
    cfn = ctx.cfn(region)
    names: list[str] = []
    token = None
    while True:
        kwargs = {"ExportName": export_name}
        if token:
            kwargs["NextToken"] = token
        try:
            response = cfn.call("list_imports", **kwargs)
        except (ClientError, ResponseParserError, NotImplementedError) as error:
            if isinstance(error, ClientError) and "is not imported by any stack" in error_message(error):
                return names
            if cfn.emulator_gap(error):
                return None
            raise
        names += response.get("Imports", [])
        token = response.get("NextToken")
        if not token:
            return names


def export_guard(
    ctx: Context, spec: StackSpec, at_risk: dict[str, str], warn: Callable[[str], None]
) -> list[GuardFinding]:
    findings = []
    for export_name, why in sorted(at_risk.items()):
        try:
            users = importers(ctx, spec.region, export_name)
        except (ClientError, ResponseParserError) as error:
            text = error_message(error) if isinstance(error, ClientError) else str(error).splitlines()[0]
            findings.append(GuardFinding(
                "export",
                f"{spec.name}: export {export_name} may change ({why}) and ListImports failed "
                f"({text}), so nobody can say whether another stack still imports it; stopping. "
                f"Check `aws cloudformation list-imports --region {spec.region} --export-name "
                f"{export_name}` (needs cloudformation:ListImports) and deploy again.",
            ))
            continue
        if users is None:
            warn(f"ListImports not implemented by this endpoint for {export_name} ({why}): "
                 f"export guard could not verify it (real CloudFormation checks it)")
            continue
        if users:
            findings.append(GuardFinding(
                "export",
                f"{spec.name}: export {export_name} is still imported by {', '.join(sorted(users))} "
                f"and {why}. Two-step way out: (1) change {', '.join(sorted(users))} to stop "
                f"importing {export_name} (keep the old export in place, or publish the new value "
                f"under a new export name and import that) and deploy; (2) then deploy this change "
                f"to {spec.name}.",
            ))
    return findings
