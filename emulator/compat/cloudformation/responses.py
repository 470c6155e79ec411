"""CloudFormation API handlers, installed on moto's CloudFormationResponse.

moto gap covered: moto's handlers for stacks and change sets sit on its own Stack/ChangeSet
models (no events, no rollback, no exports for change-set stacks, see engine.py), and it has no
ListImports, UpdateTerminationProtection, ContinueUpdateRollback or CancelUpdateStack (they
answer an HTML 500 page in server mode). Each handler here returns a dict in the botocore
output shape (moto serializes it); errors are CloudFormation's codes and messages. Stack sets,
ValidateTemplate and GetTemplateSummary stay moto's.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult, EmptyResult

from platform_contracts import NO_ECHO_MASK

from ..errors import ValidationError
from . import engine
from .model import LOCK, ChangeSet, Stack, Store
from .model import store as store_for

PAGE = 100


def _store(response: CloudFormationResponse) -> Store:
    return store_for(response.current_account, response.region)


def _stack_or_fail(store: Store, name: str | None, include_deleted: bool = True) -> Stack:
    stack = store.find_stack(name or "", include_deleted_by_id=include_deleted) if name else None
    if stack is None:
        raise ValidationError(f"Stack with id {name} does not exist")
    return stack


def _no_echo(template: dict) -> set[str]:
    return {k for k, v in (template.get("Parameters") or {}).items() if str(v.get("NoEcho", "false")).lower() == "true"}


def _parameters(values: dict[str, str], ssm: dict[str, str], template: dict) -> list[dict]:
    hidden = _no_echo(template)
    rows = []
    for key, value in values.items():
        row = {"ParameterKey": key, "ParameterValue": NO_ECHO_MASK if key in hidden else value}
        if key in ssm:
            row["ResolvedValue"] = NO_ECHO_MASK if key in hidden else ssm[key]
        rows.append(row)
    return rows


def _tags(tags: dict[str, str]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def describe(stack: Stack) -> dict:
    result: dict[str, Any] = {
        "StackId": stack.stack_id, "StackName": stack.name,
        "Parameters": _parameters(stack.parameters, stack.ssm_resolved, stack.template),
        "CreationTime": stack.creation_time, "StackStatus": stack.status,
        "DisableRollback": stack.disable_rollback, "NotificationARNs": stack.notification_arns,
        "Capabilities": stack.capabilities, "Tags": _tags(stack.tags),
        "EnableTerminationProtection": stack.termination_protection,
        "RollbackConfiguration": stack.rollback_configuration or {},
        "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
    }
    if stack.change_set_id:
        result["ChangeSetId"] = stack.change_set_id
    if stack.description:
        result["Description"] = stack.description
    if stack.last_updated_time:
        result["LastUpdatedTime"] = stack.last_updated_time
    if stack.deletion_time:
        result["DeletionTime"] = stack.deletion_time
    if stack.status_reason:
        result["StackStatusReason"] = stack.status_reason
    if stack.timeout_in_minutes:
        result["TimeoutInMinutes"] = stack.timeout_in_minutes
    if stack.role_arn:
        result["RoleARN"] = stack.role_arn
    if stack.outputs:
        result["Outputs"] = copy.deepcopy(stack.outputs)
    return result


def _page(items: list, token: str | None, size: int = PAGE) -> tuple[list, str | None]:
    start = int(token) if token and token.isdigit() else 0
    chunk = items[start:start + size]
    return chunk, (str(start + size) if start + size < len(items) else None)


def _describe_change_set(change_set: ChangeSet) -> dict:
    result: dict[str, Any] = {
        "ChangeSetName": change_set.name, "ChangeSetId": change_set.change_set_id,
        "StackId": change_set.stack.stack_id, "StackName": change_set.stack.name,
        "Parameters": _parameters(change_set.parameters, change_set.ssm_resolved, change_set.template),
        "CreationTime": change_set.creation_time, "ExecutionStatus": change_set.execution_status,
        "Status": change_set.status, "NotificationARNs": change_set.notification_arns,
        "RollbackConfiguration": change_set.rollback_configuration or {},
        "Capabilities": change_set.capabilities, "Tags": _tags(change_set.tags),
        "IncludeNestedStacks": False,
    }
    if change_set.description:
        result["Description"] = change_set.description
    if change_set.status_reason:
        result["StatusReason"] = change_set.status_reason
    if change_set.on_stack_failure:
        result["OnStackFailure"] = change_set.on_stack_failure
    return result


def _includes_property_values(response: Any) -> bool:
    """DescribeChangeSet's IncludePropertyValues flag (the response object is moto's)."""
    return bool(_boolean(response._get_param("IncludePropertyValues")))


def _drop_property_values(changes: list[dict[str, Any]]) -> None:
    """Without IncludePropertyValues, DescribeChangeSet names the changed properties only."""
    for change in changes:
        for detail in change.get("ResourceChange", {}).get("Details", []):
            for key in engine.PROPERTY_VALUE_KEYS:
                detail.get("Target", {}).pop(key, None)


def _summary(record, stack: Stack) -> dict:
    row = {"LogicalResourceId": record.logical_id, "PhysicalResourceId": record.physical_id,
           "ResourceType": record.resource_type, "LastUpdatedTimestamp": record.last_updated or stack.creation_time,
           "ResourceStatus": record.status, "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"}}
    if record.status_reason:
        row["ResourceStatusReason"] = record.status_reason
    return row


class _Handler(CloudFormationResponse):
    """Base of the handler groups. Typed as moto's response because at run time `self` is one:
    install() copies each group's methods onto CloudFormationResponse."""

    def _cfn_args(self) -> dict:
        names = ("StackName", "TemplateBody", "TemplateURL", "UsePreviousTemplate", "Parameters", "Capabilities",
                 "RoleARN", "RollbackConfiguration", "NotificationARNs", "Tags", "ChangeSetName", "Description",
                 "ChangeSetType", "ResourcesToImport", "OnStackFailure", "ResourceTypes")
        args = {}
        for name in names:
            value = self._get_param(name)
            if value is not None:
                args[name] = value
        if "UsePreviousTemplate" in args:
            args["UsePreviousTemplate"] = _boolean(args["UsePreviousTemplate"])
        return args


