"""`deploy.py recover`: the explicit way out of a blocked stack state, one stack at a time.

- ROLLBACK_FAILED (a failed create could not roll back): remove the cause where it is known
  (deletion protection on a database cluster, table or load balancer), then DeleteStack.
- DELETE_FAILED: DeleteStack again with RetainResources = the resources that failed to delete
  (listed, they stay in the account), or with DeletionMode FORCE_DELETE_STACK (--force-delete).
- UPDATE_ROLLBACK_FAILED / IMPORT_ROLLBACK_FAILED: ContinueUpdateRollback with ResourcesToSkip =
  the resources that failed; they keep their current state, which may differ from the template
  (`make status DRIFT=1` shows it), until the next deploy updates them.
CloudFormation accepts RetainResources only in DELETE_FAILED and ContinueUpdateRollback only in
UPDATE_ROLLBACK_FAILED, which is why the action follows the state and nothing else.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .adopt import existing_named_resources, in_the_way_note
from .aws import Context, ServiceName
from .manifest import Manifest, StackSpec
from .output import Printer
from .shapes import JsonObject, Stack
from .stackops import FailedResource, delete_and_wait, failed_resources
from .stacks import describe_stack, format_event, wait_for_stack


@dataclass(frozen=True)
class Fix:
    """Removing a known cause of a failed deletion: (service, operation, arguments)."""

    what: str
    service: ServiceName
    operation: str
    arguments: JsonObject


def _cluster(resource: FailedResource) -> Fix:
    return Fix(f"turn off deletion protection of Aurora cluster {resource.physical_id}", "rds", "modify_db_cluster",
               {"DBClusterIdentifier": resource.physical_id, "DeletionProtection": False, "ApplyImmediately": True})


def _instance(resource: FailedResource) -> Fix:
    return Fix(f"turn off deletion protection of DB instance {resource.physical_id}", "rds", "modify_db_instance",
               {"DBInstanceIdentifier": resource.physical_id, "DeletionProtection": False, "ApplyImmediately": True})


def _table(resource: FailedResource) -> Fix:
    return Fix(f"turn off deletion protection of table {resource.physical_id}", "dynamodb", "update_table",
               {"TableName": resource.physical_id, "DeletionProtectionEnabled": False})


def _load_balancer(resource: FailedResource) -> Fix:
    return Fix(f"turn off deletion protection of load balancer {resource.physical_id}", "elbv2",
               "modify_load_balancer_attributes",
               {"LoadBalancerArn": resource.physical_id,
                "Attributes": [{"Key": "deletion_protection.enabled", "Value": "false"}]})


PROTECTION_FIXES: dict[str, Callable[[FailedResource], Fix]] = {
    "AWS::RDS::DBCluster": _cluster,
    "AWS::RDS::DBInstance": _instance,
    "AWS::DynamoDB::Table": _table,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": _load_balancer,
}


def known_fix(resource: FailedResource) -> Fix | None:
    protected = "protect" in resource.reason.lower()
    factory = PROTECTION_FIXES.get(resource.resource_type)
    return factory(resource) if protected and factory and resource.physical_id else None


class Recovery:
    def __init__(self, ctx: Context, manifest: Manifest, printer: Printer, confirm: Callable[[str], bool],
                 force_delete: bool = False):
        self.ctx = ctx
        self.manifest = manifest
        self.printer = printer
        self.confirm = confirm
        self.force_delete = force_delete

    def run(self, spec: StackSpec) -> int:
        deployed = describe_stack(self.ctx, spec.region, spec.name)
        if not deployed:
            self.printer.line(f"{spec.name} does not exist: nothing to recover")
            return 0
        status = deployed["StackStatus"]
        action = {
            "ROLLBACK_FAILED": self._rollback_failed,
            "DELETE_FAILED": self._delete_failed,
            "UPDATE_ROLLBACK_FAILED": self._update_rollback_failed,
            "IMPORT_ROLLBACK_FAILED": self._update_rollback_failed,
        }.get(status)
        if action is None:
            self.printer.line(f"{spec.name} is {status}: nothing to recover (only blocked states need it)")
            return 0
        failures = failed_resources(self.ctx, spec, deployed["StackId"])
        self.printer.line(f"{spec.name} is {status}; failed resources:")
        for failure in failures or []:
            self.printer.line(f"  {failure.describe()}")
        return action(spec, deployed, failures)

    def _rollback_failed(self, spec: StackSpec, deployed: Stack, failures: list[FailedResource]) -> int:
        fixes = [fix for fix in map(known_fix, failures) if fix]
        unknown = [f for f in failures if not known_fix(f)]
        steps = [fix.what for fix in fixes] + [f"delete stack {spec.name}"]
        if unknown:
            self.printer.line("causes this command cannot remove (remove them by hand first if DeleteStack fails again):")
            for failure in unknown:
                self.printer.line(f"  {failure.logical_id}: {failure.reason}")
        if not self._confirmed(spec, steps):
            return 2
        for fix in fixes:
            self.printer.stack(spec.name, fix.what)
            self.ctx.client(fix.service, spec.region).call(fix.operation, **fix.arguments)
        return self._finish_delete(spec, deployed, {})

    def _delete_failed(self, spec: StackSpec, deployed: Stack, failures: list[FailedResource]) -> int:
        options: JsonObject
        if self.force_delete:
            options, steps = {"DeletionMode": "FORCE_DELETE_STACK"}, [
                f"delete stack {spec.name} with DeletionMode FORCE_DELETE_STACK (every resource that cannot be "
                "deleted stays in the account, unmanaged)"]
        else:
            kept = [f.logical_id for f in failures if f.status == "DELETE_FAILED"]
            options = {"RetainResources": kept} if kept else {}
            steps = [f"delete stack {spec.name}"] + [f"  keeping {f.describe()}" for f in failures if f.logical_id in kept]
        if not self._confirmed(spec, steps):
            return 2
        return self._finish_delete(spec, deployed, options)

    def _update_rollback_failed(self, spec: StackSpec, deployed: Stack, failures: list[FailedResource]) -> int:
        skip = [f.logical_id for f in failures if f.status.endswith("_FAILED")]
        steps = [f"continue the rollback of {spec.name}" + (f", skipping {', '.join(skip)}" if skip else "")]
        if not self._confirmed(spec, steps):
            return 2
        cfn = self.ctx.cfn(spec.region)
        cfn.call("continue_update_rollback", StackName=deployed["StackId"], **self.manifest.role_arn(spec),
                 **({"ResourcesToSkip": skip} if skip else {}))
        status, _ = wait_for_stack(self.ctx, spec.region, deployed["StackId"], spec.timeout_minutes,
                                   on_event=lambda event: self.printer.stack(spec.name, format_event(event)))
        if status != "UPDATE_ROLLBACK_COMPLETE":
            self.printer.line(f"{spec.name} ended {status}: run recover again, it names what failed")
            return 1
        if skip:
            self.printer.line(f"{', '.join(skip)} kept their current state, which may differ from the template: "
                              f"`make status ENV={self.manifest.environment} DRIFT=1` shows it; the next deploy updates them")
        self.printer.line(f"{spec.name} is UPDATE_ROLLBACK_COMPLETE: deploy can update it again")
        return 0

    def _finish_delete(self, spec: StackSpec, deployed: Stack, options: JsonObject) -> int:
        status, _ = delete_and_wait(self.ctx, self.printer, self.manifest, spec, deployed["StackId"], **options)
        if status == "DELETE_COMPLETE":
            kept = options.get("RetainResources")
            if kept:
                self.printer.line(f"kept in the account, no longer managed: {', '.join(kept)}")
            left = existing_named_resources(self.ctx, spec)
            if left:
                self.printer.line(in_the_way_note(self.manifest, spec, left))
            else:
                self.printer.line(f"{spec.name} deleted: the next deploy creates it again")
            return 0
        self.printer.line(f"{spec.name} ended {status}: run `make recover ENV={self.manifest.environment} "
                          f"STACK={spec.name}` again to delete it keeping what cannot be deleted")
        return 1

    def _confirmed(self, spec: StackSpec, steps: list[str]) -> bool:
        self.printer.line("recover will:")
        for step in steps:
            self.printer.line(f"  {step}")
        return self.confirm(f"Recover {spec.name}?")
