"""The six commands: plan, deploy, execute, destroy, status, outputs.

Each returns a process exit code. 0: done; 1: failed or blocked (a guard, a stack state, a
refused plan); 2: refused before doing anything (prod destroy without --force, no confirmation).
"""
from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from .artifacts import check_template_delivery
from .aws import Context, error_message
from .changesets import ChangeSet, all_changes, deployed_template, digest
from .deployed import write_and_publish
from .engine import Deployer, StackPlan, set_termination_protection
from .manifest import Manifest, StackSpec
from .output import Printer
from .review import render, write_review
from .scheduler import Outcome, RunResult, reverse_graph, run_graph
from .stacks import describe_stack, format_event, list_stack_resources, root_cause, wait_for_stack

PLAN_FORMAT = 1
RETAINING_POLICIES = ("Retain", "RetainExceptOnCreate", "Snapshot")


@dataclass
class Options:
    yes: bool = False
    force: bool = False
    drift: bool = False
    allow_replace: set[str] = field(default_factory=set)
    max_parallel: int = 4
    stdin: TextIO | None = None
    ask: Callable[[str], str] = input


def plan_path(manifest: Manifest) -> Path:
    return manifest.build_dir / "plan.json"


def review_path(manifest: Manifest) -> Path:
    return manifest.build_dir / "review.json"


def confirm(printer: Printer, options: Options, question: str) -> bool:
    if options.yes:
        return True
    stdin = options.stdin or sys.stdin
    if not stdin.isatty():
        printer.line("not on a terminal and --yes (YES=1) not given: nothing executed")
        return False
    return options.ask(f"{question} Type 'yes' to continue: ").strip() == "yes"


def print_summary(printer: Printer, result: RunResult) -> None:
    printer.line("\n=== Summary ===")
    groups: dict[str, list[str]] = {}
    for name, outcome in sorted(result.outcomes.items()):
        groups.setdefault(outcome.label, []).append(name)
    for label, names in groups.items():
        printer.line(f"{label}: {', '.join(names)}")
    if result.not_started:
        printer.line(f"not started: {', '.join(result.not_started)}")
    for name, outcome in sorted(result.outcomes.items()):
        if not outcome.ok:
            printer.line(f"{name}: {outcome.detail}")


# ---- plan / deploy / execute -------------------------------------------------------------
def make_plan(ctx: Context, manifest: Manifest, printer: Printer, deployer: Deployer, options: Options) -> list[StackPlan]:
    for spec in manifest.stacks:
        spec.template_bytes()  # a template that does not match the manifest stops everything up front
    check_template_delivery(manifest)
    deployer.upload_if_bucket_exists()
    with ThreadPoolExecutor(max_workers=max(1, options.max_parallel)) as pool:
        plans = list(pool.map(deployer.plan_stack, manifest.stacks))
    entries = [deployer.review_entry(plan) for plan in plans]
    printer.line(render(entries))
    write_review(review_path(manifest), manifest.environment, entries)
    save_plan(manifest, plans)
    printer.line(f"\nreview written to {review_path(manifest)}")
    return plans


def save_plan(manifest: Manifest, plans: list[StackPlan]) -> None:
    stacks = {}
    for plan in plans:
        stacks[plan.spec.name] = {
            "action": plan.action, "region": plan.spec.region, "note": plan.note,
            "sha256": plan.spec.sha256, "parameters_sha256": digest(plan.spec.parameters),
            "tags_sha256": digest(manifest.tags),
            "change_set_id": plan.change_set.id if plan.change_set else None,
            "change_set_type": plan.change_set.type if plan.change_set else None,
            "stack_id": plan.change_set.stack_id if plan.change_set else None,
            "blocked": plan.blocked,
        }
    document = {"format": PLAN_FORMAT, "environment": manifest.environment, "stacks": stacks}
    plan_path(manifest).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def _run(deployer: Deployer, manifest: Manifest, plans: dict[str, StackPlan], options: Options,
         may_create_change_sets: bool) -> RunResult:
    return run_graph(
        manifest.dependencies(),
        lambda name: deployer.execute_stack(plans[name], may_create_change_sets),
        options.max_parallel,
    )


def publish_resource_manifest(ctx: Context, manifest: Manifest, printer: Printer, result: RunResult) -> bool:
    """deployed.json after a run; False (the command fails) when it could not be read back or published."""
    try:
        write_and_publish(ctx, manifest, printer, result)
        return True
    except ClientError as error:
        printer.line(f"error: resource manifest not complete or not published: {error_message(error) or error}")
    except (BotoCoreError, ResponseParserError, OSError) as error:
        printer.line(f"error: resource manifest not complete or not published: {str(error).splitlines()[0]}")
    return False


