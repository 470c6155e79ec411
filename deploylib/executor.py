"""How to run a plan: each stack's change set, in dependency order (scheduler.run_graph).

A deferred or recreated stack gets its change set once its dependencies are deployed (by the
planner). `deploy` confirmed the whole plan in the same run; `execute` runs what was reviewed, so
there such a stack gets its change set only when its template is byte for byte the reviewed one
(the sha256 recorded in plan.json): the template was in the review, listed "from the template".
Events stream while waiting, the root cause is reported on failure, and a stack created for the
first time is switched to `established` (lifecycle.py) before it counts as deployed. Every
failure of a stack is its Outcome, never an exception out of the run.
"""
from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import ClientError

from .aws import Interrupted, error_message
from .changesets import ChangeSet, ChangeSetFailed, prepare_change_set
from .lifecycle import ESTABLISHED, unexpected_changes
from .manifest import StackSpec
from .planner import Planner
from .plans import NOTHING_TO_RUN, Action, Label, StackPlan
from .protection import ensure_protection, policy_relaxed_for
from .review import review_entry
from .scheduler import Outcome, RunResult, run_graph
from .shapes import StackEvent
from .stackops import BLOCKED_STATUSES
from .stacks import EventTracker, StackTimeout, describe_stack, format_event, root_cause, wait_for_stack

STACK_ERRORS = (ClientError, ChangeSetFailed, StackTimeout)
SUCCEEDED_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE")


