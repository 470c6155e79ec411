"""What an environment needs from its AWS account before anything is created.

The build writes this into the manifest (`preflight`), and `deploy.py preflight` (the first step
of plan, deploy and destroy) checks it against the account, read-only. Everything is derived
from the rendered templates and the config, never listed by hand: a function that gains a
concurrency reservation, or a layer that gains an ECS service, changes what preflight checks.
"""
from __future__ import annotations

import re
from typing import Any

from .artifacts import api_repository_name
from .common import stack_name
from .config import PARAMETERS_DIR, CertificateMode, EnvironmentConfig, display_path

# Resource types that need a service-linked role the account may not have yet:
# type -> (service, role name, required before the first create, who needs it).
SERVICE_LINKED_ROLES = {
    # In a never-used account, creating the first cluster can race the role's creation.
    "AWS::ECS::Service": ("ecs.amazonaws.com", "AWSServiceRoleForECS", True, "ECS cluster and service"),
    # Created on first use when the deploying role may iam:CreateServiceLinkedRole for it.
    "AWS::ApplicationAutoScaling::ScalableTarget": (
        "ecs.application-autoscaling.amazonaws.com",
        "AWSServiceRoleForApplicationAutoScaling_ECSService",
        False,
        "ECS service auto scaling",
    ),
}
# Resource types with a name of their own, by the property carrying it.
NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::RDS::DBCluster": "DBClusterIdentifier",
    "AWS::ECR::Repository": "RepositoryName",
}
PSEUDO = re.compile(r"\$\{(AWS::[A-Za-z]+)\}")


def fixed_name(value: Any, config: EnvironmentConfig) -> str | None:
    """A resource name that is known before deploy (a literal, or a Sub of pseudo parameters
    only), resolved for the environment's account and region; None when it depends on another
    resource (then no earlier deployment can hold it)."""
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str)):
        return None
    pseudo = {"AWS::AccountId": config.account_id, "AWS::Region": config.region,
              "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    text = value["Fn::Sub"]
    if any(name not in pseudo for name in PSEUDO.findall(text)) or "${" in PSEUDO.sub("", text):
        return None
    return PSEUDO.sub(lambda match: pseudo[match[1]], text)


def named_resources(template: dict, config: EnvironmentConfig) -> dict[str, str]:
    """{logical id: physical name} of the template's resources that have a fixed name."""
    found = {}
    for logical_id, resource in template.get("Resources", {}).items():
        prop = NAME_PROPERTIES.get(resource.get("Type"))
        name = fixed_name(resource.get("Properties", {}).get(prop), config) if prop else None
        if name:
            found[logical_id] = name
    return found


def _resources(templates: dict[str, dict]):
    for layer, template in sorted(templates.items()):
        for logical_id, resource in sorted(template.get("Resources", {}).items()):
            yield layer, logical_id, resource


def _reserved_concurrency(templates: dict[str, dict]) -> dict[str, int]:
    return {
        resource["Properties"]["FunctionName"]: resource["Properties"]["ReservedConcurrentExecutions"]
        for _, _, resource in _resources(templates)
        if resource["Type"] == "AWS::Lambda::Function" and "ReservedConcurrentExecutions" in resource["Properties"]
    }


def _service_linked_roles(templates: dict[str, dict]) -> list[dict]:
    needed = {}
    for layer, _, resource in _resources(templates):
        if resource["Type"] in SERVICE_LINKED_ROLES:
            service, role, required, why = SERVICE_LINKED_ROLES[resource["Type"]]
            needed[service] = {"service": service, "role_name": role, "required": required, "needed_by": f"{layer}: {why}"}
    return [needed[service] for service in sorted(needed)]


def _api_gateway_logging_role(templates: dict[str, dict]) -> str | None:
    for layer, _, resource in _resources(templates):
        if resource["Type"] == "AWS::ApiGateway::Account":
            role_id = resource["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
            return templates[layer]["Resources"][role_id]["Properties"]["RoleName"]
    return None


def _count(template: dict, resource_type: str) -> int:
    return sum(1 for resource in template.get("Resources", {}).values() if resource["Type"] == resource_type)


def _certificate(config: EnvironmentConfig) -> dict:
    certificate = config.compute.certificate
    if certificate.mode is CertificateMode.EXISTING:
        return {"mode": "existing", "arn": certificate.arn, "domain_name": certificate.domain_name}
    return {"mode": "create", "domain_name": certificate.domain_name, "hosted_zone_id": certificate.hosted_zone_id}


def _container_image(config: EnvironmentConfig, templates: dict[str, dict]) -> dict:
    settings = config.compute.ecs
    used_by = sorted(stack_name(config, layer) for layer, _, resource in _resources(templates)
                     if resource["Type"] == "AWS::ECS::TaskDefinition")
    image = {"repository": api_repository_name(config), "repository_stack": stack_name(config, "artifacts"),
             "used_by": used_by}
    image["digest" if settings.image_is_digest else "tag"] = settings.image
    return image


def account_requirements(config: EnvironmentConfig, templates: dict[str, dict], stacks: list[dict]) -> dict:
    """The manifest's `preflight` section (format: docs/manifest.md)."""
    network = templates.get("network", {})
    return {
        "environment": config.name,
        "account_id": config.account_id,
        "region": config.region,
        "parameters_file": display_path(PARAMETERS_DIR / f"{config.name}.yaml"),
        "lambda_reserved_concurrency": _reserved_concurrency(templates),
        "certificate": _certificate(config),
        "container_image": _container_image(config, templates),
        "service_linked_roles": _service_linked_roles(templates),
        "api_gateway_logging_role": _api_gateway_logging_role(templates),
        "network": {
            "stack": stack_name(config, "network"),
            "vpcs": _count(network, "AWS::EC2::VPC"),
            "nat_gateways": _count(network, "AWS::EC2::NatGateway"),
            "elastic_ips": _count(network, "AWS::EC2::EIP"),
            "availability_zones": list(config.network.availability_zones),
        },
        "dr_region": config.dr.region if config.dr.enabled else None,
        "stacks": [{"name": stack["name"], "region": stack["region"]} for stack in stacks],
    }
