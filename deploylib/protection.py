"""Stack-level protection deploy.py sets once a stack exists: termination protection and the
stack policy that denies replacing or deleting stateful resources (staging and prod). Resource
deletion protection rides on the StackLifecycle parameter (lifecycle.py)."""
from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from .aws import Context
from .guards import is_stateful
from .manifest import Manifest, StackSpec
from .output import Printer
from .plans import StackPlan
from .shapes import JsonObject
from .stacks import describe_stack

POLICY_ACTIONS = ["Update:Modify", "Update:Replace", "Update:Delete"]


def stack_policy(spec: StackSpec, allowed: Collection[str] = ()) -> JsonObject:
    statements: list[JsonObject] = [{"Effect": "Allow", "Action": POLICY_ACTIONS, "Principal": "*", "Resource": "*"}]
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


def set_policy(ctx: Context, spec: StackSpec, policy: JsonObject) -> None:
    cfn = ctx.cfn(spec.region)
    current = cfn.call("get_stack_policy", StackName=spec.name).get("StackPolicyBody")
    if not current or json.loads(current) != policy:
        cfn.call("set_stack_policy", StackName=spec.name, StackPolicyBody=json.dumps(policy))


def ensure_protection(ctx: Context, manifest: Manifest, printer: Printer, spec: StackSpec) -> None:
    deployed = describe_stack(ctx, spec.region, spec.name)
    if not deployed:
        return
    if manifest.termination_protection and not deployed.get("EnableTerminationProtection"):
        set_termination_protection(ctx, printer, spec, True)
    if manifest.stack_policy:
        set_policy(ctx, spec, stack_policy(spec))


def allowed_stateful_changes(plan: StackPlan, allow_replace: set[str]) -> set[str]:
    """The stateful resources this change set touches that --allow-replace names (none when the
    plan has no change set)."""
    touched: set[str] = set()
    for wrapper in plan.change_set.changes if plan.change_set else []:
        change = wrapper.get("ResourceChange", {})
        logical_id = change.get("LogicalResourceId", "")
        if logical_id in allow_replace and is_stateful(plan.spec, logical_id, change.get("ResourceType", "")):
            touched.add(logical_id)
    return touched


@contextmanager
def policy_relaxed_for(ctx: Context, manifest: Manifest, printer: Printer, plan: StackPlan,
                       allow_replace: set[str]) -> Iterator[None]:
    """The stack policy without the deny for what --allow-replace names, while the block runs:
    ExecuteChangeSet has no StackPolicyDuringUpdateBody, so the policy itself is relaxed for this
    run only and put back however the run ends."""
    allowed = allowed_stateful_changes(plan, allow_replace) if manifest.stack_policy else set()
    if not allowed:
        yield
        return
    spec = plan.spec
    printer.stack(spec.name, f"stack policy relaxed for {', '.join(sorted(allowed))} (--allow-replace)")
    set_policy(ctx, spec, stack_policy(spec, allowed))
    try:
        yield
    finally:
        set_policy(ctx, spec, stack_policy(spec))
