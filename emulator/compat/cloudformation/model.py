"""The emulator's CloudFormation state: stacks, their resources and events, change sets.

moto gap covered: moto's Stack keeps no per-resource status or events, registers outputs and
exports only for CreateStack (not for executed change sets), forgets the previous template on
update (so nothing can roll back), and has no import tracking. This state is the emulator's
own; moto's CloudFormation backend is not used for stacks any more (its resource models and
the other services' backends still are).
"""
from __future__ import annotations

import datetime
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from .providers import State

# One lock for every CloudFormation operation of the emulator: operations run synchronously
# inside the API call (ExecuteChangeSet returns once the stack is in its final state), so
# concurrent callers (deploy.py runs several stacks at once) must not interleave.
LOCK = threading.RLock()

# Statuses whose stack publishes its outputs as exports and counts as importing.
LIVE_STATUSES = frozenset({
    "CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_FAILED", "DELETE_IN_PROGRESS", "DELETE_FAILED",
    "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE", "IMPORT_IN_PROGRESS", "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED",
})
UPDATABLE_STATUSES = frozenset({
    "CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE",
})


class Clock:
    """Strictly increasing UTC timestamps, so events sort as they happened."""

    def __init__(self) -> None:
        self._last = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime.datetime:
        with self._lock:
            current = datetime.datetime.now(datetime.UTC)
            current = current.replace(microsecond=current.microsecond // 1000 * 1000)  # AWS shows milliseconds
            if current <= self._last:
                current = self._last + datetime.timedelta(milliseconds=1)
            self._last = current
            return current


CLOCK = Clock()


@dataclass
class ResourceRecord:
    logical_id: str
    resource_type: str
    status: str = ""
    status_reason: str = ""
    state: State | None = None
    properties: dict = field(default_factory=dict)  # resolved (dynamic references unresolved)
    token_properties: dict = field(default_factory=dict)  # resolved with resources as tokens
    definition: dict = field(default_factory=dict)  # the template entry last applied
    physical_name: str = ""
    created_by_operation: str = ""
    last_updated: datetime.datetime | None = None

    @property
    def exists(self) -> bool:
        return self.state is not None

    @property
    def physical_id(self) -> str:
        return self.state.physical_id if self.state else ""

    def deletion_policy(self) -> str:
        return self.definition.get("DeletionPolicy", "Delete")

    def update_replace_policy(self) -> str:
        return self.definition.get("UpdateReplacePolicy", "Delete")


@dataclass
class Stack:
    stack_id: str
    name: str
    account_id: str
    region: str
    status: str = "REVIEW_IN_PROGRESS"
    status_reason: str = ""
    template_body: str = ""
    template: dict = field(default_factory=dict)  # processed (transforms applied)
    original_template: dict = field(default_factory=dict)  # parsed, as submitted
    parameters: dict[str, str] = field(default_factory=dict)  # as given (defaults filled in)
    resolved_parameters: dict[str, Any] = field(default_factory=dict)
    ssm_resolved: dict[str, str] = field(default_factory=dict)  # ResolvedValue of SSM-typed parameters
    tags: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    notification_arns: list[str] = field(default_factory=list)
    role_arn: str | None = None
    timeout_in_minutes: int | None = None
    description: str | None = None
    outputs: list[dict] = field(default_factory=list)
    resources: dict[str, ResourceRecord] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    creation_time: datetime.datetime = field(default_factory=CLOCK.now)
    last_updated_time: datetime.datetime | None = None
    deletion_time: datetime.datetime | None = None
    termination_protection: bool = False
    policy_body: str | None = None
    rollback_configuration: dict = field(default_factory=dict)
    disable_rollback: bool = False
    change_set_id: str | None = None
    imports: set[str] = field(default_factory=set)
    transforms_recorded: list[str] = field(default_factory=list)
    deleted: bool = False

    def add_event(self, logical_id: str, resource_type: str, status: str, reason: str = "",
                  physical_id: str = "", properties: dict | None = None, token: str | None = None) -> dict:
        event: dict[str, Any] = {
            "StackId": self.stack_id, "EventId": str(uuid.uuid4()), "StackName": self.name,
            "LogicalResourceId": logical_id, "PhysicalResourceId": physical_id,
            "ResourceType": resource_type, "Timestamp": CLOCK.now(), "ResourceStatus": status,
        }
        if reason:
            event["ResourceStatusReason"] = reason
        if properties is not None:
            import json

            event["ResourceProperties"] = json.dumps(properties, sort_keys=True, default=str)
        if token:
            event["ClientRequestToken"] = token
        self.events.append(event)
        return event

    def stack_event(self, status: str, reason: str = "", token: str | None = None) -> None:
        self.status = status
        self.status_reason = reason
        self.add_event(self.name, "AWS::CloudFormation::Stack", status, reason, self.stack_id, token=token)

    def exports(self) -> dict[str, str]:
        if self.deleted or self.status not in LIVE_STATUSES:
            return {}
        return {o["ExportName"]: o["OutputValue"] for o in self.outputs if o.get("ExportName")}


@dataclass
class ChangeSet:
    change_set_id: str
    name: str
    stack: Stack
    change_set_type: str  # CREATE, UPDATE, IMPORT
    template_body: str
    original_template: dict
    template: dict
    parameters: dict[str, str]
    resolved_parameters: dict[str, Any]
    ssm_resolved: dict[str, str]
    tags: dict[str, str]
    capabilities: list[str]
    notification_arns: list[str]
    rollback_configuration: dict
    description: str | None
    role_arn: str | None
    on_stack_failure: str | None = None
    resources_to_import: list[dict] = field(default_factory=list)
    resource_types: list[str] | None = None  # CreateChangeSet ResourceTypes: None allows every type
    status: str = "CREATE_PENDING"
    status_reason: str = ""
    execution_status: str = "UNAVAILABLE"
    changes: list[dict] = field(default_factory=list)
    creation_time: datetime.datetime = field(default_factory=CLOCK.now)
    no_echo: set[str] = field(default_factory=set)


@dataclass
class Store:
    """The CloudFormation state of one account in one region."""

    account_id: str
    region: str
    stacks: list[Stack] = field(default_factory=list)  # deleted ones too (DescribeStacks by id)
    change_sets: dict[str, ChangeSet] = field(default_factory=dict)

    def live_stacks(self) -> list[Stack]:
        return [s for s in self.stacks if not s.deleted]

    def find_stack(self, name_or_id: str, include_deleted_by_id: bool = True) -> Stack | None:
        for stack in reversed(self.stacks):
            if stack.stack_id == name_or_id and (include_deleted_by_id or not stack.deleted):
                return stack
        for stack in reversed(self.stacks):
            if stack.name == name_or_id and not stack.deleted:
                return stack
        return None

    def exports(self) -> dict[str, tuple[Stack, str]]:
        found: dict[str, tuple[Stack, str]] = {}
        for stack in self.live_stacks():
            for name, value in stack.exports().items():
                found.setdefault(name, (stack, value))
        return found

    def importers(self, export_name: str) -> list[Stack]:
        return [s for s in self.live_stacks() if s.status in LIVE_STATUSES and export_name in s.imports]


_STORES: dict[tuple[str, str], Store] = {}


def store(account_id: str, region: str) -> Store:
    with LOCK:
        key = (account_id, region)
        if key not in _STORES:
            _STORES[key] = Store(account_id, region)
        return _STORES[key]


def all_stores() -> list[Store]:
    with LOCK:
        return list(_STORES.values())


def reset() -> None:
    with LOCK:
        _STORES.clear()
