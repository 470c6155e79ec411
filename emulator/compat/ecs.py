"""ECS: clusters, task definitions, services.

moto gaps covered (moto 5.2.5 ecs/models.py): no deletion for any ECS CloudFormation model
(clusters, services and task definitions stay ACTIVE after the stack is gone); AWS::ECS::Service
ignores LoadBalancers, LaunchType, NetworkConfiguration, DeploymentController,
DeploymentConfiguration, Tags and PropagateTags, and a service whose image cannot be pulled
"deploys"; AWS::ECS::TaskDefinition ignores Cpu, NetworkMode, RequiresCompatibilities, the task
and execution roles, RuntimePlatform and Tags.

Images: a task definition image in this account's ECR (<account>.dkr.ecr.<region>.amazonaws.com/
repo:tag or @digest) must exist in the emulator's ECR when the service starts, otherwise the
service fails as in AWS, where its tasks cannot pull the image and the deployment never
stabilizes (CloudFormation then fails the resource). Images of other registries cannot be
checked and are accepted.
"""
from __future__ import annotations

import re
from typing import Any

from moto.core.utils import pascal_to_camelcase, remap_nested_keys

from .cloudformation.providers import MotoProvider, Provider, Request, State, register
from .errors import ResourceFailure

_ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$")


def backend(request: Request) -> Any:
    from moto.ecs.models import ecs_backends

    return ecs_backends[request.account_id][request.region]


def missing_image(account_id: str, image: str) -> str | None:
    """Why this account's ECR image cannot be pulled, or None (present, or not this account's)."""
    from moto.ecr.models import ecr_backends

    match = _ECR_IMAGE.match(image)
    if not match or match.group(1) != account_id:
        return None
    _, region, repository, tag, digest = match.groups()
    ecr = ecr_backends[account_id][region]
    found = ecr.repositories.get(repository)
    if found is None:
        return f"repository {repository} does not exist in ECR ({account_id}, {region})"
    for item in found.images:
        if digest and item.image_digest == digest:
            return None
        if not digest and (tag or "latest") in (getattr(item, "image_tags", None) or [getattr(item, "image_tag", None)]):
            return None
    return f"{'digest ' + digest if digest else 'tag ' + (tag or 'latest')} not found in repository {repository}"


class ClusterProvider(MotoProvider):
    """Deletion (moto has none) marks the cluster INACTIVE, as DeleteCluster does; a cluster
    with active services cannot be deleted (AWS's ClusterContainsServicesException)."""

    def delete(self, request: Request, state: State) -> None:
        ecs = backend(request)
        active = [s for s in ecs.services.values() if s.cluster_name == state.handle.name and s.status == "ACTIVE"]
        if active:
            raise ResourceFailure("Resource handler returned message: \"The Cluster cannot be deleted while Services are "
                                  "active.\" (Error Code: ClusterContainsServicesException)")
        ecs.delete_cluster(state.handle.name)


class TaskDefinitionProvider(Provider):
    resource_type = "AWS::ECS::TaskDefinition"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        camel = lambda value: remap_nested_keys(value, pascal_to_camelcase)  # noqa: E731
        definition = backend(request).register_task_definition(
            family=p.get("Family") or request.physical_name,
            container_definitions=camel(p.get("ContainerDefinitions", [])), volumes=camel(p.get("Volumes", [])),
            network_mode=p.get("NetworkMode"), tags=[{"key": t["Key"], "value": t["Value"]} for t in p.get("Tags", [])],
            placement_constraints=camel(p.get("PlacementConstraints", [])),
            requires_compatibilities=p.get("RequiresCompatibilities"), cpu=p.get("Cpu"), memory=p.get("Memory"),
            task_role_arn=p.get("TaskRoleArn"), execution_role_arn=p.get("ExecutionRoleArn"),
            runtime_platform=camel(p.get("RuntimePlatform")) if p.get("RuntimePlatform") else None,
            ephemeral_storage=camel(p.get("EphemeralStorage")) if p.get("EphemeralStorage") else None,
            pid_mode=p.get("PidMode"), ipc_mode=p.get("IpcMode"),
        )
        return State(physical_id=definition.arn, handle=definition, attributes={"TaskDefinitionArn": definition.arn})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        # every change of a task definition is a replacement (all its properties are create-only)
        return self.create(request)

    def delete(self, request: Request, state: State) -> None:
        backend(request).deregister_task_definition(state.physical_id)


class ServiceProvider(Provider):
    resource_type = "AWS::ECS::Service"
    support = "created"

    def _check_images(self, request: Request, task_definition_arn: str) -> None:
        definition = backend(request).describe_task_definition(task_definition_arn)
        for container in definition.container_definitions:
            image = container.get("image", "")
            why = missing_image(request.account_id, image)
            if why:
                raise ResourceFailure(
                    f"ECS Deployment Circuit Breaker was triggered: tasks of {container.get('name', 'the service')} failed "
                    f"to start: CannotPullContainerError: pull image manifest has been retried 7 time(s): failed to "
                    f"resolve ref {image}: not found ({why})")

    def create(self, request: Request) -> State:
        ecs = backend(request)
        p = request.properties
        task_definition = p.get("TaskDefinition")
        if task_definition:
            self._check_images(request, task_definition)
        network = p.get("NetworkConfiguration")
        service = ecs.create_service(
            p.get("Cluster", "default"), p.get("ServiceName") or request.physical_name,
            int(p.get("DesiredCount", 1)), task_definition_str=task_definition,
            load_balancers=remap_nested_keys(p.get("LoadBalancers", []), pascal_to_camelcase),
            scheduling_strategy=p.get("SchedulingStrategy"),
            tags=[{"key": t["Key"], "value": t["Value"]} for t in p.get("Tags", [])],
            deployment_controller=remap_nested_keys(p["DeploymentController"], pascal_to_camelcase) if p.get("DeploymentController") else None,
            launch_type=p.get("LaunchType"), service_registries=remap_nested_keys(p.get("ServiceRegistries", []), pascal_to_camelcase),
            platform_version=p.get("PlatformVersion"), propagate_tags=p.get("PropagateTags", "NONE"),
            network_configuration=remap_nested_keys(network, pascal_to_camelcase) if network else None,
            role_arn=p.get("Role"),
        )
        if p.get("DeploymentConfiguration"):
            service.deployment_configuration = remap_nested_keys(p["DeploymentConfiguration"], pascal_to_camelcase)
        return State(physical_id=service.arn, handle=service, attributes={"Name": service.name, "ServiceArn": service.arn},
                     data={"cluster": p.get("Cluster", "default"), "name": service.name})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        ecs = backend(request)
        p = request.properties
        if p.get("TaskDefinition"):
            self._check_images(request, p["TaskDefinition"])
        # without DesiredCount an update keeps the current count (CloudFormation does not reset it)
        ecs.update_service({
            "cluster": state.data["cluster"], "service": state.data["name"], "task_definition": p.get("TaskDefinition"),
            "desired_count": int(p["DesiredCount"]) if "DesiredCount" in p else None,
        })
        if p.get("DeploymentConfiguration"):
            state.handle.deployment_configuration = remap_nested_keys(p["DeploymentConfiguration"], pascal_to_camelcase)
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_service(state.data["cluster"], state.data["name"], force=True)


def apply() -> None:
    register(ClusterProvider("AWS::ECS::Cluster"))
    register(TaskDefinitionProvider())
    register(ServiceProvider())
