"""Per-stack planning and execution: the state machine around one stack.

plan_stack decides what a stack needs (unchanged, no-op, create, update, deferred, recreate,
blocked) and creates its change set when one can exist now. execute_stack runs it: deferred
stacks get their change set once their dependencies are deployed, guards run right before
execution, events stream while waiting, and the root cause is reported on failure.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from .artifacts import artifact_bucket_name, template_source, upload_all
from .aws import Context, error_message
from .changesets import ChangeSet, ChangeSetFailed, deployed_template, delete_stale_change_sets, is_unchanged, prepare_change_set
from .guards import GuardFinding, export_guard, exports_at_risk, is_stateful, stateful_guard
from .manifest import Manifest, StackSpec
from .output import Printer
from .review import console_url, parameter_changes, summarize_changes, template_resources
from .scheduler import Outcome
from .stacks import (
    UPDATABLE_STATUSES, EventTracker, StackTimeout, describe_stack, format_event, is_in_progress,
    list_stack_resources, root_cause, wait_for_stack,
)

RECREATABLE_STATUSES = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED"})
POLICY_ACTIONS = ["Update:Modify", "Update:Replace", "Update:Delete"]


@dataclass
class StackPlan:
    spec: StackSpec
    action: str  # create, update, unchanged, no-op, deferred, recreate, blocked
    deployed: dict | None = None
    change_set: ChangeSet | None = None
    note: str = ""
    findings: list[GuardFinding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.action == "blocked" or bool(self.findings)


def stack_policy(spec: StackSpec, allowed: set[str] = frozenset()) -> dict:
    statements = [{"Effect": "Allow", "Action": POLICY_ACTIONS, "Principal": "*", "Resource": "*"}]
    protected = sorted(set(spec.stateful_resources) - set(allowed))
    if protected:
        statements.append({
            "Effect": "Deny", "Action": ["Update:Replace", "Update:Delete"], "Principal": "*",
            "Resource": [f"LogicalResourceId/{logical_id}" for logical_id in protected],
        })
    return {"Statement": statements}


def set_termination_protection(ctx: Context, printer: Printer, spec: StackSpec, enabled: bool) -> None:
    """UpdateTerminationProtection; an emulator without it (moto) gets a warning, real
    CloudFormation errors are raised."""
    cfn = ctx.cfn(spec.region)
    try:
        cfn.call("update_termination_protection", StackName=spec.name, EnableTerminationProtection=enabled)
    except (ClientError, ResponseParserError, NotImplementedError) as error:
        gap = cfn.emulator_gap(error)
        if not gap:
            raise
        printer.stack(spec.name, f"WARNING termination protection not {'enabled' if enabled else 'disabled'}: "
                                 f"UpdateTerminationProtection {gap}")


class Deployer:
    def __init__(self, ctx: Context, manifest: Manifest, printer: Printer, allow_replace: set[str]):
        self.ctx = ctx
        self.manifest = manifest
        self.printer = printer
        self.allow_replace = set(allow_replace)
        self.bucket: str | None = None
        self._uploaded = False
        self._lock = threading.Lock()
        self._exports: dict[str, set[str]] = {}

    # ---- artifacts ---------------------------------------------------------------------
    def upload_if_bucket_exists(self) -> bool:
        with self._lock:
            if self._uploaded:
                return True
            self.bucket = artifact_bucket_name(self.ctx, self.manifest, warn=self.printer.line)
            if not self.bucket:
                return False
            report = upload_all(self.ctx, self.manifest, self.bucket)
            self.printer.line(
                f"artifacts: {len(report.uploaded)} uploaded, {len(report.already_present)} already in "
                f"s3://{self.bucket}"
            )
            self._uploaded = True
            return True

    # ---- planning ----------------------------------------------------------------------
    def _existing_exports(self, region: str) -> set[str]:
        with self._lock:
            if region not in self._exports:
                names, token = set(), None
                while True:
                    response = self.ctx.cfn(region).call("list_exports", **({"NextToken": token} if token else {}))
                    names.update(e["Name"] for e in response.get("Exports", []))
                    token = response.get("NextToken")
                    if not token:
                        break
                self._exports[region] = names
            return self._exports[region]

    def _settled(self, spec: StackSpec) -> dict | None:
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        if deployed and is_in_progress(deployed["StackStatus"]):
            self.printer.stack(spec.name, f"{deployed['StackStatus']}: waiting for it to finish first")
            wait_for_stack(self.ctx, spec.region, deployed["StackId"], spec.timeout_minutes)
            deployed = describe_stack(self.ctx, spec.region, spec.name)
        return deployed

    def _is_ours(self, deployed: dict) -> bool:
        tags = {t["Key"]: t["Value"] for t in deployed.get("Tags", [])}
        return (tags.get("ManagedBy") == self.manifest.tags.get("ManagedBy")
                and tags.get("Environment") == self.manifest.environment)

    def _rollback_failed_command(self, spec: StackSpec) -> str:
        failed = []
        try:
            failed = sorted(s["LogicalResourceId"] for s in list_stack_resources(self.ctx, spec.region, spec.name)
                            if s.get("ResourceStatus") == "UPDATE_FAILED")
        except ClientError:
            pass  # the command below works without the list
        command = f"aws cloudformation continue-update-rollback --region {spec.region} --stack-name {spec.name}"
        if failed:
            command += f"  (if a resource cannot roll back, add: --resources-to-skip {' '.join(failed)})"
        return command

    def _state_problem(self, spec: StackSpec, deployed: dict | None, execution_phase: bool) -> StackPlan | None:
        if not deployed:
            return None
        status = deployed["StackStatus"]
        if status == "UPDATE_ROLLBACK_FAILED":
            return StackPlan(spec, "blocked", deployed, note=(
                f"stack is UPDATE_ROLLBACK_FAILED; recover with: {self._rollback_failed_command(spec)}"))
        if status in RECREATABLE_STATUSES:
            if not self._is_ours(deployed):
                return StackPlan(spec, "blocked", deployed, note=(
                    f"stack is {status} but does not carry our tags (ManagedBy="
                    f"{self.manifest.tags.get('ManagedBy')}, Environment={self.manifest.environment}); "
                    f"not deleting it, inspect it in the console"))
            if not execution_phase:
                return StackPlan(spec, "recreate", deployed, note=(
                    f"{status} after a failed first create: deploy deletes and recreates it"))
            return None
        if status == "DELETE_FAILED":
            return StackPlan(spec, "blocked", deployed, note=(
                f"stack is DELETE_FAILED; finish with: aws cloudformation delete-stack --region "
                f"{spec.region} --stack-name {spec.name} --retain-resources <LogicalIds>"))
        if status not in UPDATABLE_STATUSES and status != "REVIEW_IN_PROGRESS":
            return StackPlan(spec, "blocked", deployed, note=f"stack is {status}; cannot change it")
        return None

    def _missing_imports(self, spec: StackSpec) -> StackPlan | None:
        missing = sorted(set(spec.imports) - self._existing_exports(spec.region))
        if not missing:
            return None
        producers = sorted({s.name for s in self.manifest.stacks if set(s.exports) & set(missing)})
        unproduced = [m for m in missing if not any(m in s.exports for s in self.manifest.stacks)]
        if unproduced:
            return StackPlan(spec, "blocked", note=f"imports {', '.join(unproduced)}, which no stack exports")
        return StackPlan(spec, "deferred", note=(
            f"change set created once {', '.join(producers)} is deployed (imports {', '.join(missing)})"))

    def _recreate(self, spec: StackSpec, deployed: dict) -> None:
        self.printer.stack(spec.name, f"{deployed['StackStatus']} and ours: deleting it to create it again")
        self.ctx.cfn(spec.region).call("delete_stack", StackName=deployed["StackId"])
        status, _ = wait_for_stack(self.ctx, spec.region, deployed["StackId"], spec.timeout_minutes,
                                   on_event=lambda e: self.printer.stack(spec.name, format_event(e)))
        if status != "DELETE_COMPLETE":
            raise ChangeSetFailed(f"could not delete the failed stack: {status}")

    def plan_stack(self, spec: StackSpec, execution_phase: bool = False) -> StackPlan:
        deployed = self._settled(spec)
        problem = self._state_problem(spec, deployed, execution_phase)
        if problem:
            return problem
        if deployed and deployed["StackStatus"] in RECREATABLE_STATUSES:
            self._recreate(spec, deployed)
            deployed = None
        if self.manifest.uses_artifact_bucket(spec) and not self.upload_if_bucket_exists():
            return StackPlan(spec, "deferred", deployed, note="created once the artifact bucket exists")
        if not execution_phase:
            deferred = self._missing_imports(spec)
            if deferred:
                deferred.deployed = deployed
                return deferred
        status = deployed["StackStatus"] if deployed else None
        if status in UPDATABLE_STATUSES and is_unchanged(self.ctx, self.manifest, spec, deployed):
            return StackPlan(spec, "unchanged", deployed, note="template, parameters and tags as deployed")
        if deployed:
            delete_stale_change_sets(self.ctx, spec, deployed["StackId"])
        change_set_type = "UPDATE" if status in UPDATABLE_STATUSES else "CREATE"
        source = template_source(spec, self.bucket, self.manifest.bootstrap_stack.region)
        change_set = prepare_change_set(self.ctx, self.manifest, spec, change_set_type, source)
        if change_set is None:
            return StackPlan(spec, "no-op", deployed, note="change set had no changes; deleted")
        plan = StackPlan(spec, change_set_type.lower(), deployed, change_set)
        plan.findings = self.guard(plan)
        return plan

    def guard(self, plan: StackPlan) -> list[GuardFinding]:
        spec, change_set = plan.spec, plan.change_set
        findings = stateful_guard(spec, change_set.changes, self.allow_replace)
        if plan.deployed and change_set.type == "UPDATE":
            changed = {row["name"] for row in parameter_changes(spec, plan.deployed)}
            at_risk = exports_at_risk(spec, plan.deployed, deployed_template(self.ctx, spec.region, spec.name),
                                      spec.template(), change_set.changes, changed)
            findings += export_guard(self.ctx, spec, at_risk, lambda text: self.printer.stack(spec.name, text))
        return findings

    def review_entry(self, plan: StackPlan) -> dict:
        spec = plan.spec
        entry = {"stack": spec.name, "region": spec.region, "action": plan.action, "note": plan.note,
                 "parameter_changes": parameter_changes(spec, plan.deployed),
                 "guard_findings": [f.as_dict() for f in plan.findings]}
        if plan.change_set:
            entry.update(summarize_changes(spec, plan.change_set.changes))
            entry["change_set_id"] = plan.change_set.id
            entry["console_url"] = console_url(spec.region, plan.change_set.stack_id, plan.change_set.id)
        elif plan.action == "recreate" or (plan.action == "deferred" and not plan.deployed):
            entry["added"] = template_resources(spec)
        if plan.action in ("unchanged", "no-op"):
            entry["parameter_changes"] = []
        return entry

    # ---- execution ---------------------------------------------------------------------
    def ensure_protection(self, spec: StackSpec) -> None:
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        if not deployed:
            return
        if self.manifest.termination_protection and not deployed.get("EnableTerminationProtection"):
            set_termination_protection(self.ctx, self.printer, spec, True)
        if self.manifest.stack_policy:
            self._set_policy(spec, stack_policy(spec))

    def _set_policy(self, spec: StackSpec, policy: dict) -> None:
        cfn = self.ctx.cfn(spec.region)
        current = cfn.call("get_stack_policy", StackName=spec.name).get("StackPolicyBody")
        if not current or json.loads(current) != policy:
            cfn.call("set_stack_policy", StackName=spec.name, StackPolicyBody=json.dumps(policy))

    def _allowed_stateful_changes(self, plan: StackPlan) -> set[str]:
        touched = set()
        for wrapper in plan.change_set.changes:
            change = wrapper.get("ResourceChange", {})
            logical_id = change.get("LogicalResourceId", "")
            if logical_id in self.allow_replace and is_stateful(plan.spec, logical_id, change.get("ResourceType", "")):
                touched.add(logical_id)
        return touched

    def execute_stack(self, plan: StackPlan, may_create_change_sets: bool = True) -> Outcome:
        spec = plan.spec
        try:
            if plan.action in ("deferred", "recreate"):
                if not may_create_change_sets:
                    return Outcome(False, "needs a new plan", plan.note)
                plan = self.plan_stack(spec, execution_phase=True)
                if plan.action == "deferred":
                    return Outcome(False, "failed", f"still waiting after its dependencies: {plan.note}")
                self._print_late_plan(plan)
            if plan.action in ("unchanged", "no-op"):
                self.ensure_protection(spec)
                return Outcome(True, plan.action)
            if plan.blocked:
                detail = plan.note or "; ".join(f.message for f in plan.findings)
                return Outcome(False, "blocked", detail)
            return self._run_change_set(plan)
        except (ClientError, ChangeSetFailed, StackTimeout) as error:
            text = error_message(error) if isinstance(error, ClientError) else str(error)
            self.printer.stack(spec.name, f"FAILED: {text}")
            return Outcome(False, "failed", text)

    def _print_late_plan(self, plan: StackPlan) -> None:
        entry = self.review_entry(plan)
        counts = ", ".join(f"{len(entry.get(k, []))} {k}" for k in ("added", "modified", "removed"))
        self.printer.stack(plan.spec.name, f"change set: {plan.action.upper()} ({counts}) {plan.note}".rstrip())
        for finding in plan.findings:
            self.printer.stack(plan.spec.name, f"BLOCKED ({finding.guard} guard): {finding.message}")

    def _run_change_set(self, plan: StackPlan) -> Outcome:
        spec, change_set = plan.spec, plan.change_set
        cfn = self.ctx.cfn(spec.region)
        allowed = self._allowed_stateful_changes(plan) if plan.deployed else set()
        if allowed and self.manifest.stack_policy:
            # ExecuteChangeSet has no StackPolicyDuringUpdateBody: relax the policy for this run only
            self.printer.stack(spec.name, f"stack policy relaxed for {', '.join(sorted(allowed))} (--allow-replace)")
            self._set_policy(spec, stack_policy(spec, allowed))
        tracker = EventTracker(self.ctx, spec.region, change_set.stack_id)
        if plan.deployed:
            tracker.mark_now()
        self.printer.stack(spec.name, f"executing {change_set.type} change set")
        cfn.call("execute_change_set", ChangeSetName=change_set.id)
        try:
            status, events = wait_for_stack(self.ctx, spec.region, change_set.stack_id, spec.timeout_minutes,
                                            on_event=lambda e: self.printer.stack(spec.name, format_event(e)),
                                            tracker=tracker)
        finally:
            if allowed and self.manifest.stack_policy:
                self._set_policy(spec, stack_policy(spec))
        if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            self.ensure_protection(spec)
            self.printer.stack(spec.name, status)
            return Outcome(True, "deployed")
        cause = root_cause(events)
        if cause:
            detail = (f"{status}; root cause: {cause.get('LogicalResourceId')} ({cause.get('ResourceType')}) "
                      f"{cause.get('ResourceStatus')}: {cause.get('ResourceStatusReason', '')}")
        else:
            stack = describe_stack(self.ctx, spec.region, change_set.stack_id)
            detail = f"{status}: {(stack or {}).get('StackStatusReason', 'no reason given')}"
        self.printer.stack(spec.name, f"FAILED {detail}")
        return Outcome(False, "failed", detail)