class Executor:
    def __init__(self, planner: Planner):
        self.planner = planner
        self.ctx, self.manifest, self.printer = planner.ctx, planner.manifest, planner.printer

    def run(self, plans: dict[str, StackPlan], max_parallel: int,
            reviewed_templates: Mapping[str, str] | None = None) -> RunResult:
        """Every plan, each stack once the stacks it depends on are deployed. `reviewed_templates`
        (stack -> template sha256 of the reviewed plan) when running a saved plan: see late_plan_refusal."""
        graph = {name: deps & set(plans) for name, deps in self.manifest.dependencies().items() if name in plans}
        return run_graph(graph, lambda name: self.execute_stack(plans[name], reviewed_templates),
                         max_parallel, self.ctx.stop)

    def execute_stack(self, plan: StackPlan, reviewed_templates: Mapping[str, str] | None = None) -> Outcome:
        spec = plan.spec
        try:
            if plan.action in (Action.DEFERRED, Action.RECREATE):
                refusal = late_plan_refusal(spec, reviewed_templates)
                if refusal:
                    return Outcome(False, Label.NEEDS_PLAN, refusal)
                plan = self.planner.plan_stack(spec, execution_phase=True)
                if plan.action == Action.DEFERRED:
                    return Outcome(False, Label.FAILED, f"still waiting after its dependencies: {plan.note}")
                self._print_late_plan(plan)
            if plan.action in NOTHING_TO_RUN:
                ensure_protection(self.ctx, self.manifest, self.printer, spec)
                return Outcome(True, Label(plan.action))
            if plan.blocked:
                detail = plan.note or "; ".join(f.message for f in plan.findings)
                return Outcome(False, Label.BLOCKED if plan.action != Action.FAILED else Label.FAILED, detail)
            change_set = plan.change_set
            if change_set is None:  # a saved plan edited by hand (or by another version): nothing reviewed to run
                return Outcome(False, Label.NEEDS_PLAN, f"planned to {plan.action} but holds no change set")
            outcome = self._run_change_set(plan, change_set)
            if outcome.ok and change_set.type == "CREATE" and spec.lifecycle_parameter:
                outcome = self.switch_lifecycle(spec, ESTABLISHED)
            return outcome
        except STACK_ERRORS as error:
            text = error_message(error) if isinstance(error, ClientError) else str(error)
            self.printer.stack(spec.name, f"{Label.FAILED.upper()}: {text}")
            return Outcome(False, Label.FAILED, text)
        except Interrupted:
            return self._interrupted(spec)

    def _interrupted(self, spec: StackSpec) -> Outcome:
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        status = deployed["StackStatus"] if deployed else "not created"
        detail = (f"stopped waiting while {status}; CloudFormation carries on with it: "
                  f"`make status ENV={self.manifest.environment}` shows where it got to")
        self.printer.stack(spec.name, f"{Label.INTERRUPTED.upper()}: {detail}")
        return Outcome(False, Label.INTERRUPTED, detail)

    def switch_lifecycle(self, spec: StackSpec, value: str) -> Outcome:
        """A parameter-only update of StackLifecycle to `value` (see lifecycle.py): the deployed
        template and every other parameter's previous value, so nothing but the switch can run
        (also when the build has changed since). It may only modify resources in place;
        anything else is refused before it runs."""
        lifecycle_parameter = spec.lifecycle_parameter
        if not lifecycle_parameter:
            return Outcome(True, Label.UNCHANGED, "no lifecycle parameter to switch")
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        if deployed is None:
            return Outcome(False, Label.FAILED, f"cannot switch {lifecycle_parameter} to {value}: the stack no longer exists")
        parameters: dict[str, str | None] = {p["ParameterKey"]: None for p in deployed.get("Parameters", [])}
        parameters[lifecycle_parameter] = value
        change_set = prepare_change_set(self.ctx, self.manifest, spec, "UPDATE", {"UsePreviousTemplate": True},
                                        parameters, self.planner.rollback(spec))
        if change_set is None:
            return Outcome(True, Label.DEPLOYED)
        unexpected = unexpected_changes(change_set)
        if unexpected:
            self.ctx.cfn(spec.region).call("delete_change_set", ChangeSetName=change_set.id)
            return Outcome(False, Label.FAILED, (
                f"switching {lifecycle_parameter} to {value} would {'; '.join(unexpected)}: refused, "
                "only settings may hang on it"))
        self.printer.stack(spec.name, f"{lifecycle_parameter} -> {value} "
                                      f"({len(change_set.changes)} resource(s) modified in place)")
        return self._run_change_set(StackPlan(spec, Action.UPDATE, deployed, change_set), change_set)

    def _print_late_plan(self, plan: StackPlan) -> None:
        entry = review_entry(plan)
        counts = ", ".join(f"{len(entry.get(k, []))} {k}" for k in ("added", "modified", "removed"))
        self.printer.stack(plan.spec.name, f"change set: {plan.action.upper()} ({counts}) {plan.note}".rstrip())
        for finding in plan.findings:
            self.printer.stack(plan.spec.name, f"{Label.BLOCKED.upper()} ({finding.guard} guard): {finding.message}")

    def _run_change_set(self, plan: StackPlan, change_set: ChangeSet) -> Outcome:
        spec = plan.spec
        tracker = EventTracker(self.ctx, spec.region, change_set.stack_id)
        if plan.deployed:
            tracker.mark_now()
        allow_replace = self.planner.options.allow_replace if plan.deployed else set()
        with policy_relaxed_for(self.ctx, self.manifest, self.printer, plan, allow_replace):
            self.printer.stack(spec.name, f"executing {change_set.type} change set")
            # RetainExceptOnCreate for the whole operation too: whatever it creates is deleted if it
            # rolls back, whatever a resource's own DeletionPolicy says.
            self.ctx.cfn(spec.region).call("execute_change_set", ChangeSetName=change_set.id,
                                           RetainExceptOnCreate=True)
            status, events = wait_for_stack(self.ctx, spec.region, change_set.stack_id, spec.timeout_minutes,
                                            on_event=lambda e: self.printer.stack(spec.name, format_event(e)),
                                            tracker=tracker)
        if status in SUCCEEDED_STATUSES:
            ensure_protection(self.ctx, self.manifest, self.printer, spec)
            self.printer.stack(spec.name, status)
            return Outcome(True, Label.DEPLOYED)
        return self._failure(spec, change_set.stack_id, status, events)

    def _failure(self, spec: StackSpec, stack_id: str, status: str, events: list[StackEvent]) -> Outcome:
        cause = root_cause(events)
        if cause:
            detail = (f"{status}; root cause: {cause.get('LogicalResourceId')} ({cause.get('ResourceType')}) "
                      f"{cause.get('ResourceStatus')}: {cause.get('ResourceStatusReason', '')}")
        else:
            stack = describe_stack(self.ctx, spec.region, stack_id)
            detail = f"{status}: {(stack or {}).get('StackStatusReason', 'no reason given')}"
        if status in BLOCKED_STATUSES:
            detail += f"; recover with `make recover ENV={self.manifest.environment} STACK={spec.name}`"
        self.printer.stack(spec.name, f"{Label.FAILED.upper()} {detail}")
        return Outcome(False, Label.FAILED, detail)


def late_plan_refusal(spec: StackSpec, reviewed_templates: Mapping[str, str] | None) -> str | None:
    """Why a stack planned without a change set may not get one now: with a saved plan, only a
    template whose bytes are the reviewed ones (checked again here: the file is read back and
    hashed). None: it may."""
    if reviewed_templates is None:
        return None
    reviewed = reviewed_templates.get(spec.name)
    if reviewed is None or reviewed != spec.sha256:
        return f"its template {spec.sha256[:12]}... is not the reviewed one: run a new plan"
    spec.template_bytes()  # ManifestError if the file on disk is not the manifest's
    return None