class ChangeSetHandlers(_Handler):
    """CreateChangeSet, DescribeChangeSet, ListChangeSets, ExecuteChangeSet, DeleteChangeSet."""

    def create_change_set(self) -> ActionResult:
        store = _store(self)
        change_set = engine.create_change_set(store, self._cfn_args())
        return ActionResult({"Id": change_set.change_set_id, "StackId": change_set.stack.stack_id})

    def describe_change_set(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            change_set = engine.find_change_set(store, self._get_param("ChangeSetName"), self._get_param("StackName"))
            result = _describe_change_set(change_set)
            changes, token = _page(change_set.changes, self._get_param("NextToken"))
            result["Changes"] = copy.deepcopy(changes)
            if not _includes_property_values(self):
                _drop_property_values(result["Changes"])
            if token:
                result["NextToken"] = token
        return ActionResult(result)

    def list_change_sets(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"))
            summaries = []
            for change_set in store.change_sets.values():
                if change_set.stack is not stack:
                    continue
                row = {"StackId": stack.stack_id, "StackName": stack.name, "ChangeSetId": change_set.change_set_id,
                       "ChangeSetName": change_set.name, "ExecutionStatus": change_set.execution_status,
                       "Status": change_set.status, "CreationTime": change_set.creation_time,
                       "IncludeNestedStacks": False}
                if change_set.status_reason:
                    row["StatusReason"] = change_set.status_reason
                if change_set.description:
                    row["Description"] = change_set.description
                summaries.append(row)
            page, token = _page(summaries, self._get_param("NextToken"))
        return ActionResult({"Summaries": page, **({"NextToken": token} if token else {})})

    def execute_change_set(self) -> ActionResult:
        store = _store(self)
        disable = self._get_param("DisableRollback")
        retain = self._get_param("RetainExceptOnCreate")
        engine.execute_change_set(store, self._get_param("ChangeSetName"), self._get_param("StackName"),
                                  _boolean(disable), _boolean(retain), self._get_param("ClientRequestToken"))
        return EmptyResult()

    def delete_change_set(self) -> ActionResult:
        engine.delete_change_set(_store(self), self._get_param("ChangeSetName"), self._get_param("StackName"))
        return EmptyResult()


class StackHandlers(_Handler):
    """CreateStack, UpdateStack, DeleteStack, DescribeStacks, ListStacks and the ways out of a stuck stack."""

    def create_stack(self) -> ActionResult:
        store = _store(self)
        args = self._cfn_args()
        name = args["StackName"]
        with LOCK:
            existing = store.find_stack(name, include_deleted_by_id=False)
            if existing is not None:
                raise engine.AlreadyExists(f"Stack [{name}] already exists")
            args.update(ChangeSetName=f"CreateStack-{engine.uuid.uuid4().hex[:20]}", ChangeSetType="CREATE")
            on_failure = self._get_param("OnFailure") or ("DO_NOTHING" if _boolean(self._get_param("DisableRollback")) else "ROLLBACK")
            args["OnStackFailure"] = on_failure
            change_set = engine.create_change_set(store, args)
            stack = change_set.stack
            if change_set.status == "FAILED":
                store.stacks.remove(stack)
                store.change_sets.pop(change_set.change_set_id, None)
                raise ValidationError(change_set.status_reason)
            stack.termination_protection = bool(_boolean(self._get_param("EnableTerminationProtection")))
            stack.policy_body = self._get_param("StackPolicyBody") or stack.policy_body
            stack.timeout_in_minutes = self._get_param("TimeoutInMinutes")
            engine.execute_change_set(store, change_set.change_set_id, None, on_failure == "DO_NOTHING", False,
                                      self._get_param("ClientRequestToken"))
            stack.change_set_id = None
        return ActionResult({"StackId": stack.stack_id})

    def update_stack(self) -> ActionResult:
        store = _store(self)
        args = self._cfn_args()
        with LOCK:
            stack = _stack_or_fail(store, args["StackName"], include_deleted=False)
            args.update(ChangeSetName=f"UpdateStack-{engine.uuid.uuid4().hex[:20]}", ChangeSetType="UPDATE")
            change_set = engine.create_change_set(store, args)
            if change_set.status == "FAILED":
                store.change_sets.pop(change_set.change_set_id, None)
                reason = change_set.status_reason
                raise ValidationError("No updates are to be performed." if reason == engine.NO_CHANGES else reason)
            during = self._get_param("StackPolicyDuringUpdateBody")
            saved_policy = stack.policy_body
            if during:
                stack.policy_body = during
            if self._get_param("StackPolicyBody"):
                saved_policy = self._get_param("StackPolicyBody")
            try:
                engine.execute_change_set(store, change_set.change_set_id, None, _boolean(self._get_param("DisableRollback")),
                                          False, self._get_param("ClientRequestToken"))
            finally:
                stack.policy_body = saved_policy
            stack.change_set_id = None
        return ActionResult({"StackId": stack.stack_id})

    def delete_stack(self) -> ActionResult:
        engine.delete_stack(_store(self), self._get_param("StackName"), self._get_param("RetainResources") or [],
                            self._get_param("ClientRequestToken"))
        return EmptyResult()

    def describe_stacks(self) -> ActionResult:
        store = _store(self)
        name = self._get_param("StackName")
        with LOCK:
            stacks = [_stack_or_fail(store, name)] if name else store.live_stacks()
            page, token = _page([describe(s) for s in stacks], self._get_param("NextToken"))
        return ActionResult({"Stacks": page, **({"NextToken": token} if token else {})})

    def list_stacks(self) -> ActionResult:
        store = _store(self)
        wanted = set(self._get_param("StackStatusFilter") or [])
        with LOCK:
            rows = []
            for stack in reversed(store.stacks):
                if wanted and stack.status not in wanted:
                    continue
                row = {"StackId": stack.stack_id, "StackName": stack.name, "CreationTime": stack.creation_time,
                       "StackStatus": stack.status, "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"}}
                if stack.description:
                    row["TemplateDescription"] = stack.description
                if stack.last_updated_time:
                    row["LastUpdatedTime"] = stack.last_updated_time
                if stack.deletion_time:
                    row["DeletionTime"] = stack.deletion_time
                if stack.status_reason:
                    row["StackStatusReason"] = stack.status_reason
                rows.append(row)
            page, token = _page(rows, self._get_param("NextToken"))
        return ActionResult({"StackSummaries": page, **({"NextToken": token} if token else {})})

    def update_termination_protection(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"), include_deleted=False)
            if stack.deleted:
                raise ValidationError(f"Stack with id {self._get_param('StackName')} does not exist")
            stack.termination_protection = bool(_boolean(self._get_param("EnableTerminationProtection")))
        return ActionResult({"StackId": stack.stack_id})

    def continue_update_rollback(self) -> ActionResult:
        engine.continue_update_rollback(_store(self), self._get_param("StackName"),
                                        self._get_param("ResourcesToSkip") or [], self._get_param("ClientRequestToken"))
        return EmptyResult()

    def cancel_update_stack(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"), include_deleted=False)
            raise ValidationError(f"CancelUpdateStack cannot be called from current stack status {stack.status}.")


class ResourceHandlers(_Handler):
    """A stack's events, resources and template."""

    def describe_stack_events(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"))
            events = list(reversed(stack.events))
            page, token = _page(events, self._get_param("NextToken"))
            page = copy.deepcopy(page)
        return ActionResult({"StackEvents": page, **({"NextToken": token} if token else {})})

    def list_stack_resources(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"))
            rows = [_summary(r, stack) for r in stack.resources.values()]
            page, token = _page(rows, self._get_param("NextToken"))
        return ActionResult({"StackResourceSummaries": page, **({"NextToken": token} if token else {})})

    def describe_stack_resources(self) -> ActionResult:
        store = _store(self)
        logical = self._get_param("LogicalResourceId")
        physical = self._get_param("PhysicalResourceId")
        with LOCK:
            if self._get_param("StackName"):
                stacks = [_stack_or_fail(store, self._get_param("StackName"))]
            elif physical:
                stacks = [s for s in store.live_stacks() if any(r.physical_id == physical for r in s.resources.values())]
                if not stacks:
                    raise ValidationError(f"Stack for {physical} does not exist")
            else:
                raise ValidationError("Either StackName or PhysicalResourceId must be specified.")
            rows = []
            for stack in stacks:
                for record in stack.resources.values():
                    if logical and record.logical_id != logical:
                        continue
                    if physical and record.physical_id != physical:
                        continue
                    row = {"StackName": stack.name, "StackId": stack.stack_id, **_summary(record, stack)}
                    row["Timestamp"] = row.pop("LastUpdatedTimestamp")
                    rows.append(row)
        return ActionResult({"StackResources": rows})

    def describe_stack_resource(self) -> ActionResult:
        store = _store(self)
        logical = self._get_param("LogicalResourceId")
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"))
            record = stack.resources.get(logical)
            if record is None:
                raise ValidationError(f"Resource {logical} does not exist for stack {stack.name}")
            row = {"StackName": stack.name, "StackId": stack.stack_id, **_summary(record, stack)}
            metadata = record.definition.get("Metadata")
            if metadata:
                row["Metadata"] = json.dumps(metadata)
        return ActionResult({"StackResourceDetail": row})

    def get_template(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            change_set_name = self._get_param("ChangeSetName")
            if change_set_name:
                change_set = engine.find_change_set(store, change_set_name, self._get_param("StackName"))
                original, processed = change_set.template_body, change_set.template
            else:
                stack = _stack_or_fail(store, self._get_param("StackName"))
                if stack.status == "REVIEW_IN_PROGRESS" and not stack.template_body:
                    raise ValidationError(f"Stack with id {self._get_param('StackName')} does not exist")
                original, processed = stack.template_body, stack.template
            stage = self._get_param("TemplateStage") or "Original"
            body = original if stage == "Original" else json.dumps(processed)
        return ActionResult({"TemplateBody": body, "StagesAvailable": ["Original", "Processed"]})


class ExportHandlers(_Handler):
    """ListExports and ListImports (moto has no ListImports)."""

    def list_exports(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            rows = [{"ExportingStackId": owner.stack_id, "Name": name, "Value": value}
                    for name, (owner, value) in store.exports().items()]
            page, token = _page(rows, self._get_param("NextToken"))
        return ActionResult({"Exports": page, **({"NextToken": token} if token else {})})

    def list_imports(self) -> ActionResult:
        store = _store(self)
        name = self._get_param("ExportName")
        with LOCK:
            if name not in store.exports():
                raise ValidationError(f"Export '{name}' does not exist.")
            users = [s.name for s in store.importers(name)]
            if not users:
                raise ValidationError(f"Export '{name}' is not imported by any stack.")
            page, token = _page(users, self._get_param("NextToken"))
        return ActionResult({"Imports": page, **({"NextToken": token} if token else {})})


class PolicyHandlers(_Handler):
    """GetStackPolicy and SetStackPolicy."""

    def get_stack_policy(self) -> ActionResult:
        store = _store(self)
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"), include_deleted=False)
            body = stack.policy_body
        return ActionResult({"StackPolicyBody": body} if body else {})

    def set_stack_policy(self) -> ActionResult:
        store = _store(self)
        body = self._get_param("StackPolicyBody")
        url = self._get_param("StackPolicyURL")
        with LOCK:
            stack = _stack_or_fail(store, self._get_param("StackName"), include_deleted=False)
            if url:
                body = engine.read_template_url(store, url)
            try:
                json.loads(body or "")
            except json.JSONDecodeError:
                raise ValidationError("Error validating stack policy: Invalid stack policy") from None
            stack.policy_body = body
        return EmptyResult()


class DriftHandlers(_Handler):
    """The drift APIs."""

    # moto gap: the drift APIs raise NotImplementedError (an HTML 500 page and a traceback on the
    # server). The emulator does not detect drift either; it answers like an AWS-shaped error
    # with HTTP 501, which clients (deploy.py's status --drift) report as "not implemented by
    # the emulator".
    def detect_stack_drift(self) -> Any:
        return _not_implemented("DetectStackDrift")

    def describe_stack_drift_detection_status(self) -> Any:
        return _not_implemented("DescribeStackDriftDetectionStatus")

    def describe_stack_resource_drifts(self) -> Any:
        return _not_implemented("DescribeStackResourceDrifts")

    def detect_stack_resource_drift(self) -> Any:
        return _not_implemented("DetectStackResourceDrift")


HANDLER_GROUPS = (_Handler, ChangeSetHandlers, StackHandlers, ResourceHandlers, ExportHandlers, PolicyHandlers, DriftHandlers)


def _not_implemented(operation: str) -> tuple[int, dict, str]:
    body = ("<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><Error><Type>Receiver</Type>"
            f"<Code>NotImplemented</Code><Message>{operation} is not implemented by the emulator (no drift "
            "detection)</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
    return 501, {"Content-Type": "text/xml", "status": 501}, body


def _boolean(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _pass_through(transformer):
    """moto's response transformers reshape its own model objects; ours are already shaped."""
    def transform(value):
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
        return transformer(value)
    return transform


def install() -> None:
    for group in HANDLER_GROUPS:
        for name, function in vars(group).items():
            if callable(function) and not name.startswith("__"):
                setattr(CloudFormationResponse, name, function)
    CloudFormationResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER = {
        key: _pass_through(value) for key, value in CloudFormationResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER.items()
    }
