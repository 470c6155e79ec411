"""The saved plan (build/<env>/plan.json): what `make plan` reviewed, so `make execute` runs
exactly that and refuses a stack whose template, parameters or tags changed since.

It holds hashes, never parameter values.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .aws import Context, error_message
from .changesets import ChangeSet, all_changes, digest
from .lifecycle import effective_parameters
from .manifest import Manifest, ManifestError, StackSpec
from .plans import Action, StackPlan
from .provenance import Provenance, differences
from .stacks import describe_stack

PLAN_FORMAT = 2


def plan_path(manifest: Manifest) -> Path:
    return manifest.build_dir / "plan.json"


def save_plan(manifest: Manifest, plans: list[StackPlan]) -> None:
    stacks = {}
    for plan in plans:
        parameters = plan.parameters if plan.parameters is not None else effective_parameters(plan.spec, plan.deployed)
        stacks[plan.spec.name] = {
            "action": str(plan.action), "region": plan.spec.region, "note": plan.note,
            "sha256": plan.spec.sha256, "parameters_sha256": digest(parameters),
            "tags_sha256": digest(manifest.tags),
            "change_set_id": plan.change_set.id if plan.change_set else None,
            "change_set_type": plan.change_set.type if plan.change_set else None,
            "stack_id": plan.change_set.stack_id if plan.change_set else None,
            "blocked": plan.blocked,
        }
    document = {"format": PLAN_FORMAT, "environment": manifest.environment, "stacks": stacks}
    plan_path(manifest).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def load_saved_plan(manifest: Manifest) -> dict[str, Any]:
    path = plan_path(manifest)
    if not path.is_file():
        raise ManifestError(f"no plan at {path}: run `make plan ENV={manifest.environment}` first")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path} is not valid JSON ({error}): run `make plan ENV={manifest.environment}` again") from None
    if document.get("format") != PLAN_FORMAT or document.get("environment") != manifest.environment:
        raise ManifestError(f"{path} is not a plan of {manifest.environment} by this version: run `make plan` again")
    stacks: dict[str, Any] = document["stacks"]
    return stacks


def review_path(manifest: Manifest) -> Path:
    return manifest.build_dir / "review.json"


def reviewed_provenance(manifest: Manifest) -> dict[str, Any]:
    """The provenance the last plan's review recorded (commit, manifest hash, account, region, time)."""
    path = review_path(manifest)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ManifestError(f"cannot read the reviewed plan's {path.name} ({error}): "
                            f"run `make plan ENV={manifest.environment}` again") from None
    provenance = document.get("provenance") if isinstance(document, dict) else None
    if not isinstance(provenance, dict):
        raise ManifestError(f"{path} records no provenance (written by an older version): run `make plan` again")
    return provenance


def provenance_problems(manifest: Manifest, current: Provenance) -> list[str]:
    """Why the reviewed plan is not the one about to run: a different commit, build, account or region."""
    return differences(reviewed_provenance(manifest), current)


def saved_plan_problem(ctx: Context, manifest: Manifest, spec: StackSpec, saved: dict[str, Any] | None) -> str | None:
    if saved is None:
        return "not in the last plan"
    if saved["sha256"] != spec.sha256:
        return "template changed since the plan"
    deployed = describe_stack(ctx, spec.region, spec.name)
    if saved["parameters_sha256"] != digest(effective_parameters(spec, deployed)):
        return "parameters (or the stack's state) changed since the plan"
    if saved["tags_sha256"] != digest(manifest.tags):
        return "tags changed since the plan"
    if saved.get("change_set_id"):
        try:
            described = ctx.cfn(spec.region).call("describe_change_set", ChangeSetName=saved["change_set_id"])
        except ClientError as error:
            return f"its change set is gone ({error_message(error)})"
        if described.get("ExecutionStatus") != "AVAILABLE":
            return f"its change set is {described.get('ExecutionStatus')} (executed, obsolete or failed)"
    return None


def plan_from_saved(ctx: Context, spec: StackSpec, saved: dict[str, Any]) -> StackPlan:
    deployed = describe_stack(ctx, spec.region, spec.name)
    parameters = effective_parameters(spec, deployed)
    action = Action(saved["action"])
    if not saved.get("change_set_id"):
        return StackPlan(spec, action, deployed, note=saved.get("note", ""), parameters=parameters)
    first = ctx.cfn(spec.region).call("describe_change_set", ChangeSetName=saved["change_set_id"],
                                      IncludePropertyValues=True)
    change_set = ChangeSet(saved["change_set_id"], saved["stack_id"], saved["change_set_type"],
                           all_changes(ctx, spec.region, saved["change_set_id"], first), first.get("Parameters", []))
    return StackPlan(spec, action, deployed if saved["change_set_type"] == "UPDATE" else None, change_set,
                     note=saved.get("note", ""), parameters=parameters)
