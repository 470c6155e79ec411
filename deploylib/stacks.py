"""Stack state, our own waiter with per-stack timeout, and resource event streaming.

Our own waiter instead of boto3's: boto3 waiters give up after a fixed number of attempts
(a database stack outlives them), cannot stream events while waiting, and die on throttling.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from .aws import Context, error_message
from .errors import DeployError
from .shapes import ResourceSummary, Stack, StackEvent

SUCCESS_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"})
FAILED_STATUSES = frozenset({
    "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_FAILED", "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
})
# Stacks in these states accept a new change set (UPDATE type).
UPDATABLE_STATUSES = frozenset({
    "CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
})


class StackTimeout(DeployError):
    pass


def is_in_progress(status: str) -> bool:
    return status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS"


def describe_stack(ctx: Context, region: str, stack_name: str) -> Stack | None:
    """The stack, or None when it does not exist (or was deleted)."""
    try:
        stacks = ctx.cfn(region).call("describe_stacks", StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in error_message(error):
            return None
        raise
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    stack: Stack = stacks[0]
    return stack


def stack_outputs(stack: Stack | None) -> dict[str, str]:
    if not stack:
        return {}
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}


def list_stack_resources(ctx: Context, region: str, stack: str) -> list[ResourceSummary]:
    """Every StackResourceSummary of the stack, following NextToken (a page holds ~100)."""
    summaries: list[ResourceSummary] = []
    token = None
    while True:
        kwargs = {"StackName": stack, **({"NextToken": token} if token else {})}
        response = ctx.cfn(region).call("list_stack_resources", **kwargs)
        summaries.extend(response.get("StackResourceSummaries", []))
        token = response.get("NextToken")
        if not token:
            return summaries


@dataclass
class EventTracker:
    """Yields each stack event once, oldest first, from the moment it was started."""

    ctx: Context
    region: str
    stack_id: str
    boundary_event_id: str | None = None

    def mark_now(self) -> None:
        events = self._page(None)[0]
        self.boundary_event_id = events[0]["EventId"] if events else None

    def _page(self, token: str | None) -> tuple[list[StackEvent], str | None]:
        kwargs = {"StackName": self.stack_id}
        if token:
            kwargs["NextToken"] = token
        try:
            response = self.ctx.cfn(self.region).call("describe_stack_events", **kwargs)
        except ClientError as error:
            if "does not exist" in error_message(error):
                return [], None
            raise
        return response.get("StackEvents", []), response.get("NextToken")

    def new_events(self) -> list[StackEvent]:
        fresh: list[StackEvent] = []
        token = None
        while True:
            events, token = self._page(token)
            reached_boundary = False
            for event in events:
                if event["EventId"] == self.boundary_event_id:
                    reached_boundary = True
                    break
                fresh.append(event)
            if reached_boundary or not token:
                break
        if fresh:
            self.boundary_event_id = fresh[0]["EventId"]
        return list(reversed(fresh))


def root_cause(events: list[StackEvent]) -> StackEvent | None:
    """The first failed resource: later failures are usually 'Resource creation cancelled'
    consequences of it, and the stack-level failure only says the stack failed."""
    failed = [e for e in events if e.get("ResourceStatus", "").endswith("_FAILED")]
    for event in failed:
        reason = event.get("ResourceStatusReason", "")
        if "cancelled" not in reason.lower() and event.get("ResourceType") != "AWS::CloudFormation::Stack":
            return event
    return failed[0] if failed else None


def format_event(event: StackEvent) -> str:
    reason = event.get("ResourceStatusReason")
    text = f"{event.get('LogicalResourceId')} {event.get('ResourceType')} {event.get('ResourceStatus')}"
    return f"{text}: {reason}" if reason else text


def wait_for_stack(
    ctx: Context,
    region: str,
    stack_id: str,
    timeout_minutes: float,
    on_event: Callable[[StackEvent], None] | None = None,
    tracker: EventTracker | None = None,
) -> tuple[str, list[StackEvent]]:
    """Polls until the stack leaves *_IN_PROGRESS; returns (final status, events seen).

    Raises StackTimeout after timeout_minutes; the operation itself keeps going in AWS.
    """
    tracker = tracker or EventTracker(ctx, region, stack_id)
    deadline = ctx.clock.monotonic() + timeout_minutes * 60
    seen: list[StackEvent] = []
    while True:
        stack = describe_stack(ctx, region, stack_id)
        for event in tracker.new_events():
            seen.append(event)
            if on_event:
                on_event(event)
        status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
        if not is_in_progress(status):
            return status, seen
        if ctx.clock.monotonic() >= deadline:
            raise StackTimeout(
                f"still {status} after {timeout_minutes:g} minutes; the operation continues in "
                f"CloudFormation, check it with `make status`"
            )
        ctx.pause(ctx.poll_seconds)
