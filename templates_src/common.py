"""Naming, tagging, export and policy helpers shared by every layer.

A layer reaches another layer only through the exports it publishes: `export(...)` publishes one
under `payments-<env>-<layer>-<Key>` and `import_value(...)` reads one, so the build can derive
the stack graph from the templates alone.
"""
from __future__ import annotations

from collections.abc import Iterable

from troposphere import AWSObject, Equals, Export, If, ImportValue, Output, Parameter, Ref, Sub, Tag, Tags, Template

from platform_contracts import LIFECYCLE_CREATING, LIFECYCLE_ESTABLISHED, LIFECYCLE_PARAMETER

from .config import EnvironmentConfig

APPLICATION = "payments"
MANAGED_BY = "payments-infra/build.py"
TEMPLATE_FORMAT_VERSION = "2010-09-09"

RETAIN_EXCEPT_ON_CREATE = "RetainExceptOnCreate"
# The platform's own operational metrics (messaging publishes, monitoring alarms on them).
OPERATIONS_NAMESPACE = "Payments/Operations"
CONFIRMED_SUBSCRIPTIONS_METRIC = "ConfirmedAlarmSubscriptions"
# CloudFormation can snapshot only some types; the others are retained instead.
SNAPSHOT_TYPES = frozenset({"AWS::RDS::DBCluster"})
# Aurora instances hold no data of their own (the cluster does), and a retained or snapshotted
# member would block the deletion of its cluster: they are always deleted with it.
CLUSTER_MEMBER_TYPES = frozenset({"AWS::RDS::DBInstance"})


def stack_name(config: EnvironmentConfig, layer: str) -> str:
    return f"{APPLICATION}-{config.name}-{layer}"


def export_name(config: EnvironmentConfig, layer: str, key: str) -> str:
    return f"{stack_name(config, layer)}-{key}"


def resource_name(config: EnvironmentConfig, *parts: str) -> str:
    """`payments-<env>-<parts...>`: every named resource carries the environment."""
    return "-".join((APPLICATION, config.name, *parts))


def global_bucket_name(config: EnvironmentConfig, purpose: str) -> Sub:
    """S3 names are global: account and region make them unique per deployment."""
    return Sub(f"{resource_name(config, purpose)}-${{AWS::AccountId}}-${{AWS::Region}}")


def new_template(config: EnvironmentConfig, layer: str, description: str) -> Template:
    template = Template(Description=f"{APPLICATION} {config.name} {layer}: {description}")
    template.set_version(TEMPLATE_FORMAT_VERSION)
    return template


def standard_tags(config: EnvironmentConfig) -> dict[str, str]:
    return {
        "Application": APPLICATION,
        "CostCenter": config.cost_center,
        "Environment": config.name,
        "ManagedBy": MANAGED_BY,
        "Repository": config.repository,
    }


def tags(config: EnvironmentConfig, name: str | None = None, **extra: str) -> Tags:
    """Tags for a resource: the standard set, its Name, and anything specific."""
    values = dict(standard_tags(config))
    if name:
        values["Name"] = name
    values.update(extra)
    return Tags(**values)


def tag_list(config: EnvironmentConfig, name: str | None = None) -> list[Tag]:
    """The same tags as a plain list, for properties typed as a list of Tag."""
    return tags(config, name).tags


def export(template: Template, config: EnvironmentConfig, layer: str, key: str, value, description: str) -> Output:
    """Publish `value` as output `key` and export `payments-<env>-<layer>-<key>`."""
    return template.add_output(
        Output(key, Description=description, Value=value, Export=Export(export_name(config, layer, key)))
    )


def import_value(config: EnvironmentConfig, layer: str, key: str) -> ImportValue:
    return ImportValue(export_name(config, layer, key))


def output(template: Template, key: str, value, description: str) -> Output:
    """An output for people and deploy.py (not exported: nothing imports it)."""
    return template.add_output(Output(key, Description=description, Value=value))


