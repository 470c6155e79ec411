"""IAM: roles and managed policies."""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import MotoProvider, Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[request.account_id][request.partition]


def _document(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class RoleProvider(Provider):
    """moto gaps: moto's AWS::IAM::Role ignores ManagedPolicyArns (functions lose their managed
    policies, a missing policy ARN does not fail as in AWS), and its delete leaves nothing
    attachable behind only because it ignores attachments. Here: managed policies attached with
    AttachRolePolicy (an unknown ARN fails: "Policy ... does not exist or is not attachable."),
    inline Policies put, updates applied in place, deletion detaches and deletes like
    CloudFormation. Ref: the role name; GetAtt Arn, RoleId."""

    resource_type = "AWS::IAM::Role"
    support = "created"

    def create(self, request: Request) -> State:
        iam = backend(request)
        p = request.properties
        name = p.get("RoleName") or request.physical_name[:64]
        role = iam.create_role(
            role_name=name, assume_role_policy_document=_document(p["AssumeRolePolicyDocument"]),
            path=p.get("Path", "/"), permissions_boundary=p.get("PermissionsBoundary"),
            description=p.get("Description", ""), tags=p.get("Tags") or [],
            max_session_duration=p.get("MaxSessionDuration", 3600),
        )
        state = State(physical_id=role.name, handle=role, attributes={"Arn": role.arn, "RoleId": role.id})
        try:
            self._policies(request, state, {})
        except Exception:
            self.delete(request, state)
            raise
        return state

    def _policies(self, request: Request, state: State, old: dict) -> None:
        iam = backend(request)
        name = state.physical_id
        p = request.properties
        wanted_inline = {policy["PolicyName"]: policy["PolicyDocument"] for policy in p.get("Policies") or []}
        for policy_name in list(iam.list_role_policies(name)):
            if policy_name not in wanted_inline:
                iam.delete_role_policy(name, policy_name)
        for policy_name, document in wanted_inline.items():
            iam.put_role_policy(name, policy_name, _document(document))
        wanted = list(p.get("ManagedPolicyArns") or [])
        for arn in list(state.handle.managed_policies):
            if arn not in wanted:
                iam.detach_role_policy(arn, name)
        for arn in wanted:
            if arn not in state.handle.managed_policies:
                try:
                    iam.attach_role_policy(arn, name)
                except Exception:
                    raise ResourceFailure(f"Resource handler returned message: \"Policy {arn} does not exist or is "
                                          "not attachable. (Service: Iam, Status Code: 404)\" (Error Code: NoSuchEntity)") from None

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        iam = backend(request)
        p = request.properties
        iam.update_assume_role_policy(state.physical_id, _document(p["AssumeRolePolicyDocument"]))
        state.handle.description = p.get("Description", "")
        state.handle.max_session_duration = p.get("MaxSessionDuration", 3600)
        old_keys = [t["Key"] for t in old_properties.get("Tags") or []]
        if old_keys:
            iam.untag_role(state.physical_id, old_keys)
        if p.get("Tags"):
            iam.tag_role(state.physical_id, p["Tags"])
        self._policies(request, state, old_properties)
        return state

    def delete(self, request: Request, state: State) -> None:
        iam = backend(request)
        name = state.physical_id
        for arn in list(state.handle.managed_policies):
            iam.detach_role_policy(arn, name)
        for policy_name in list(iam.list_role_policies(name)):
            iam.delete_role_policy(name, policy_name)
        iam.delete_role(name)


class ManagedPolicyProvider(MotoProvider):
    """moto gap: no delete for AWS::IAM::ManagedPolicy; DeletePolicy here, after detaching the
    roles, users and groups the resource attached (other attachments make IAM refuse, as in AWS)."""

    def delete(self, request: Request, state: State) -> None:
        iam = backend(request)
        arn = state.physical_id
        p = request.properties
        for role in p.get("Roles") or []:
            iam.detach_role_policy(arn, role)
        for user in p.get("Users") or []:
            iam.detach_user_policy(arn, user)
        for group in p.get("Groups") or []:
            iam.detach_group_policy(arn, group)
        iam.delete_policy(arn)


# AWS's names of service-linked roles whose spelling moto's generic rule gets wrong
# (moto: "AWSServiceRoleFor" + the host's first label as written, e.g. AWSServiceRoleForecs).
SERVICE_LINKED_ROLE_NAMES = {
    "ecs.amazonaws.com": "AWSServiceRoleForECS",
    "elasticloadbalancing.amazonaws.com": "AWSServiceRoleForElasticLoadBalancing",
    "rds.amazonaws.com": "AWSServiceRoleForRDS",
    "ops.apigateway.amazonaws.com": "AWSServiceRoleForAPIGateway",
    "ecs.application-autoscaling.amazonaws.com": "AWSServiceRoleForApplicationAutoScaling_ECSService",
    "dynamodb.application-autoscaling.amazonaws.com": "AWSServiceRoleForApplicationAutoScaling_DynamoDBTable",
    "rds.application-autoscaling.amazonaws.com": "AWSServiceRoleForApplicationAutoScaling_RDSCluster",
    "elasticache.amazonaws.com": "AWSServiceRoleForElastiCache",
    "secretsmanager.amazonaws.com": "AWSServiceRoleForSecretsManager",
}


def _service_linked_role_patch() -> None:
    # moto gap: CreateServiceLinkedRole builds the role name from the service host
    # ("AWSServiceRoleForecs"); AWS's names differ (AWSServiceRoleForECS), so a GetRole of the
    # documented name fails. Known services get AWS's name; a second create fails as in AWS.
    from moto.iam.models import IAMBackend

    original = IAMBackend.create_service_linked_role

    def create_service_linked_role(self, service_name: str, description: str, suffix: str):
        name = SERVICE_LINKED_ROLE_NAMES.get(service_name)
        if name is None:
            return original(self, service_name, description, suffix)
        if suffix:
            name = f"{name}_{suffix}"
        document = {"Version": "2012-10-17", "Statement": [
            {"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": [service_name]}}]}
        return self.create_role(name, json.dumps(document), f"/aws-service-role/{service_name}/",
                                permissions_boundary=None, description=description, tags=[],
                                max_session_duration="3600", linked_service=service_name)

    IAMBackend.create_service_linked_role = create_service_linked_role


def apply() -> None:
    _service_linked_role_patch()
    # moto gap: moto knows AWS's managed policies (arn:aws:iam::aws:policy/...) only when asked
    # to load them (off by default); attaching one then fails with "does not exist or is not
    # attachable". Loaded here, so a role can use them and a misspelt one still fails.
    from moto.core.models import default_user_config

    default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True
    register(RoleProvider())
    register(ManagedPolicyProvider("AWS::IAM::ManagedPolicy"))
