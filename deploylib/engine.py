"""Per-stack planning and execution: the state machine around one stack.

plan_stack decides what a stack needs (an Action) and creates its change set when one can exist
now. execute_stack runs it: deferred stacks get their change set once their dependencies are
deployed, guards run right before execution, events stream while waiting, the root cause is
reported on failure, and a stack created for the first time is switched to `established`
(lifecycle.py) before it counts as deployed.

A stack in a blocked state (stackops.BLOCKED_STATUSES) is never touched: the plan names what
failed and the recovery command. A stack whose change set cannot be created is a FAILED plan
entry with the reason, never an exception out of the run.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from .adopt import existing_named_resources, in_the_way_note
from .artifacts import artifact_bucket_name, template_source, upload_all
from .aws import Context, Interrupted, error_message
from .changesets import (
    ChangeSetFailed, deployed_template, delete_stale_change_sets, is_unchanged, prepare_change_set, rollback_configuration,
)
from .guards import GuardFinding, export_guard, exports_at_risk, is_stateful, stateful_guard
from .lifecycle import ESTABLISHED, effective_parameters, unexpected_changes
from .manifest import Manifest, StackSpec
from .output import Printer
from .plans import NOTHING_TO_RUN, Action, Label, StackPlan
from .preflight import image_gate, preflight_of
from .protection import ensure_protection, set_policy, stack_policy
from .review import console_url, parameter_changes, summarize_changes, template_resources
from .scheduler import Outcome
from .stackops import (
    BLOCKED_STATUSES, RECREATABLE_STATUSES, blocked_note, delete_and_wait, is_ours, stack_is_empty,
)
from .stacks import (
    UPDATABLE_STATUSES, EventTracker, StackTimeout, describe_stack, format_event, is_in_progress, root_cause,
    wait_for_stack,
)

STACK_ERRORS = (ClientError, ChangeSetFailed, StackTimeout)


@dataclass
class RunOptions:
    allow_replace: set[str] = field(default_factory=set)
    rollback_triggers: bool = True


class Deployer:
    def __init__(self, ctx: Context, manifest: Manifest, printer: Printer, options: RunOptions | None = None):
        self.ctx = ctx
        self.manifest = manifest
        self.printer = printer
        self.options = options or RunOptions()
        self.bucket: str | None = None
        self._uploaded = False
        self._lock = threading.Lock()
        self._exports: dict[str, set[str]] = {}

    @property
    def allow_replace(self) -> set[str]:
        return self.options.allow_replace

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

    def _state_problem(self, spec: StackSpec, deployed: dict | None, execution_phase: bool) -> StackPlan | None:
        if not deployed:
            return None
        status = deployed["StackStatus"]
        if status in BLOCKED_STATUSES:
            return StackPlan(spec, Action.BLOCKED, deployed, note=blocked_note(self.ctx, self.manifest, spec, deployed))
        leftover = status in RECREATABLE_STATUSES or status == "REVIEW_IN_PROGRESS"
        if leftover and not is_ours(self.manifest, deployed):
            return StackPlan(spec, Action.BLOCKED, deployed, note=(
                f"stack is {status} but does not carry our tags (ManagedBy={self.manifest.tags.get('ManagedBy')}, "
                f"Environment={self.manifest.environment}); not deleting it, inspect it in the console"))
        if status in RECREATABLE_STATUSES and not execution_phase:
            return StackPlan(spec, Action.RECREATE, deployed, note=(
                f"{status} after a failed first create: deploy deletes and recreates it"))
        if not leftover and status not in UPDATABLE_STATUSES:
            return StackPlan(spec, Action.BLOCKED, deployed, note=f"stack is {status}; cannot change it")
        return None

    def _missing_imports(self, spec: StackSpec) -> StackPlan | None:
        missing = sorted(set(spec.imports) - self._existing_exports(spec.region))
        if not missing:
            return None
        producers = sorted({s.name for s in self.manifest.stacks if set(s.exports) & set(missing)})
        unproduced = [m for m in missing if not any(m in s.exports for s in self.manifest.stacks)]
        if unproduced:
            return StackPlan(spec, Action.BLOCKED, note=f"imports {', '.join(unproduced)}, which no stack exports")
        return StackPlan(spec, Action.DEFERRED, note=(
            f"change set created once {', '.join(producers)} is deployed (imports {', '.join(missing)})"))

    def _clear_leftover(self, spec: StackSpec, deployed: dict) -> None:
        """Deletes our failed first create (ROLLBACK_COMPLETE) or an interrupted plan's empty
        REVIEW_IN_PROGRESS stack, so the stack can be created cleanly."""
        status = deployed["StackStatus"]
        if status == "REVIEW_IN_PROGRESS" and not stack_is_empty(self.ctx, spec, deployed["StackId"]):
            raise ChangeSetFailed(f"{status} and holding resources: inspect it in the console")
        self.printer.stack(spec.name, f"{status} and ours, holding nothing: deleting it to create it again")
        final, _ = delete_and_wait(self.ctx, self.printer, spec, deployed["StackId"])
        if final != "DELETE_COMPLETE":
            raise ChangeSetFailed(f"could not delete the leftover stack: {final}")

    def plan_stack(self, spec: StackSpec, execution_phase: bool = False) -> StackPlan:
        try:
            return self._plan_stack(spec, execution_phase)
        except (ClientError, ChangeSetFailed, StackTimeout) as error:
            text = error_message(error) if isinstance(error, ClientError) else str(error)
            return StackPlan(spec, Action.FAILED, describe_stack(self.ctx, spec.region, spec.name), note=text)

    def _plan_stack(self, spec: StackSpec, execution_phase: bool) -> StackPlan:
        deployed = self._settled(spec)
        problem = self._state_problem(spec, deployed, execution_phase)
        if problem:
            return problem
        if deployed and deployed["StackStatus"] not in UPDATABLE_STATUSES:
            self._clear_leftover(spec, deployed)
            deployed = None
        if self.manifest.uses_artifact_bucket(spec) and not self.upload_if_bucket_exists():
            return StackPlan(spec, Action.DEFERRED, deployed, note="created once the artifact bucket exists")
        if not execution_phase:
            deferred = self._missing_imports(spec)
            if deferred:
                deferred.deployed = deployed
                return deferred
        parameters = effective_parameters(spec, deployed)
        if deployed and is_unchanged(self.ctx, self.manifest, spec, deployed, parameters):
            return StackPlan(spec, Action.UNCHANGED, deployed, note="template, parameters and tags as deployed",
                             parameters=parameters)
        if not deployed:
            existing = existing_named_resources(self.ctx, spec)
            if existing:
                return StackPlan(spec, Action.BLOCKED, note=in_the_way_note(self.manifest, spec, existing))
        waiting = image_gate(self.ctx, preflight_of(self.manifest), spec.name)
        if waiting:
            commands = "".join(f"\n    {command}" for command in waiting.commands)
            return StackPlan(spec, Action.BLOCKED, deployed, note=f"waits for its image: {waiting.detail}{commands}")
        return self._change_set_plan(spec, deployed, parameters)

    def _change_set_plan(self, spec: StackSpec, deployed: dict | None, parameters: dict[str, str]) -> StackPlan:
        if deployed:
            delete_stale_change_sets(self.ctx, spec, deployed["StackId"])
        change_set_type = "UPDATE" if deployed else "CREATE"
        source = template_source(spec, self.bucket, self.manifest.bootstrap_stack.region)
        change_set = prepare_change_set(self.ctx, self.manifest, spec, change_set_type, source, parameters,
                                        self._rollback(spec))
        if change_set is None:
            return StackPlan(spec, Action.NO_OP, deployed, note="change set had no changes; deleted", parameters=parameters)
        note = ""
        if change_set_type == "CREATE" and spec.lifecycle_parameter:
            note = (f"once created, {spec.lifecycle_parameter} is switched to {ESTABLISHED} (deletion protection on "
                    "where the environment keeps data; the ECS desired count left to auto scaling)")
        plan = StackPlan(spec, Action(change_set_type.lower()), deployed, change_set, note=note, parameters=parameters)
        plan.findings = self.guard(plan)
        return plan

    def _rollback(self, spec: StackSpec) -> dict:
        return rollback_configuration(self.ctx, self.manifest, spec, enabled=self.options.rollback_triggers)

    def guard(self, plan: StackPlan) -> list[GuardFinding]:
        spec, change_set = plan.spec, plan.change_set
        findings = stateful_guard(spec, change_set.changes, self.allow_replace)
        if plan.deployed and change_set.type == "UPDATE":
            changed = {row["name"] for row in parameter_changes(spec, plan.deployed, plan.parameters)}
            at_risk = exports_at_risk(spec, plan.deployed, deployed_template(self.ctx, spec.region, spec.name),
                                      spec.template(), change_set.changes, changed)
            findings += export_guard(self.ctx, spec, at_risk, lambda text: self.printer.stack(spec.name, text))
        return findings

    def review_entry(self, plan: StackPlan) -> dict:
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

    # ---- execution ---------------------------------------------------------------------
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
            if plan.action in (Action.DEFERRED, Action.RECREATE):
                if not may_create_change_sets:
                    return Outcome(False, Label.NEEDS_PLAN, plan.note)
                plan = self.plan_stack(spec, execution_phase=True)
                if plan.action == Action.DEFERRED:
                    return Outcome(False, Label.FAILED, f"still waiting after its dependencies: {plan.note}")
                self._print_late_plan(plan)
            if plan.action in NOTHING_TO_RUN:
                ensure_protection(self.ctx, self.manifest, self.printer, spec)
                return Outcome(True, str(plan.action))
            if plan.blocked:
                detail = plan.note or "; ".join(f.message for f in plan.findings)
                return Outcome(False, Label.BLOCKED if plan.action != Action.FAILED else Label.FAILED, detail)
            outcome = self._run_change_set(plan)
            if outcome.ok and plan.change_set.type == "CREATE" and spec.lifecycle_parameter:
                outcome = self.switch_lifecycle(spec, ESTABLISHED)
            return outcome
        except STACK_ERRORS as error:
            text = error_message(error) if isinstance(error, ClientError) else str(error)
            self.printer.stack(spec.name, f"FAILED: {text}")
            return Outcome(False, Label.FAILED, text)
        except Interrupted:
            return self._interrupted(spec)

    def _interrupted(self, spec: StackSpec) -> Outcome:
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        status = deployed["StackStatus"] if deployed else "not created"
        detail = (f"stopped waiting while {status}; CloudFormation carries on with it: "
                  f"`make status ENV={self.manifest.environment}` shows where it got to")
        self.printer.stack(spec.name, f"INTERRUPTED: {detail}")
        return Outcome(False, Label.INTERRUPTED, detail)

    def switch_lifecycle(self, spec: StackSpec, value: str) -> Outcome:
        """A parameter-only update of StackLifecycle to `value` (see lifecycle.py): the deployed
        template and every other parameter's previous value, so nothing but the switch can run
        (also when the build has changed since). It may only modify resources in place;
        anything else is refused before it runs."""
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        parameters = {p["ParameterKey"]: None for p in deployed.get("Parameters", [])}
        parameters[spec.lifecycle_parameter] = value
        change_set = prepare_change_set(self.ctx, self.manifest, spec, "UPDATE", {"UsePreviousTemplate": True},
                                        parameters, self._rollback(spec))
        if change_set is None:
            return Outcome(True, Label.DEPLOYED)
        unexpected = unexpected_changes(change_set)
        if unexpected:
            self.ctx.cfn(spec.region).call("delete_change_set", ChangeSetName=change_set.id)
            return Outcome(False, Label.FAILED, (
                f"switching {spec.lifecycle_parameter} to {value} would {'; '.join(unexpected)}: refused, "
                "only settings may hang on it"))
        self.printer.stack(spec.name, f"{spec.lifecycle_parameter} -> {value} "
                                      f"({len(change_set.changes)} resource(s) modified in place)")
        return self._run_change_set(StackPlan(spec, Action.UPDATE, deployed, change_set))

    def _print_late_plan(self, plan: StackPlan) -> None:
        entry = self.review_entry(plan)
        counts = ", ".join(f"{len(entry.get(k, []))} {k}" for k in ("added", "modified", "removed"))
        self.printer.stack(plan.spec.name, f"change set: {plan.action.upper()} ({counts}) {plan.note}".rstrip())
        for finding in plan.findings:
            self.printer.stack(plan.spec.name, f"BLOCKED ({finding.guard} guard): {finding.message}")

    def _run_change_set(self, plan: StackPlan) -> Outcome:
        spec, change_set = plan.spec, plan.change_set
        allowed = self._allowed_stateful_changes(plan) if plan.deployed else set()
        if allowed and self.manifest.stack_policy:
            # ExecuteChangeSet has no StackPolicyDuringUpdateBody: relax the policy for this run only
            self.printer.stack(spec.name, f"stack policy relaxed for {', '.join(sorted(allowed))} (--allow-replace)")
            set_policy(self.ctx, spec, stack_policy(spec, allowed))
        tracker = EventTracker(self.ctx, spec.region, change_set.stack_id)
        if plan.deployed:
            tracker.mark_now()
        self.printer.stack(spec.name, f"executing {change_set.type} change set")
        # RetainExceptOnCreate for the whole operation too: whatever it creates is deleted if it
        # rolls back, whatever a resource's own DeletionPolicy says.
        self.ctx.cfn(spec.region).call("execute_change_set", ChangeSetName=change_set.id, RetainExceptOnCreate=True)
        try:
            status, events = wait_for_stack(self.ctx, spec.region, change_set.stack_id, spec.timeout_minutes,
                                            on_event=lambda e: self.printer.stack(spec.name, format_event(e)),
                                            tracker=tracker)
        finally:
            if allowed and self.manifest.stack_policy:
                set_policy(self.ctx, spec, stack_policy(spec))
        if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            ensure_protection(self.ctx, self.manifest, self.printer, spec)
            self.printer.stack(spec.name, status)
            return Outcome(True, Label.DEPLOYED)
        return self._failure(spec, change_set.stack_id, status, events)

    def _failure(self, spec: StackSpec, stack_id: str, status: str, events: list[dict]) -> Outcome:
        cause = root_cause(events)
        if cause:
            detail = (f"{status}; root cause: {cause.get('LogicalResourceId')} ({cause.get('ResourceType')}) "
                      f"{cause.get('ResourceStatus')}: {cause.get('ResourceStatusReason', '')}")
        else:
            stack = describe_stack(self.ctx, spec.region, stack_id)
            detail = f"{status}: {(stack or {}).get('StackStatusReason', 'no reason given')}"
        if status in BLOCKED_STATUSES:
            detail += f"; recover with `make recover ENV={self.manifest.environment} STACK={spec.name}`"
        self.printer.stack(spec.name, f"FAILED {detail}")
        return Outcome(False, Label.FAILED, detail)