def keep_data(resource: AWSObject, config: EnvironmentConfig) -> AWSObject:
    """DeletionPolicy and UpdateReplacePolicy from the environment: dev deletes, staging and
    prod snapshot what can be snapshotted and retain the rest.

    Retained resources carry DeletionPolicy RetainExceptOnCreate: stack deletion keeps them, but
    the rollback of their own failed create removes them, so a failed first deploy leaves no
    named bucket, table or queue behind to make the next create fail with "already exists".
    RetainExceptOnCreate exists for DeletionPolicy only (cfn-lint E3036 otherwise): the
    UpdateReplacePolicy stays Retain."""
    policy = config.stateful_deletion_policy
    if resource.resource_type in CLUSTER_MEMBER_TYPES:
        policy = "Delete"
    elif policy == "Snapshot" and resource.resource_type not in SNAPSHOT_TYPES:
        policy = "Retain"
    resource.DeletionPolicy = RETAIN_EXCEPT_ON_CREATE if policy == "Retain" else policy
    resource.UpdateReplacePolicy = policy
    return resource


# --- the deploy-managed lifecycle parameter --------------------------------------------------
# Settings that must be off while a stack is first created and on once it exists: deletion
# protection (on from the first create, it makes the rollback of a failed create fail and strands
# the stack in ROLLBACK_FAILED) and the ECS service's DesiredCount (once Application Auto Scaling
# manages it, setting it on every update would reset a scaled-out service). deploy.py passes
# `creating` on a stack's first create and `established` from then on: right after a first create
# succeeds it runs a parameter-only update to `established` (see docs/deploy.md).
ESTABLISHED_CONDITION = "StackEstablished"


def lifecycle_condition(template: Template) -> str:
    """Adds the lifecycle parameter and its condition once; returns the condition name."""
    if LIFECYCLE_PARAMETER not in template.parameters:
        template.add_parameter(
            Parameter(
                LIFECYCLE_PARAMETER,
                Type="String",
                AllowedValues=[LIFECYCLE_CREATING, LIFECYCLE_ESTABLISHED],
                Default=LIFECYCLE_CREATING,
                Description="Set by deploy.py: creating on the first create, established once it has succeeded",
            )
        )
        template.add_condition(ESTABLISHED_CONDITION, Equals(Ref(LIFECYCLE_PARAMETER), LIFECYCLE_ESTABLISHED))
    return ESTABLISHED_CONDITION


def deletion_protection(template: Template, config: EnvironmentConfig, on="true", off="false"):
    """Deletion protection for an environment that keeps its data, switched on only once the
    stack is established; `on`/`off` are the property's own spelling (True/False or strings)."""
    if not config.retains_data:
        return off
    return If(lifecycle_condition(template), on, off)


def _metadata(resource: AWSObject) -> dict:
    if not hasattr(resource, "Metadata"):
        resource.Metadata = {}
    return resource.Metadata


def skip_checkov(resource: AWSObject, check_id: str, reason: str) -> AWSObject:
    """Skip one checkov check on one resource, with the reason in the template."""
    skips = _metadata(resource).setdefault("checkov", {}).setdefault("skip", [])
    skips.append({"id": check_id, "comment": reason})
    return resource


def ignore_cfn_lint(resource: AWSObject, rule_id: str, reason: str) -> AWSObject:
    """Ignore one cfn-lint rule on one resource; the reason sits beside it in Metadata."""
    metadata = _metadata(resource)
    metadata.setdefault("cfn-lint", {}).setdefault("config", {}).setdefault("ignore_checks", []).append(rule_id)
    metadata.setdefault("LintSuppressionReasons", {})[rule_id] = reason
    return resource


def record_cross_region_reference(template: Template, stack: str, region: str, names: Iterable[str]) -> None:
    """Fn::ImportValue cannot cross regions. A layer that names a resource of a stack in another
    region (prod storage -> DR replica buckets) records it here so the build still derives the
    dependency from the template rather than from a hand-written list."""
    metadata = template.metadata.setdefault("CrossRegionReferences", [])
    metadata.append({"Stack": stack, "Region": region, "Names": sorted(names)})


def arn(service: str, resource: str, region: bool = True, account: bool = True) -> Sub:
    """An ARN in the stack's own partition (never a hard-coded `aws`)."""
    region_part = "${AWS::Region}" if region else ""
    account_part = "${AWS::AccountId}" if account else ""
    return Sub(f"arn:${{AWS::Partition}}:{service}:{region_part}:{account_part}:{resource}")
