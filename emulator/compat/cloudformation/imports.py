"""IMPORT change sets: adopting existing resources into a new or existing stack.

moto gap covered: moto has no resource import at all (ChangeSetType=IMPORT is treated as a
CREATE and makes new resources). Here, as in CloudFormation:
- ResourcesToImport names each resource by its type's primary identifier (the schema's
  primaryIdentifier: BucketName, TableName, QueueUrl, LogGroupName, Id for a secret);
- every resource to import must be in the template with a DeletionPolicy, must exist, and must
  not belong to another stack; the template may not add, change or remove anything else;
- the change set shows Action "Import" per resource; executing it records the resources
  (IMPORT_IN_PROGRESS / IMPORT_COMPLETE), registers outputs and exports, and the stack ends
  IMPORT_COMPLETE; a failure ends IMPORT_ROLLBACK_COMPLETE, leaving the resources untouched.
Supported types: S3 buckets, DynamoDB tables, SQS queues, log groups, Secrets Manager secrets.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..errors import ResourceFailure, ValidationError
from . import schemas
from .model import CLOCK, ChangeSet, ResourceRecord, Stack, Store
from .providers import State, provider_for


class ImportValidationError(ValidationError):
    """A refusal CreateChangeSet answers synchronously (the others make the change set FAILED)."""


# type -> (identifier key, adopt(account, region, partition, identifier) -> State)


def _bucket(account: str, region: str, partition: str, name: str) -> State:
    from moto.s3.models import s3_backends

    bucket = s3_backends[account][partition].buckets.get(name)
    if bucket is None or bucket.region_name != region:
        raise ResourceFailure(f"Bucket {name} does not exist in {region}")
    bucket.cf_resource_type = "AWS::S3::Bucket"
    return State(physical_id=name, handle=bucket)


def _table(account: str, region: str, partition: str, name: str) -> State:
    from moto.dynamodb.models import dynamodb_backends

    tables = dynamodb_backends[account][region].tables
    if name not in tables:
        raise ResourceFailure(f"Table {name} does not exist")
    return State(physical_id=name, handle=tables[name])


def _queue(account: str, region: str, partition: str, url: str) -> State:
    from moto.sqs.models import sqs_backends

    name = url.rstrip("/").rsplit("/", 1)[-1]
    queue = sqs_backends[account][region].queues.get(name)
    if queue is None:
        raise ResourceFailure(f"Queue {url} does not exist")
    return State(physical_id=queue.physical_resource_id, handle=queue)


def _log_group(account: str, region: str, partition: str, name: str) -> State:
    from moto.logs.models import logs_backends

    group = logs_backends[account][region].groups.get(name)
    if group is None:
        raise ResourceFailure(f"Log group {name} does not exist")
    return State(physical_id=name, handle=group, attributes={"Arn": f"{group.arn}:*"})


def _secret(account: str, region: str, partition: str, secret_id: str) -> State:
    from moto.secretsmanager.models import secretsmanager_backends

    secrets = secretsmanager_backends[account][region].secrets
    if secret_id not in secrets:
        raise ResourceFailure(f"Secret {secret_id} does not exist")
    secret = secrets[secret_id]
    return State(physical_id=secret.arn, ref=secret.arn, attributes={"Id": secret.arn}, data={"name": secret.name})


IMPORTABLE: dict[str, tuple[str, Callable[[str, str, str, str], State]]] = {
    "AWS::S3::Bucket": ("BucketName", _bucket),
    "AWS::DynamoDB::Table": ("TableName", _table),
    "AWS::SQS::Queue": ("QueueUrl", _queue),
    "AWS::Logs::LogGroup": ("LogGroupName", _log_group),
    "AWS::SecretsManager::Secret": ("Id", _secret),
}


def _owner(store: Store, resource_type: str, physical_id: str) -> Stack | None:
    for stack in store.live_stacks():
        for record in stack.resources.values():
            if record.exists and record.resource_type == resource_type and record.physical_id == physical_id:
                return stack
    return None


def import_changes(store: Store, change_set: ChangeSet, evaluation: Any) -> list[dict]:
    stack = change_set.stack
    resources = evaluation.resources
    wanted = change_set.resources_to_import
    if not wanted:
        raise ImportValidationError("ResourcesToImport must be specified for an IMPORT change set")
    existing = {k for k, r in stack.resources.items() if r.exists}
    importing: set[str] = set()
    changes = []
    for item in wanted:
        logical_id, resource_type = item["LogicalResourceId"], item["ResourceType"]
        identifier = item.get("ResourceIdentifier") or {}
        if resource_type not in IMPORTABLE:
            raise ImportValidationError(f"ResourceType {resource_type} is not supported for import by the emulator "
                                  f"(supported: {', '.join(sorted(IMPORTABLE))})")
        key, adopt = IMPORTABLE[resource_type]
        body = resources.get(logical_id)
        if body is None or body.get("Type") != resource_type:
            raise ImportValidationError(f"Resource {logical_id} of type {resource_type} is not in the template")
        if "DeletionPolicy" not in body:
            raise ImportValidationError(f"The following resources to import [{logical_id}] must have DeletionPolicy attribute "
                                  f"specified in the template.")
        if logical_id in existing:
            raise ImportValidationError(f"Resource {logical_id} already exists in the stack")
        if set(identifier) != {key}:
            raise ImportValidationError(f"Invalid ResourceIdentifier for {logical_id}: expected [{key}]")
        try:
            state = adopt(store.account_id, store.region, _partition(store.region), identifier[key])
        except ResourceFailure as error:
            raise ValidationError(f"Resources [{logical_id}] to import do not exist: {error}") from None
        owner = _owner(store, resource_type, state.physical_id)
        if owner is not None:
            raise ValidationError(f"Resource {state.physical_id} already exists in stack {owner.stack_id}")
        importing.add(logical_id)
        changes.append({"Type": "Resource", "ResourceChange": {
            "Action": "Import", "LogicalResourceId": logical_id, "PhysicalResourceId": state.physical_id,
            "ResourceType": resource_type, "Scope": [], "Details": []}})
    others = {k for k in resources if evaluation.exists(k)} - importing
    changed = sorted(k for k in others & existing
                     if _comparable(resources[k]) != _comparable(stack.resources[k].definition))
    if others != existing or changed:
        extra = sorted(others - existing) or sorted(existing - others) or changed
        raise ImportValidationError(f"You have modified resources [{', '.join(extra)}] in your template that are not being "
                              f"imported. Update, create or delete operations cannot be executed during import operations.")
    return changes


def _comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("DeletionPolicy", "UpdateReplacePolicy")}


def _partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else ("aws-us-gov" if region.startswith("us-gov-") else "aws")


def execute_import(store: Store, stack: Stack, change_set: ChangeSet, token: str | None) -> bool:
    from .engine import Evaluation, Operation, _adopt_change_set, _export_conflicts

    saved = {key: copy.copy(getattr(stack, key)) for key in (
        "template_body", "template", "original_template", "parameters", "resolved_parameters", "ssm_resolved",
        "tags", "outputs", "imports", "capabilities", "description")}
    was_new = stack.status == "REVIEW_IN_PROGRESS"
    _adopt_change_set(stack, change_set)
    op = Operation(store, stack, token)
    stack.last_updated_time = None if was_new else CLOCK.now()
    stack.stack_event("IMPORT_IN_PROGRESS", "User Initiated", token)
    evaluation = Evaluation(store, stack, stack.template, stack.resolved_parameters, stack.resources)
    tokens = Evaluation(store, stack, stack.template, stack.resolved_parameters, stack.resources, tokens=True)
    imported: list[str] = []
    failure = ""
    for item in change_set.resources_to_import:
        logical_id = item["LogicalResourceId"]
        key, adopt = IMPORTABLE[item["ResourceType"]]
        body = evaluation.resources[logical_id]
        record = ResourceRecord(logical_id=logical_id, resource_type=body["Type"], definition=copy.deepcopy(body),
                                created_by_operation="import")
        stack.resources[logical_id] = record
        op.event(record, "IMPORT_IN_PROGRESS")
        try:
            properties = evaluation.properties(logical_id)
            problem = schemas.validate_properties(record.resource_type, store.region, logical_id, properties)
            if problem:
                raise ResourceFailure(problem)
            record.state = adopt(store.account_id, store.region, _partition(store.region), item["ResourceIdentifier"][key])
            provider_for(record.resource_type, store.region)  # the type is handled from now on
        except Exception as error:  # the template or the resource does not fit: the import fails
            failure = f"{logical_id}: {error}"
            op.event(record, "IMPORT_FAILED", str(error))
            break
        record.properties = properties
        record.token_properties = tokens.token_properties(logical_id)
        op.event(record, "IMPORT_COMPLETE")
        imported.append(logical_id)
    if not failure:
        try:
            outputs = evaluation.outputs()
            conflict = _export_conflicts(store, stack, outputs)
            if conflict:
                failure = conflict
        except Exception as error:
            failure = f"Template error in Outputs: {error}"
    if not failure:
        stack.outputs = outputs
        stack.imports = evaluation.imports()
        stack.stack_event("IMPORT_COMPLETE", token=token)
        return True
    stack.stack_event("IMPORT_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to import: [{failure}].", token)
    for logical_id in imported + [failure.split(":", 1)[0]]:
        record = stack.resources.pop(logical_id, None)
        if record is not None:
            stack.add_event(logical_id, record.resource_type, "DELETE_SKIPPED", "", record.physical_id, token=token)
    for key, value in saved.items():
        setattr(stack, key, value)
    stack.stack_event("IMPORT_ROLLBACK_COMPLETE", token=token)
    return False
