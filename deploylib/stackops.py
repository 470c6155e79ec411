"""One stack's low-level operations and the words for its states: which states block a deploy,
what failed and why, the command that gets out of it, deleting and waiting.
"""
from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from .aws import Context, error_message
from .manifest import Manifest, StackSpec
from .output import Printer
from .shapes import Stack, StackEvent
from .stacks import format_event, list_stack_resources, wait_for_stack

# States nothing but an explicit recovery gets a stack out of; deleting or updating it blindly
# would fail again for the same cause (deletion protection, a resource that cannot roll back).
BLOCKED_STATUSES = frozenset({"ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED", "IMPORT_ROLLBACK_FAILED"})
# A failed first create left nothing but the stack: ours are deleted and created again.
RECREATABLE_STATUSES = frozenset({"ROLLBACK_COMPLETE"})
WAY_OUT = {
    "ROLLBACK_FAILED": "removes the cause where it knows it (deletion protection), then deletes the stack",
    "DELETE_FAILED": "deletes the stack again, keeping (retaining) the resources that failed to delete",
    "UPDATE_ROLLBACK_FAILED": "continues the rollback, skipping the resources that cannot roll back",
    "IMPORT_ROLLBACK_FAILED": "continues the rollback, skipping the resources that cannot roll back",
}
EVENT_PAGES_FOR_FAILURES = 3


@dataclass(frozen=True)
class FailedResource:
    logical_id: str
    resource_type: str
    physical_id: str
    status: str
    reason: str

    def describe(self) -> str:
        physical = f" {self.physical_id}" if self.physical_id else ""
        return f"{self.logical_id} ({self.resource_type}{physical}) {self.status}: {self.reason or 'no reason given'}"


def is_ours(manifest: Manifest, deployed: Stack) -> bool:
    tags = {t["Key"]: t["Value"] for t in deployed.get("Tags", [])}
    return tags.get("ManagedBy") == manifest.tags.get("ManagedBy") and tags.get("Environment") == manifest.environment


def recovery_command(manifest: Manifest, spec: StackSpec) -> str:
    return f"make recover ENV={manifest.environment} STACK={spec.name}"


def failed_resources(ctx: Context, spec: StackSpec, stack_id: str) -> list[FailedResource]:
    """Resources whose current status is a failure, with the reason of their latest event."""
    try:
        summaries = list_stack_resources(ctx, spec.region, stack_id)
    except ClientError:
        summaries = []
    reasons = _latest_failure_reasons(ctx, spec.region, stack_id)
    failed = [
        FailedResource(s["LogicalResourceId"], s.get("ResourceType", ""), s.get("PhysicalResourceId", ""),
                       s.get("ResourceStatus", ""), reasons.get(s["LogicalResourceId"], ""))
        for s in summaries if s.get("ResourceStatus", "").endswith("_FAILED")
    ]
    return sorted(failed, key=lambda f: f.logical_id)


def _latest_failure_reasons(ctx: Context, region: str, stack_id: str) -> dict[str, str]:
    reasons: dict[str, str] = {}
    token = None
    for _ in range(EVENT_PAGES_FOR_FAILURES):
        kwargs = {"StackName": stack_id, **({"NextToken": token} if token else {})}
        try:
            response = ctx.cfn(region).call("describe_stack_events", **kwargs)
        except ClientError:
            break
        for event in response.get("StackEvents", []):  # newest first
            if event.get("ResourceStatus", "").endswith("_FAILED"):
                reasons.setdefault(event["LogicalResourceId"], event.get("ResourceStatusReason", ""))
        token = response.get("NextToken")
        if not token:
            break
    return reasons


def blocked_note(ctx: Context, manifest: Manifest, spec: StackSpec, deployed: Stack) -> str:
    """Why the stack cannot be deployed, what failed, and the way out."""
    status = deployed["StackStatus"]
    failures = failed_resources(ctx, spec, deployed["StackId"])
    lines = [f"stack is {status}; nothing can change it until it is recovered."]
    lines += [f"    {failure.describe()}" for failure in failures]
    lines.append(f"    way out: `{recovery_command(manifest, spec)}` {WAY_OUT.get(status, '')}".rstrip())
    return "\n".join(lines)


def delete_and_wait(ctx: Context, printer: Printer, manifest: Manifest, spec: StackSpec, stack_id: str,
                    **delete_options: object) -> tuple[str, list[StackEvent]]:
    """DeleteStack (with RetainResources or DeletionMode when given) as the service role, and wait
    for the end."""
    ctx.cfn(spec.region).call("delete_stack", StackName=stack_id, **manifest.role_arn(spec), **delete_options)
    return wait_for_stack(ctx, spec.region, stack_id, spec.timeout_minutes,
                          on_event=lambda event: printer.stack(spec.name, format_event(event)))


def stack_is_empty(ctx: Context, spec: StackSpec, stack_id: str) -> bool:
    """An interrupted plan's REVIEW_IN_PROGRESS stack holds no resources."""
    try:
        return not list_stack_resources(ctx, spec.region, stack_id)
    except ClientError as error:
        return "does not exist" in error_message(error)
