"""What to run: per stack, what it needs (a plans.Action) and its change set when one can exist now.

plan_environment plans every stack in parallel and writes the review and the saved plan.
Planner.plan_stack decides one stack: a stack in a blocked state (stackops.BLOCKED_STATUSES)
is never touched, the plan names what failed and the recovery command; a stack whose change
set cannot be created is a FAILED plan entry with the reason, never an exception out of the run.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from .adopt import existing_named_resources, in_the_way_note
from .artifacts import artifact_bucket_name, template_source, upload_all
from .aws import Context, error_code, error_message
from .changesets import (
    ChangeSetFailed,
    delete_stale_change_sets,
    deployed_template,
    is_unchanged,
    prepare_change_set,
    rollback_configuration,
)
from .errors import INTERRUPTED_EXIT, DeployError
from .guards import GuardFinding, export_guard, exports_at_risk, stateful_guard
from .lifecycle import ESTABLISHED, effective_parameters
from .manifest import Manifest, StackSpec
from .output import Printer
from .planfile import review_path, save_plan
from .plans import Action, Label, StackPlan
from .preflight import image_gate, preflight_of
from .provenance import gather
from .review import parameter_changes, review_document, write_review
from .review_render import render_markdown, render_text
from .scheduler import Outcome, run_graph
from .shapes import JsonObject, Stack
from .stackops import BLOCKED_STATUSES, RECREATABLE_STATUSES, blocked_note, delete_and_wait, is_ours, stack_is_empty
from .stacks import UPDATABLE_STATUSES, StackTimeout, describe_stack, is_in_progress, wait_for_stack

PLAN_ERRORS = (ClientError, ChangeSetFailed, StackTimeout)


@dataclass
class RunOptions:
    allow_replace: set[str] = field(default_factory=set)
    rollback_triggers: bool = True


class PlanInterrupted(DeployError):
    """Ctrl-C while planning; args[0] names the stacks already planned."""

    exit_code = INTERRUPTED_EXIT


class ArtifactUploads:
    """Uploads the artifacts once per run, as soon as the artifact bucket exists."""

    def __init__(self, ctx: Context, manifest: Manifest, printer: Printer):
        self.ctx, self.manifest, self.printer = ctx, manifest, printer
        self.bucket: str | None = None
        self._done = False
        self._lock = threading.Lock()  # stacks are planned in parallel

    def upload_if_bucket_exists(self) -> bool:
        with self._lock:
            if self._done:
                return True
            self.bucket = artifact_bucket_name(self.ctx, self.manifest, warn=self.printer.line)
            if not self.bucket:
                return False
            report = upload_all(self.ctx, self.manifest, self.bucket)
            self.printer.line(f"artifacts: {len(report.uploaded)} uploaded, {len(report.already_present)} "
                              f"already in s3://{self.bucket}")
            self._done = True
            return True


class ExportIndex:
    """The export names of a region, listed once per run (every stack's imports are checked)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._names: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def names(self, region: str) -> set[str]:
        with self._lock:
            if region not in self._names:
                names: set[str] = set()
                token = None
                while True:
                    response = self.ctx.cfn(region).call("list_exports", **({"NextToken": token} if token else {}))
                    names.update(e["Name"] for e in response.get("Exports", []))
                    token = response.get("NextToken")
                    if not token:
                        break
                self._names[region] = names
            return self._names[region]


class Planner:
    def __init__(self, ctx: Context, manifest: Manifest, printer: Printer, options: RunOptions | None = None):
        self.ctx = ctx
        self.manifest = manifest
        self.printer = printer
        self.options = options or RunOptions()
        self.artifacts = ArtifactUploads(ctx, manifest, printer)
        self.exports = ExportIndex(ctx)

    def plan_stack(self, spec: StackSpec, execution_phase: bool = False) -> StackPlan:
        """execution_phase: planned again by the executor once its dependencies are deployed."""
        try:
            return self._plan_stack(spec, execution_phase)
        except PLAN_ERRORS as error:
            return StackPlan(spec, Action.FAILED, describe_stack(self.ctx, spec.region, spec.name),
                             note=failure_note(spec, error))

    def _plan_stack(self, spec: StackSpec, execution_phase: bool) -> StackPlan:
        deployed = self._settled(spec)
        problem = self._state_problem(spec, deployed, execution_phase)
        if problem:
            return problem
        if deployed and deployed["StackStatus"] not in UPDATABLE_STATUSES:
            self._clear_leftover(spec, deployed)
            deployed = None
        if self.manifest.uses_artifact_bucket(spec) and not self.artifacts.upload_if_bucket_exists():
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

    def _settled(self, spec: StackSpec) -> Stack | None:
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        if deployed and is_in_progress(deployed["StackStatus"]):
            self.printer.stack(spec.name, f"{deployed['StackStatus']}: waiting for it to finish first")
            wait_for_stack(self.ctx, spec.region, deployed["StackId"], spec.timeout_minutes)
            deployed = describe_stack(self.ctx, spec.region, spec.name)
        return deployed

    def _state_problem(self, spec: StackSpec, deployed: Stack | None, execution_phase: bool) -> StackPlan | None:
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
        missing = sorted(set(spec.imports) - self.exports.names(spec.region))
        if not missing:
            return None
        producers = sorted({s.name for s in self.manifest.stacks if set(s.exports) & set(missing)})
        unproduced = [m for m in missing if not any(m in s.exports for s in self.manifest.stacks)]
        if unproduced:
            return StackPlan(spec, Action.BLOCKED, note=f"imports {', '.join(unproduced)}, which no stack exports")
        return StackPlan(spec, Action.DEFERRED, note=waiting_note(self.manifest, producers, missing))

    def _clear_leftover(self, spec: StackSpec, deployed: Stack) -> None:
        """Deletes our failed first create (ROLLBACK_COMPLETE) or an interrupted plan's empty
        REVIEW_IN_PROGRESS stack, so the stack can be created cleanly."""
        status = deployed["StackStatus"]
        if status == "REVIEW_IN_PROGRESS" and not stack_is_empty(self.ctx, spec, deployed["StackId"]):
            raise ChangeSetFailed(f"{status} and holding resources: inspect it in the console")
        self.printer.stack(spec.name, f"{status} and ours, holding nothing: deleting it to create it again")
        final, _ = delete_and_wait(self.ctx, self.printer, self.manifest, spec, deployed["StackId"])
        if final != "DELETE_COMPLETE":
            raise ChangeSetFailed(f"could not delete the leftover stack: {final}")

    def _change_set_plan(self, spec: StackSpec, deployed: Stack | None, parameters: dict[str, str]) -> StackPlan:
        if deployed:
            delete_stale_change_sets(self.ctx, spec, deployed["StackId"])
        change_set_type = "UPDATE" if deployed else "CREATE"  # CloudFormation's ChangeSetType
        source = template_source(spec, self.artifacts.bucket, self.manifest.bootstrap_stack.region)
        change_set = prepare_change_set(self.ctx, self.manifest, spec, change_set_type, source,
                                        {**parameters},  # a copy of prepare_change_set's type (None keeps a value)
                                        self.rollback(spec))
        if change_set is None:
            return StackPlan(spec, Action.NO_OP, deployed, note="change set had no changes; deleted", parameters=parameters)
        note = ""
        if change_set_type == "CREATE" and spec.lifecycle_parameter:
            note = (f"once created, {spec.lifecycle_parameter} is switched to {ESTABLISHED} (deletion protection on "
                    "where the environment keeps data; the ECS desired count left to auto scaling)")
        plan = StackPlan(spec, Action(change_set_type.lower()), deployed, change_set, note=note, parameters=parameters)
        if deployed:
            plan.previous_template = deployed_template(self.ctx, spec.region, spec.name)
        plan.findings = self.guard(plan)
        return plan

    def rollback(self, spec: StackSpec) -> JsonObject:
        return rollback_configuration(self.ctx, self.manifest, spec, enabled=self.options.rollback_triggers)

    def guard(self, plan: StackPlan) -> list[GuardFinding]:
        """Both guards on a plan's change set (again by execute: imports may have appeared since).
        A plan without a change set runs nothing, so nothing to guard."""
        spec, change_set = plan.spec, plan.change_set
        if change_set is None:
            return []
        findings = stateful_guard(spec, change_set.changes, self.options.allow_replace)
        if plan.deployed and change_set.type == "UPDATE":
            changed = {row["name"] for row in parameter_changes(spec, plan.deployed, plan.parameters)}
            previous = plan.previous_template
            if previous is None:
                previous = plan.previous_template = deployed_template(self.ctx, spec.region, spec.name)
            at_risk = exports_at_risk(spec, plan.deployed, previous,
                                      spec.template(), change_set.changes, changed)
            findings += export_guard(self.ctx, spec, at_risk, lambda text: self.printer.stack(spec.name, text))
        return findings


def where(manifest: Manifest) -> str:
    """The environment with the account and region it lives in (preflight has checked both)."""
    return f"{manifest.environment} (account {manifest.account_id}, region {manifest.region})"


ADMINISTERED_NOTE = ("administered stack (it holds the roles deploys run as): an administrator plans and executes "
                     "it with their own credentials, then the workflow runs again")


def failure_note(spec: StackSpec, error: Exception) -> str:
    """Why a stack could not be planned. An administered stack refused to a pipeline role says
    who deploys it instead, not only "access denied"."""
    if not isinstance(error, ClientError):
        return str(error)
    text = error_message(error)
    if spec.administered and error_code(error).startswith("AccessDenied"):
        return f"{text}\n{ADMINISTERED_NOTE}"
    return text


def review_markdown_path(manifest: Manifest) -> Path:
    return manifest.build_dir / "review.md"


def waiting_note(manifest: Manifest, producers: list[str], missing: list[str]) -> str:
    """Why a stack has no change set yet: one line per stack it waits for, with the export keys
    (the part after the producer's stack name) it imports from it."""
    lines = [f"change set created once {', '.join(producers)} {'is' if len(producers) == 1 else 'are'} deployed; "
             f"{len(missing)} import(s) not exported yet:"]
    for producer in producers:
        keys = [name.removeprefix(f"{producer}-") for name in missing if name in manifest.by_name[producer].exports]
        lines.append(f"  {producer}: {', '.join(keys)}")
    return "\n".join(lines)


def plan_environment(planner: Planner, max_parallel: int, stacks: Sequence[StackSpec] | None = None) -> list[StackPlan]:
    """Plans every stack (in parallel: planning has no order), prints the review and writes
    review.json and plan.json. Raises PlanInterrupted on Ctrl-C."""
    ctx, manifest = planner.ctx, planner.manifest
    specs = list(stacks or manifest.stacks)
    provenance = gather(ctx, manifest)
    planner.artifacts.upload_if_bucket_exists()
    plans: dict[str, StackPlan] = {}

    def plan_one(name: str) -> Outcome:
        plans[name] = planner.plan_stack(manifest.by_name[name])
        return Outcome(True, Label.PLANNED)

    result = run_graph({spec.name: set() for spec in specs}, plan_one, max_parallel, ctx.stop, stop_on_failure=False)
    if result.interrupted:
        raise PlanInterrupted(sorted(plans))
    ordered = [plans[spec.name] for spec in specs]
    document = review_document(manifest.environment, provenance, ordered)
    planner.printer.line(render_text(document))
    write_review(review_path(manifest), document)
    review_markdown_path(manifest).write_text(render_markdown(document))
    save_plan(manifest, ordered)
    planner.printer.line(f"\nreview written to {review_path(manifest)} and {review_markdown_path(manifest).name}")
    return ordered
