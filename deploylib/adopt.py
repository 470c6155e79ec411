"""Named resources an earlier deployment kept, found before a create meets them, and adopted
back with an IMPORT change set.

staging and prod retain their data when a stack is deleted (DeletionPolicy RetainExceptOnCreate).
Creating the stack again would fail on the first bucket, table or queue whose name is taken. The
plan finds them first (one read per named stateful resource of a stack that does not exist) and
stops with `make adopt`, which creates the stack with an IMPORT change set
(`ResourcesToImport`): the resources are the same, only their owner changes. The next deploy then
updates the stack to its full template. (`ImportExistingResources` on a CREATE change set would
do this only for resources named by a literal; these names are built with Fn::Sub.)
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from .aws import Context, error_code
from .changesets import CHANGE_SET_PREFIX, change_set_name, tags_list, wait_for_change_set
from .guards import references
from .manifest import Manifest, StackSpec
from .shapes import JsonObject, Template

NOT_FOUND = frozenset({
    "404", "NoSuchBucket", "NotFound", "ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist", "DBClusterNotFoundFault", "RepositoryNotFoundException",
})


# What a lookup finds: the ResourceIdentifier an IMPORT names it by, and why it cannot be adopted ("" if it can).
Found = tuple[dict[str, str], str]


@dataclass(frozen=True)
class Existing:
    logical_id: str
    resource_type: str
    name: str
    identifier: dict[str, str]  # the ResourceIdentifier an IMPORT names it by
    problem: str = ""  # why it cannot be adopted as it is (scheduled for deletion, another owner)

    def describe(self) -> str:
        text = f"{self.logical_id} ({self.resource_type}) {self.name}"
        return f"{text}: {self.problem}" if self.problem else text


def _bucket(ctx: Context, region: str, name: str) -> Found | None:
    try:
        ctx.client("s3", region).call("head_bucket", Bucket=name)
    except ClientError as error:
        if error_code(error) == "403":
            return {"BucketName": name}, "the name is taken by a bucket this account cannot read (another account's?)"
        raise
    return {"BucketName": name}, ""


def _table(ctx: Context, region: str, name: str) -> Found | None:
    ctx.client("dynamodb", region).call("describe_table", TableName=name)
    return {"TableName": name}, ""


def _queue(ctx: Context, region: str, name: str) -> Found | None:
    url = ctx.client("sqs", region).call("get_queue_url", QueueName=name)["QueueUrl"]
    return {"QueueUrl": url}, ""


def _secret(ctx: Context, region: str, name: str) -> Found | None:
    described = ctx.client("secretsmanager", region).call("describe_secret", SecretId=name)
    problem = ""
    if described.get("DeletedDate"):
        problem = (f"scheduled for deletion: restore it (aws secretsmanager restore-secret --secret-id {name}) "
                   "to adopt it, or delete it for good (--force-delete-without-recovery) to create a new one")
    return {"Id": described["ARN"]}, problem


def _log_group(ctx: Context, region: str, name: str) -> Found | None:
    groups = ctx.client("logs", region).call("describe_log_groups", logGroupNamePrefix=name).get("logGroups", [])
    return ({"LogGroupName": name}, "") if any(g["logGroupName"] == name for g in groups) else None


def _cluster(ctx: Context, region: str, name: str) -> Found | None:
    ctx.client("rds", region).call("describe_db_clusters", DBClusterIdentifier=name)
    return {"DBClusterIdentifier": name}, ""


def _repository(ctx: Context, region: str, name: str) -> Found | None:
    ctx.client("ecr", region).call("describe_repositories", repositoryNames=[name])
    return {"RepositoryName": name}, ""


# How each named stateful type is looked up: (identifier, problem) when it exists, else None.
LOOKUPS: dict[str, Callable[[Context, str, str], Found | None]] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::DynamoDB::Table": _table,
    "AWS::SQS::Queue": _queue,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::RDS::DBCluster": _cluster,
    "AWS::ECR::Repository": _repository,
}


def existing_named_resources(ctx: Context, spec: StackSpec) -> list[Existing]:
    """The stack's named stateful resources that already exist in the account and region."""
    found = []
    for logical_id, (resource_type, name) in sorted(spec.named_resources.items()):
        lookup = LOOKUPS.get(resource_type)
        if lookup is None:
            continue
        try:
            result = lookup(ctx, spec.region, name)
        except ClientError as error:
            if error_code(error) in NOT_FOUND:
                continue
            raise
        if result is not None:
            found.append(Existing(logical_id, resource_type, name, *result))
    return found


def in_the_way_note(manifest: Manifest, spec: StackSpec, existing: list[Existing]) -> str:
    lines = [f"{len(existing)} resource(s) an earlier deployment kept hold names this stack creates; "
             "its create would fail with \"already exists\":"]
    lines += [f"    {item.describe()}" for item in existing]
    lines.append(f"    way out: `make adopt ENV={manifest.environment} STACK={spec.name}` (an IMPORT change set "
                 "takes them over), then deploy; or delete them if their data is not wanted")
    return "\n".join(lines)


def import_template(template: Template, logical_ids: set[str]) -> Template:
    """The stack's template cut to the resources being imported: properties that refer to a
    resource outside the import are left out (the next deploy's update sets them), DependsOn
    too, and no outputs (an import creates nothing else). Parameters and conditions stay."""
    declared = set(template.get("Resources", {}))
    keep = {}
    for logical_id in sorted(logical_ids):
        resource = copy.deepcopy(template["Resources"][logical_id])
        resource.pop("DependsOn", None)
        properties = resource.get("Properties", {})
        for key in list(properties):
            outside = (references(properties[key]) & declared) - logical_ids
            if outside:
                del properties[key]
        keep[logical_id] = resource
    cut = {key: value for key, value in template.items() if key in ("AWSTemplateFormatVersion", "Description",
                                                                       "Parameters", "Conditions", "Mappings")}
    cut["Resources"] = keep
    return cut


def create_import_change_set(ctx: Context, manifest: Manifest, spec: StackSpec, existing: list[Existing],
                             parameters: dict[str, str]) -> JsonObject:
    """The IMPORT change set for `existing` (a new stack holding only them); returns its description."""
    template = import_template(spec.template(), {item.logical_id for item in existing})
    used = set(template.get("Parameters", {}))
    response = ctx.cfn(spec.region).call(
        "create_change_set",
        StackName=spec.name,
        ChangeSetName=f"{CHANGE_SET_PREFIX}import-{change_set_name(spec).removeprefix(CHANGE_SET_PREFIX)}",
        ChangeSetType="IMPORT",
        TemplateBody=json.dumps(template, sort_keys=True),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items()) if k in used],
        Tags=tags_list(manifest),
        Capabilities=list(spec.capabilities),
        ResourcesToImport=[
            {"ResourceType": item.resource_type, "LogicalResourceId": item.logical_id, "ResourceIdentifier": item.identifier}
            for item in existing
        ],
        Description=f"deploy.py adopt {manifest.environment}: {len(existing)} retained resource(s)",
        **manifest.role_arn(spec),
    )
    described = wait_for_change_set(ctx, spec.region, response["Id"], min(spec.timeout_minutes, 15))
    return described or {"ChangeSetId": response["Id"], "StackId": response["StackId"], "Changes": []}
