"""Creating, waiting for and reading change sets; deciding that a stack is unchanged.

Skip detection (no change set at all) compares what is deployed with what was built:
- the template: GetTemplate (Original stage) parsed, equal to our template parsed;
- the parameters: DescribeStacks parameter values equal to the manifest's;
- the tags: DescribeStacks tags equal to manifest.tags.
We do not add a fingerprint tag: stack tags propagate to every resource, so a tag that changes
with each build would make every resource "modified" in every review.
A stack with NoEcho parameters cannot be compared (CloudFormation returns ****); it always gets a
change set, and the "didn't contain changes" answer turns it into a no-op.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .aws import Context, error_message
from .errors import DeployError
from .manifest import Manifest, StackSpec
from .stacks import describe_stack, stack_outputs

NO_CHANGES_MARKERS = ("didn't contain changes", "No updates are to be performed")
CHANGE_SET_PREFIX = "deploy-"
JSON = dict[str, Any]  # a JSON object as boto3 returns it


class ChangeSetFailed(DeployError):
    pass


@dataclass
class ChangeSet:
    id: str
    stack_id: str
    type: str  # CREATE or UPDATE
    changes: list[JSON] = field(default_factory=list)
    parameters: list[JSON] = field(default_factory=list)


def parameters_list(parameters: dict[str, str | None]) -> list[JSON]:
    """None keeps the deployed value (UsePreviousValue), which NoEcho values need."""
    return [{"ParameterKey": k, "UsePreviousValue": True} if v is None else {"ParameterKey": k, "ParameterValue": v}
            for k, v in sorted(parameters.items())]


def tags_list(manifest: Manifest) -> list[JSON]:
    return [{"Key": k, "Value": v} for k, v in sorted(manifest.tags.items())]


def digest(value: object) -> str:
    """Hash of a JSON-able value; plan.json stores hashes, never parameter values."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def change_set_name(spec: StackSpec) -> str:
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{CHANGE_SET_PREFIX}{stamp}-{spec.sha256[:8]}-{digest(spec.parameters)[:6]}"


def deployed_template(ctx: Context, region: str, stack_name: str) -> JSON:
    """GetTemplate body as a dict (boto3 already decodes JSON bodies; the fake does the same).
    A stack whose only change set failed has no template at all: that is "no previous
    template", an empty one."""
    body = ctx.cfn(region).call("get_template", StackName=stack_name, TemplateStage="Original").get("TemplateBody")
    if body is None:
        return {}
    if isinstance(body, str):
        try:
            parsed: JSON = json.loads(body)
            return parsed
        except json.JSONDecodeError:
            return {}
    return dict(body)


def is_unchanged(ctx: Context, manifest: Manifest, spec: StackSpec, deployed: JSON, parameters: dict[str, str]) -> bool:
    if spec.no_echo_parameters:
        return False
    deployed_parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in deployed.get("Parameters", [])}
    if deployed_parameters != parameters:
        return False
    deployed_tags = {t["Key"]: t["Value"] for t in deployed.get("Tags", [])}
    if deployed_tags != manifest.tags:
        return False
    return deployed_template(ctx, spec.region, spec.name) == spec.template()


ROLLBACK_MONITORING_MINUTES = 10


def rollback_configuration(ctx: Context, manifest: Manifest, spec: StackSpec, enabled: bool = True) -> JSON:
    """Always an explicit list: CloudFormation keeps a stack's previous rollback triggers when a
    change set omits RollbackConfiguration, so "no triggers" must be said as an empty list.
    Triggers are the monitoring layer's alarms once that stack has them; `enabled` False (the
    --no-rollback-triggers hotfix during an incident, when a firing alarm would roll the hotfix
    back) sends the empty list."""
    triggers = _rollback_triggers(ctx, manifest, spec) if enabled and spec.serves_traffic else []
    if not triggers:
        return {"RollbackTriggers": []}
    return {
        "RollbackTriggers": triggers[:5],
        "MonitoringTimeInMinutes": ROLLBACK_MONITORING_MINUTES,
    }


def _rollback_triggers(ctx: Context, manifest: Manifest, spec: StackSpec) -> list[JSON]:
    """The alarms that exist already, each with its type (a composite alarm is its own type)."""
    triggers = []
    outputs_by_stack: dict[str, dict[str, str]] = {}
    for alarm in spec.rollback_alarms:
        if alarm.stack not in outputs_by_stack:
            alarm_stack = manifest.by_name.get(alarm.stack)
            region = alarm_stack.region if alarm_stack else spec.region
            outputs_by_stack[alarm.stack] = stack_outputs(describe_stack(ctx, region, alarm.stack))
        arn = outputs_by_stack[alarm.stack].get(alarm.output)
        if arn:
            triggers.append({"Arn": arn, "Type": alarm.type})
    return triggers


