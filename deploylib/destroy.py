"""Deleting an environment: stacks in reverse dependency order, what is kept listed at the end.

Before a stack's DeleteStack:
- deletion protection is lifted where the environment keeps data (StackLifecycle back to
  `creating`, a parameter-only update), or the protected resources would end it DELETE_FAILED;
- every bucket the stack deletes (DeletionPolicy Delete) is emptied: all object versions and
  delete markers, 1,000 per DeleteObjects call, with progress. A retained bucket is never
  touched: its data is what retention keeps.
"""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from .aws import Context, Interrupted, error_message
from .changesets import deployed_template
from .executor import Executor
from .lifecycle import CREATING, ESTABLISHED, deployed_lifecycle
from .manifest import Manifest, StackSpec
from .output import Printer
from .planner import Planner
from .plans import Label
from .protection import set_termination_protection
from .scheduler import Outcome
from .shapes import Stack, StackEvent, Template
from .stackops import delete_and_wait, recovery_command
from .stacks import describe_stack, list_stack_resources, root_cause

RETAINING_POLICIES = ("Retain", "RetainExceptOnCreate", "Snapshot")
# Kept on replacement but deleted with what they belong to: a function's deletion deletes its
# versions, whatever their DeletionPolicy says, so they are not "retained" when the stack goes.
DELETED_WITH_PARENT = frozenset({"AWS::Lambda::Version"})
# Log objects of the last requests can still arrive after a bucket was emptied (server access
# logs come late): a deletion that fails on a bucket that is not empty is retried after emptying
# it again, this many times.
DELETE_ATTEMPTS = 3
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys


def retained_resources(ctx: Context, spec: StackSpec, template: Template) -> list[str]:
    """Resources with a retaining DeletionPolicy in the deployed template, with physical ids."""
    keep = {logical_id: body.get("DeletionPolicy") for logical_id, body in template.get("Resources", {}).items()
            if body.get("DeletionPolicy") in RETAINING_POLICIES and body.get("Type") not in DELETED_WITH_PARENT}
    if not keep:
        return []
    physical = {summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
                for summary in list_stack_resources(ctx, spec.region, spec.name)}
    return [f"{spec.name}: {logical_id} ({physical.get(logical_id, 'not created')}) kept by DeletionPolicy {policy}"
            for logical_id, policy in sorted(keep.items())]


def buckets_to_empty(ctx: Context, spec: StackSpec, template: Template) -> list[str]:
    """Physical names of the stack's buckets that its deletion deletes (DeletionPolicy Delete),
    in the order to empty them: a bucket that receives another's access logs comes after it
    (emptying a logged bucket writes log objects into its log bucket)."""
    resources = template.get("Resources", {})
    deleted = {logical_id for logical_id, body in resources.items()
               if body.get("Type") == "AWS::S3::Bucket" and body.get("DeletionPolicy", "Delete") == "Delete"}
    if not deleted:
        return []
    log_targets = {_ref(resources[logical_id].get("Properties", {}).get("LoggingConfiguration", {})
                        .get("DestinationBucketName")) for logical_id in deleted}
    physical = {summary["LogicalResourceId"]: str(summary["PhysicalResourceId"])
                for summary in list_stack_resources(ctx, spec.region, spec.name) if summary.get("PhysicalResourceId")}
    ordered = sorted(deleted, key=lambda logical_id: (logical_id in log_targets, logical_id))
    return [physical[logical_id] for logical_id in ordered if logical_id in physical]


def _ref(value: object) -> str | None:
    target = value.get("Ref") if isinstance(value, dict) else None
    return target if isinstance(target, str) else None