def _report_blocked(printer: Printer, plans: list[StackPlan]) -> bool:
    blocked = [p for p in plans if p.blocked]
    for plan in blocked:
        printer.line(f"BLOCKED {plan.spec.name}: {plan.note or '; '.join(f.message for f in plan.findings)}")
    return bool(blocked)


def cmd_plan(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    deployer = Deployer(ctx, manifest, printer, options.allow_replace)
    plans = make_plan(ctx, manifest, printer, deployer, options)
    if _report_blocked(printer, plans):
        return 1
    printer.line(f"nothing executed; review the change sets, then `make execute ENV={manifest.environment}`")
    return 0


def cmd_deploy(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    deployer = Deployer(ctx, manifest, printer, options.allow_replace)
    plans = make_plan(ctx, manifest, printer, deployer, options)
    if _report_blocked(printer, plans):
        printer.line("deploy stopped before execution: nothing executed")
        return 1
    if not all(p.action in ("unchanged", "no-op") for p in plans):
        if not confirm(printer, options, f"Deploy {manifest.environment}?"):
            return 2
    result = _run(deployer, manifest, {p.spec.name: p for p in plans}, options, True)
    print_summary(printer, result)
    published = publish_resource_manifest(ctx, manifest, printer, result)
    return 0 if result.ok and published else 1


def _load_saved_plan(manifest: Manifest) -> dict:
    path = plan_path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"no plan at {path}: run `make plan ENV={manifest.environment}` first")
    document = json.loads(path.read_text())
    if document.get("format") != PLAN_FORMAT or document.get("environment") != manifest.environment:
        raise FileNotFoundError(f"{path} is not a plan of {manifest.environment}: run `make plan` again")
    return document


def _saved_plan_problem(ctx: Context, manifest: Manifest, spec: StackSpec, saved: dict | None) -> str | None:
    if saved is None:
        return "not in the last plan"
    if saved["sha256"] != spec.sha256:
        return "template changed since the plan"
    if saved["parameters_sha256"] != digest(spec.parameters):
        return "parameters changed since the plan"
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


def _plan_from_saved(ctx: Context, spec: StackSpec, saved: dict) -> StackPlan:
    deployed = describe_stack(ctx, spec.region, spec.name)
    if not saved.get("change_set_id"):
        return StackPlan(spec, saved["action"], deployed, note=saved.get("note", ""))
    first = ctx.cfn(spec.region).call("describe_change_set", ChangeSetName=saved["change_set_id"])
    change_set = ChangeSet(saved["change_set_id"], saved["stack_id"], saved["change_set_type"],
                           all_changes(ctx, spec.region, saved["change_set_id"], first), first.get("Parameters", []))
    return StackPlan(spec, saved["action"], deployed if saved["change_set_type"] == "UPDATE" else None, change_set)


def cmd_execute(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    saved = _load_saved_plan(manifest)["stacks"]
    refused = {}
    for spec in manifest.stacks:
        problem = _saved_plan_problem(ctx, manifest, spec, saved.get(spec.name))
        if problem:
            refused[spec.name] = problem
    if refused:
        for name, problem in sorted(refused.items()):
            printer.line(f"REFUSED {name}: {problem}")
        printer.line(f"nothing executed: run `make plan ENV={manifest.environment}` and review again")
        return 1
    deployer = Deployer(ctx, manifest, printer, options.allow_replace)
    plans = {spec.name: _plan_from_saved(ctx, spec, saved[spec.name]) for spec in manifest.stacks}
    for plan in plans.values():
        if plan.change_set:
            plan.findings = deployer.guard(plan)  # imports may have appeared since the plan
    if _report_blocked(printer, list(plans.values())):
        printer.line("nothing executed")
        return 1
    result = _run(deployer, manifest, plans, options, may_create_change_sets=False)
    print_summary(printer, result)
    if any(o.label == "needs a new plan" for o in result.outcomes.values()):
        printer.line(f"stacks waiting for their dependencies need a new review: run `make plan ENV={manifest.environment}`")
    published = publish_resource_manifest(ctx, manifest, printer, result)
    return 0 if result.ok and published else 1


# ---- destroy -------------------------------------------------------------------------------
def retained_resources(ctx: Context, spec: StackSpec) -> list[str]:
    """Resources with a retaining DeletionPolicy in the deployed template, with physical ids."""
    template = deployed_template(ctx, spec.region, spec.name)
    keep = {logical_id: body.get("DeletionPolicy") for logical_id, body in template.get("Resources", {}).items()
            if body.get("DeletionPolicy") in RETAINING_POLICIES}
    if not keep:
        return []
    physical = {summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
                for summary in list_stack_resources(ctx, spec.region, spec.name)}
    return [f"{spec.name}: {logical_id} ({physical.get(logical_id, 'not created')}) kept by DeletionPolicy {policy}"
            for logical_id, policy in sorted(keep.items())]


def _delete_stack(ctx: Context, printer: Printer, spec: StackSpec, retained: list[str]) -> Outcome:
    deployed = describe_stack(ctx, spec.region, spec.name)
    if not deployed:
        return Outcome(True, "absent")
    cfn = ctx.cfn(spec.region)
    try:
        kept = retained_resources(ctx, spec)
        if deployed.get("EnableTerminationProtection"):
            printer.stack(spec.name, "turning termination protection off to delete")
            set_termination_protection(ctx, printer, spec, False)
        cfn.call("delete_stack", StackName=deployed["StackId"])
        status, events = wait_for_stack(ctx, spec.region, deployed["StackId"], spec.timeout_minutes,
                                        on_event=lambda e: printer.stack(spec.name, format_event(e)))
    except ClientError as error:
        return Outcome(False, "failed", error_message(error))
    if status != "DELETE_COMPLETE":
        cause = root_cause(events)
        reason = f"{cause['LogicalResourceId']}: {cause.get('ResourceStatusReason', '')}" if cause else status
        return Outcome(False, "failed", f"{status}; {reason}")
    retained.extend(kept)
    return Outcome(True, "deleted")


def cmd_destroy(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    if manifest.environment == "prod" and not options.force:
        printer.line("refusing to destroy prod without --force (FORCE=1)")
        return 2
    if not confirm(printer, options, f"Delete every stack of {manifest.environment}?"):
        return 2
    retained: list[str] = []
    by_name = manifest.by_name
    result = run_graph(reverse_graph(manifest.dependencies()),
                       lambda name: _delete_stack(ctx, printer, by_name[name], retained), options.max_parallel)
    print_summary(printer, result)
    if retained:
        printer.line("\nretained resources that remain (delete them by hand if they must go):")
        for line in sorted(retained):
            printer.line(f"  {line}")
    return 0 if result.ok else 1


# ---- status / outputs -------------------------------------------------------------------------
def drift_status(ctx: Context, spec: StackSpec, timeout_minutes: float = 5) -> str:
    """Drift is information, never a reason for `status` to fail: every error becomes
    "unavailable (why)", and an emulator without the drift APIs says so."""
    cfn = ctx.cfn(spec.region)
    try:
        detection_id = cfn.call("detect_stack_drift", StackName=spec.name)["StackDriftDetectionId"]
        deadline = ctx.clock.monotonic() + timeout_minutes * 60
        while True:
            status = cfn.call("describe_stack_drift_detection_status", StackDriftDetectionId=detection_id)
            if status.get("DetectionStatus") != "DETECTION_IN_PROGRESS":
                return status.get("StackDriftStatus", status.get("DetectionStatus", "UNKNOWN"))
            if ctx.clock.monotonic() >= deadline:
                return "DETECTION_IN_PROGRESS (timed out waiting)"
            ctx.clock.sleep(ctx.poll_seconds)
    except (ClientError, BotoCoreError, ResponseParserError, KeyError, NotImplementedError) as error:
        gap = cfn.emulator_gap(error)
        if gap:
            return f"unavailable (drift detection {gap})"
        text = error_message(error) if isinstance(error, ClientError) else str(error).splitlines()[0]
        return f"unavailable ({text or type(error).__name__})"


def cmd_status(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    for spec in manifest.stacks:
        deployed = describe_stack(ctx, spec.region, spec.name)
        if not deployed:
            printer.line(f"{spec.name} ({spec.region}): NOT DEPLOYED")
            continue
        updated = deployed.get("LastUpdatedTime") or deployed.get("CreationTime")
        line = (f"{spec.name} ({spec.region}): {deployed['StackStatus']}, updated {updated}, "
                f"termination protection {'on' if deployed.get('EnableTerminationProtection') else 'off'}")
        if options.drift:
            line += f", drift {drift_status(ctx, spec)}"
        printer.line(line)
    return 0


def cmd_outputs(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    collected = {}
    for spec in manifest.stacks:
        deployed = describe_stack(ctx, spec.region, spec.name)
        outputs = (deployed or {}).get("Outputs", [])
        collected[spec.name] = {o["OutputKey"]: o.get("OutputValue", "") for o in outputs}
        printer.line(f"{spec.name}:" + ("" if deployed else " NOT DEPLOYED"))
        for output in sorted(outputs, key=lambda o: o["OutputKey"]):
            export = f"  (export {output['ExportName']})" if output.get("ExportName") else ""
            printer.line(f"  {output['OutputKey']} = {output.get('OutputValue', '')}{export}")
    (manifest.build_dir / "outputs.json").write_text(json.dumps(collected, indent=2, sort_keys=True) + "\n")
    return 0


COMMANDS = {
    "plan": cmd_plan, "deploy": cmd_deploy, "execute": cmd_execute,
    "destroy": cmd_destroy, "status": cmd_status, "outputs": cmd_outputs,
}