def delete_stale_change_sets(ctx: Context, spec: StackSpec, stack_id: str) -> None:
    """Our earlier, never-executed change sets of this stack: a new plan supersedes them."""
    cfn = ctx.cfn(spec.region)
    token = None
    while True:
        kwargs = {"StackName": stack_id}
        if token:
            kwargs["NextToken"] = token
        response = cfn.call("list_change_sets", **kwargs)
        for summary in response.get("Summaries", []):
            # moto lists every stack's change sets here: filter on the stack ourselves
            if summary.get("StackId") not in (stack_id, None) and summary.get("StackName") != spec.name:
                continue
            if summary.get("ChangeSetName", "").startswith(CHANGE_SET_PREFIX) and summary.get(
                "ExecutionStatus"
            ) in ("AVAILABLE", "UNAVAILABLE"):
                try:
                    cfn.call("delete_change_set", ChangeSetName=summary["ChangeSetId"])
                except ClientError:
                    pass  # already gone or being deleted: nothing to clean
        token = response.get("NextToken")
        if not token:
            return


def create_change_set(
    ctx: Context, manifest: Manifest, spec: StackSpec, change_set_type: str, template: JSON,
    parameters: dict[str, str | None], rollback: JSON,
) -> tuple[str, str]:
    """Never with DeploymentMode (drift-reverting change sets would "fix" what services manage
    on purpose, such as ECS's own deployment state): the template's diff is all that runs.
    CloudFormation executes it as the service role (RoleARN, except for administered stacks),
    limited to the template's own resource types (ResourceTypes)."""
    kwargs = dict(
        StackName=spec.name,
        ChangeSetName=change_set_name(spec),
        ChangeSetType=change_set_type,
        Parameters=parameters_list(parameters),
        Tags=tags_list(manifest),
        Description=f"deploy.py {manifest.environment} {spec.sha256[:12]}",
        RollbackConfiguration=rollback,
        **template,
    )
    if spec.capabilities:
        kwargs["Capabilities"] = list(spec.capabilities)
    if spec.resource_types:
        # The types the template holds: the deploy role may create change sets only with them.
        kwargs["ResourceTypes"] = list(spec.resource_types)
    kwargs.update(manifest.role_arn(spec))
    response = ctx.cfn(spec.region).call("create_change_set", **kwargs)
    return response["Id"], response["StackId"]


def wait_for_change_set(ctx: Context, region: str, change_set_id: str, timeout_minutes: float) -> JSON | None:
    """The CREATE_COMPLETE change set, or None when it holds no changes (then it is deleted)."""
    deadline = ctx.clock.monotonic() + timeout_minutes * 60
    cfn = ctx.cfn(region)
    while True:
        described = cfn.call("describe_change_set", ChangeSetName=change_set_id, IncludePropertyValues=True)
        status = described.get("Status")
        if status == "CREATE_COMPLETE":
            return described
        if status == "FAILED":
            reason = described.get("StatusReason", "")
            if any(marker in reason for marker in NO_CHANGES_MARKERS):
                cfn.call("delete_change_set", ChangeSetName=change_set_id)
                return None
            raise ChangeSetFailed(f"change set failed: {reason}")
        if ctx.clock.monotonic() >= deadline:
            raise ChangeSetFailed(f"change set still {status} after {timeout_minutes:g} minutes")
        ctx.pause(ctx.poll_seconds)


def all_changes(ctx: Context, region: str, change_set_id: str, first_page: JSON) -> list[JSON]:
    """Every page of a change set's changes, with property values (Target.Path, BeforeValue,
    AfterValue, AttributeChangeType): the review names what changes, not only which resource.
    `first_page` must have been described with IncludePropertyValues too."""
    changes = list(first_page.get("Changes", []))
    token = first_page.get("NextToken")
    while token:
        page = ctx.cfn(region).call("describe_change_set", ChangeSetName=change_set_id, NextToken=token,
                                    IncludePropertyValues=True)
        changes += page.get("Changes", [])
        token = page.get("NextToken")
    return changes


def prepare_change_set(
    ctx: Context, manifest: Manifest, spec: StackSpec, change_set_type: str, template: JSON,
    parameters: dict[str, str | None], rollback: JSON,
) -> ChangeSet | None:
    """Creates the change set and waits for it; None means "no changes" (a no-op)."""
    try:
        change_set_id, stack_id = create_change_set(ctx, manifest, spec, change_set_type, template, parameters, rollback)
    except ClientError as error:
        if any(marker in error_message(error) for marker in NO_CHANGES_MARKERS):
            return None
        raise
    described = wait_for_change_set(ctx, spec.region, change_set_id, min(spec.timeout_minutes, 15))
    if described is None:
        return None
    return ChangeSet(
        id=change_set_id,
        stack_id=stack_id,
        type=change_set_type,
        changes=all_changes(ctx, spec.region, change_set_id, described),
        parameters=described.get("Parameters", []),
    )