def empty_bucket(ctx: Context, printer: Printer, spec: StackSpec, bucket: str) -> int:
    """Deletes every object version and delete marker; returns how many. A bucket that is
    already gone counts as empty."""
    s3 = ctx.client("s3", spec.region)
    deleted, markers = 0, dict[str, str]()
    while True:
        try:
            page = s3.call("list_object_versions", Bucket=bucket, MaxKeys=DELETE_BATCH, **markers)
        except ClientError as error:
            if "NoSuchBucket" in (error.response.get("Error", {}).get("Code", ""), error_message(error)):
                return deleted
            raise
        batch = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(batch), DELETE_BATCH):
            chunk = batch[start:start + DELETE_BATCH]
            # A bucket that is deleted holds no data worth keeping: a GOVERNANCE lock (dev's audit
            # trail) is bypassed; COMPLIANCE locks cannot be, and are only in buckets prod keeps.
            response = s3.call("delete_objects", Bucket=bucket, Delete={"Objects": chunk, "Quiet": True},
                               BypassGovernanceRetention=True)
            if response.get("Errors"):
                first = response["Errors"][0]
                raise ClientError({"Error": {"Code": first.get("Code", "DeleteObjectsFailed"), "Message": (
                    f"s3://{bucket}: {len(response['Errors'])} object version(s) not deleted, e.g. "
                    f"{first.get('Key')}: {first.get('Message', '')}")}}, "DeleteObjects")
            deleted += len(chunk)
            printer.stack(spec.name, f"emptying s3://{bucket}: {deleted:,} object version(s) deleted")
        if not page.get("IsTruncated"):
            return deleted
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}


def _only_buckets_not_empty(events: list[StackEvent]) -> bool:
    failures = [e for e in events if e.get("ResourceStatus") == "DELETE_FAILED"
                and e.get("ResourceType") != "AWS::CloudFormation::Stack"]
    return bool(failures) and all(e.get("ResourceType") == "AWS::S3::Bucket" and "not empty" in
                                  e.get("ResourceStatusReason", "") for e in failures)


class Destroyer:
    """Deletes one stack of the environment; collects what is retained."""

    def __init__(self, ctx: Context, manifest: Manifest, printer: Printer):
        self.ctx = ctx
        self.manifest = manifest
        self.printer = printer
        self.retained: list[str] = []
        self._executor = Executor(Planner(ctx, manifest, printer))  # for the StackLifecycle switch

    def delete(self, spec: StackSpec) -> Outcome:
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        if not deployed:
            return Outcome(True, Label.ABSENT)
        try:
            return self._delete(spec, deployed)
        except (ClientError, BotoCoreError) as error:
            text = error_message(error) if isinstance(error, ClientError) else str(error)
            return Outcome(False, Label.FAILED, text)
        except Interrupted:
            return Outcome(False, Label.INTERRUPTED, "stopped waiting; the deletion goes on in CloudFormation")

    def _delete(self, spec: StackSpec, deployed: Stack) -> Outcome:
        lifted = self._lift_deletion_protection(spec, deployed)
        if lifted is not None and not lifted.ok:
            return lifted
        template = deployed_template(self.ctx, spec.region, spec.name)
        kept = retained_resources(self.ctx, spec, template)
        if deployed.get("EnableTerminationProtection"):
            self.printer.stack(spec.name, "turning termination protection off to delete")
            set_termination_protection(self.ctx, self.printer, spec, False)
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            for bucket in buckets_to_empty(self.ctx, spec, template):
                count = empty_bucket(self.ctx, self.printer, spec, bucket)
                self.printer.stack(spec.name, f"s3://{bucket} empty ({count:,} object version(s) deleted)")
            status, events = delete_and_wait(self.ctx, self.printer, self.manifest, spec, deployed["StackId"])
            if status == "DELETE_COMPLETE" or not _only_buckets_not_empty(events) or attempt == DELETE_ATTEMPTS:
                break
            self.printer.stack(spec.name, "a bucket received objects after it was emptied: emptying again")
        if status != "DELETE_COMPLETE":
            cause = root_cause(events)
            reason = f"{cause['LogicalResourceId']}: {cause.get('ResourceStatusReason', '')}" if cause else status
            return Outcome(False, Label.FAILED, f"{status}; {reason}; recover with "
                                                f"`{recovery_command(self.manifest, spec)}`")
        self.retained.extend(kept)
        return Outcome(True, Label.DELETED)

    def _lift_deletion_protection(self, spec: StackSpec, deployed: Stack) -> Outcome | None:
        """Where the environment keeps data, an established stack protects its resources from
        deletion: switch it back to `creating` first (a parameter-only update)."""
        if not (self.manifest.stack_policy and spec.lifecycle_parameter):
            return None
        if deployed_lifecycle(spec, deployed) != ESTABLISHED or deployed["StackStatus"] == "DELETE_FAILED":
            return None
        self.printer.stack(spec.name, "lifting deletion protection before deleting")
        return self._executor.switch_lifecycle(spec, CREATING)
