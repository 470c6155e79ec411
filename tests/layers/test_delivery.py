"""delivery layer: who may assume each role (sample GitHub OIDC tokens against the trust
policies), what each role may do, and the permissions boundary of every platform role."""
from __future__ import annotations

import pytest

from templates_src.delivery import (
    BOUNDARY_ACTIONS,
    HANDLER_ACTIONS_BEYOND_REGISTRY,
    PLATFORM_RESOURCE_TYPES,
    SERVICE_LINKED_ROLE_SERVICES,
)

from ..policy_eval import ACCOUNT, REGION, Request, allowed
from .helpers import exports_contract, of_type

REPOSITORY = "example-fintech/payments-infra"
ISSUER = "token.actions.githubusercontent.com"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
STACK = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/payments-staging-network/1"
SERVICE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-delivery/payments-staging-cloudformation"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/payments-delivery/payments-staging-boundary"
REFS = {"GitHubOidcProvider": PROVIDER, "PermissionsBoundary": BOUNDARY,
        "payments-staging-artifacts-ArtifactBucketArn": "arn:aws:s3:::payments-staging-artifacts-bucket",
        "payments-staging-artifacts-ArtifactKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/artifacts"}
# Actions of the AWS managed policies platform roles attach (AWS's published documents).
AWS_MANAGED_POLICY_ACTIONS = {
    "AWSLambdaVPCAccessExecutionRole": {
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"},
    "AmazonAPIGatewayPushToCloudWatchLogs": {
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups", "logs:DescribeLogStreams",
        "logs:PutLogEvents", "logs:GetLogEvents", "logs:FilterLogEvents"},
}


def token(sub: str, aud: str = "sts.amazonaws.com") -> dict:
    """The condition keys STS sets from a GitHub Actions OIDC token."""
    return {f"{ISSUER}:sub": sub, f"{ISSUER}:aud": aud}


def assume(template: dict, role: str, claims: dict, provider: str = PROVIDER) -> bool:
    trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]
    return allowed(trust, Request("sts:AssumeRoleWithWebIdentity", {"Federated": provider}, claims), REFS)


@pytest.fixture
def staging(built_environments):
    return built_environments["staging"]["templates"]["delivery"]


# --- who may assume which role -------------------------------------------------------------------

@pytest.mark.parametrize("sub, plan, deploy", [
    (f"repo:{REPOSITORY}:pull_request", True, False),  # a pull request of the repository: plan only
    (f"repo:{REPOSITORY}:environment:staging", False, True),  # a job of the staging environment: deploy
    (f"repo:{REPOSITORY}:environment:prod", False, False),  # another environment's job
    (f"repo:{REPOSITORY}:ref:refs/heads/main", False, False),  # a job without environment, even on main
    (f"repo:{REPOSITORY}:ref:refs/heads/feature", False, False),
    ("repo:someone-else/payments-infra:pull_request", False, False),  # another repository (a fork's own runs)
    (f"repo:{REPOSITORY.upper()}:pull_request", False, False),  # StringEquals is exact
    (f"repo:{REPOSITORY}:pull_request:extra", False, False),
])
def test_github_tokens_against_the_trust_policies(staging, sub, plan, deploy):
    assert assume(staging, "GitHubPlanRole", token(sub)) is plan
    assert assume(staging, "GitHubDeployRole", token(sub)) is deploy


def test_a_token_for_another_audience_or_provider_is_refused(staging):
    sub = f"repo:{REPOSITORY}:environment:staging"
    assert not assume(staging, "GitHubDeployRole", token(sub, aud="https://github.com/example-fintech"))
    other = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.example.com"
    assert not assume(staging, "GitHubDeployRole", token(sub), provider=other)
    assert not assume(staging, "GitHubDeployRole", {})


def test_prod_has_no_plan_role_and_its_deploy_role_trusts_the_prod_environment_only(built_environments):
    prod = built_environments["prod"]["templates"]["delivery"]
    assert "GitHubPlanRole" not in prod["Resources"]
    assert assume(prod, "GitHubDeployRole", token(f"repo:{REPOSITORY}:environment:prod"))
    assert not assume(prod, "GitHubDeployRole", token(f"repo:{REPOSITORY}:environment:staging"))
    assert not assume(prod, "GitHubDeployRole", token(f"repo:{REPOSITORY}:pull_request"))


def test_environments_without_delivery_have_only_the_service_role_and_boundary(built_environments):
    dev = built_environments["dev"]["templates"]["delivery"]
    assert set(of_type(dev, "AWS::IAM::Role")) == {"CloudFormationServiceRole"}
    assert not of_type(dev, "AWS::IAM::OIDCProvider")


def test_an_existing_oidc_provider_is_used_instead_of_created(built_environments):
    from templates_src.config import DeliveryConfig
    from templates_src.delivery import build

    config = built_environments["staging"]["config"]
    existing = f"arn:aws:iam::{config.account_id}:oidc-provider/{ISSUER}"
    changed = config.model_copy(update={"delivery": DeliveryConfig(github_environment="staging",
                                                                    oidc_provider_arn=existing)})
    template = build(changed).to_dict()
    assert not of_type(template, "AWS::IAM::OIDCProvider")
    trust = template["Resources"]["GitHubDeployRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Federated": existing}


def test_the_service_role_is_assumable_by_cloudformation_only(staging):
    trust = staging["Resources"]["CloudFormationServiceRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert allowed(trust, Request("sts:AssumeRole", {"Service": "cloudformation.amazonaws.com"}))
    assert not allowed(trust, Request("sts:AssumeRole", {"Service": "lambda.amazonaws.com"}))
    assert not allowed(trust, Request("sts:AssumeRole", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))


# --- what the GitHub roles may do -----------------------------------------------------------------

def role_policies(template: dict, role: str) -> list[dict]:
    properties = template["Resources"][role]["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    for reference in properties.get("ManagedPolicyArns", []):
        if isinstance(reference, dict) and "Ref" in reference:  # the template's own managed policies
            documents.append(template["Resources"][reference["Ref"]]["Properties"]["PolicyDocument"])
    return documents


def change_set(resource: str = STACK, role: str | None = SERVICE_ROLE, types=("AWS::EC2::VPC",)) -> Request:
    context = {}
    if role is not None:
        context["cloudformation:RoleArn"] = role
    if types is not None:
        context["cloudformation:ResourceTypes"] = list(types)
    return Request("cloudformation:CreateChangeSet", context=context, resource=resource)


@pytest.mark.parametrize("role", ["GitHubPlanRole", "GitHubDeployRole"])
def test_change_sets_only_as_the_service_role_with_the_platforms_types(staging, role):
    policies = role_policies(staging, role)
    assert allowed(policies, change_set(), REFS)
    assert not allowed(policies, change_set(role=None), REFS)  # CloudFormation would act as the caller
    assert not allowed(policies, change_set(role=f"arn:aws:iam::{ACCOUNT}:role/admin"), REFS)
    assert not allowed(policies, change_set(types=None), REFS)  # without ResourceTypes any type goes
    assert not allowed(policies, change_set(types=("AWS::EC2::VPC", "AWS::IAM::User")), REFS)
    other = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/someone-elses/1"
    assert not allowed(policies, change_set(resource=other), REFS)
    for administered in ("artifacts", "delivery"):
        stack = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/payments-staging-{administered}/1"
        assert not allowed(policies, change_set(resource=stack), REFS), administered


def test_only_the_deploy_role_executes_and_neither_touches_iam(staging):
    execute = Request("cloudformation:ExecuteChangeSet", resource=STACK)
    assert allowed(role_policies(staging, "GitHubDeployRole"), execute, REFS)
    assert not allowed(role_policies(staging, "GitHubPlanRole"), execute, REFS)
    delete = Request("cloudformation:DeleteStack", context={"cloudformation:RoleArn": SERVICE_ROLE}, resource=STACK)
    assert allowed(role_policies(staging, "GitHubDeployRole"), delete, REFS)
    assert not allowed(role_policies(staging, "GitHubDeployRole"), Request("cloudformation:DeleteStack", resource=STACK), REFS)
    assert not allowed(role_policies(staging, "GitHubPlanRole"), delete, REFS)
    for role in ("GitHubPlanRole", "GitHubDeployRole"):
        policies = role_policies(staging, role)
        for action in ("iam:CreateUser", "iam:CreateAccessKey", "iam:CreateRole", "iam:PutRolePolicy"):
            assert not allowed(policies, Request(action, resource=f"arn:aws:iam::{ACCOUNT}:user/x"), REFS), action
        pass_role = Request("iam:PassRole", context={"iam:PassedToService": "cloudformation.amazonaws.com"},
                            resource=SERVICE_ROLE)
        assert allowed(policies, pass_role, REFS)
        assert not allowed(policies, Request("iam:PassRole", context={"iam:PassedToService": "lambda.amazonaws.com"},
                                             resource=SERVICE_ROLE), REFS)


# --- what the service role may do -----------------------------------------------------------------

def test_the_service_role_creates_roles_only_with_the_boundary_and_never_users(staging):
    policies = role_policies(staging, "CloudFormationServiceRole")
    platform_role = f"arn:aws:iam::{ACCOUNT}:role/payments-staging-payment-api"
    bounded = {"iam:PermissionsBoundary": BOUNDARY}
    assert allowed(policies, Request("iam:CreateRole", context=bounded, resource=platform_role), REFS)
    assert not allowed(policies, Request("iam:CreateRole", resource=platform_role), REFS)
    admin = {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}
    assert not allowed(policies, Request("iam:CreateRole", context=admin, resource=platform_role), REFS)
    assert not allowed(policies, Request("iam:CreateRole", context=bounded, resource=f"arn:aws:iam::{ACCOUNT}:role/admin"), REFS)
    delivery_role = f"arn:aws:iam::{ACCOUNT}:role/payments-delivery/payments-staging-github-deploy"
    for action in ("iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy"):
        assert not allowed(policies, Request(action, context=bounded, resource=delivery_role), REFS), action
    assert not allowed(policies, Request("iam:CreatePolicyVersion", resource=BOUNDARY), REFS)
    assert not allowed(policies, Request("iam:DeleteRolePermissionsBoundary", resource=platform_role), REFS)
    for action in ("iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile"):
        assert not allowed(policies, Request(action, resource=f"arn:aws:iam::{ACCOUNT}:user/payments-staging-x"), REFS)


def test_service_linked_roles_only_for_the_platforms_services(staging):
    policies = role_policies(staging, "CloudFormationServiceRole")
    resource = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    for service in SERVICE_LINKED_ROLE_SERVICES:
        assert allowed(policies, Request("iam:CreateServiceLinkedRole", context={"iam:AWSServiceName": service},
                                         resource=resource), REFS)
    assert not allowed(policies, Request("iam:CreateServiceLinkedRole",
                                         context={"iam:AWSServiceName": "sagemaker.amazonaws.com"}, resource=resource), REFS)


def test_the_service_role_may_manage_this_accounts_resources_only(staging):
    policies = role_policies(staging, "CloudFormationServiceRole")
    assert allowed(policies, Request("ec2:CreateVpc", resource=f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/*"), REFS)
    assert not allowed(policies, Request("ec2:CreateVpc", resource=f"arn:aws:ec2:{REGION}:999999999999:vpc/*"), REFS)
    assert allowed(policies, Request("s3:CreateBucket", resource="arn:aws:s3:::payments-staging-audit-1-eu-west-1"), REFS)
    assert not allowed(policies, Request("s3:CreateBucket", resource="arn:aws:s3:::someone-elses-bucket"), REFS)
    assert not allowed(policies, Request("ec2:RunInstances", resource=f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"), REFS)


def test_the_service_role_can_create_a_cluster_whose_master_secret_rds_manages(staging):
    """ManageMasterUserPassword: RDS creates, tags and rotates the secret, and Secrets Manager
    encrypts it with the secrets key, all with the service role's permission (kms:ViaService
    secretsmanager); the registry lists only part of it (HANDLER_ACTIONS_BEYOND_REGISTRY)."""
    policies = role_policies(staging, "CloudFormationServiceRole")
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-0a1b2c3d-AbCdEf"
    for action in ("secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:RotateSecret"):
        assert allowed(policies, Request(action, resource=secret), REFS), action
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-secrets"
    via = {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"):
        assert allowed(policies, Request(action, context=via, resource=key), REFS), action
    assert not allowed(policies, Request("kms:GenerateDataKey", context=via,
                                         resource="arn:aws:kms:eu-west-1:999999999999:key/x"), REFS)
    assert set(HANDLER_ACTIONS_BEYOND_REGISTRY) <= PLATFORM_RESOURCE_TYPES


def test_hosted_rotation_types_are_not_platform_types():
    """RDS rotates the master secret itself: nothing deploys a rotation schedule or attachment."""
    assert not PLATFORM_RESOURCE_TYPES & {"AWS::SecretsManager::RotationSchedule",
                                          "AWS::SecretsManager::SecretTargetAttachment"}


# --- the boundary --------------------------------------------------------------------------------

def test_every_platform_role_carries_the_boundary_and_stays_inside_it(built_environments):
    for env, data in built_environments.items():
        for layer, template in data["templates"].items():
            if layer in ("artifacts", "delivery"):
                continue
            for logical_id, role in of_type(template, "AWS::IAM::Role").items():
                properties = role["Properties"]
                assert properties["PermissionsBoundary"] == {"Fn::Sub": (
                    "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/payments-delivery/"
                    f"payments-{env}-boundary")}, f"{env}/{layer}/{logical_id}"
                actions = {action for document in role_policies(template, logical_id)
                           if "Statement" in document
                           for statement in document["Statement"] if statement["Effect"] == "Allow"
                           for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
                for arn in properties.get("ManagedPolicyArns", []):
                    name = str(arn).rsplit("/", 1)[-1].rstrip("'}\"")
                    actions |= AWS_MANAGED_POLICY_ACTIONS.get(name, set())
                outside = actions - set(BOUNDARY_ACTIONS)
                assert not outside, f"{env}/{layer}/{logical_id}: {sorted(outside)} not in delivery.BOUNDARY_ACTIONS"


def test_every_resource_type_deployed_by_the_service_role_is_a_platform_type(built_environments):
    for data in built_environments.values():
        for stack in data["manifest"]["stacks"]:
            if not stack["administered"]:
                assert set(stack["resource_types"]) <= PLATFORM_RESOURCE_TYPES, stack["name"]


def test_the_build_refuses_a_resource_type_the_service_role_does_not_cover():
    from templates_src.delivery import unknown_resource_types

    template = {"Resources": {"Bad": {"Type": "AWS::IAM::User"}, "Vpc": {"Type": "AWS::EC2::VPC"}}}
    [problem] = unknown_resource_types("payments-dev-network", template)
    assert problem.startswith("payments-dev-network: resource type AWS::IAM::User is not in templates_src/delivery.py")
    assert "make bootstrap" in problem


def test_outputs_are_the_roles_and_nothing_is_exported(staging):
    assert exports_contract("delivery") == set()
    assert set(staging["Outputs"]) == {"CloudFormationServiceRoleArn", "GitHubDeployRoleArn", "GitHubPlanRoleArn"}
    assert not any("Export" in output for output in staging["Outputs"].values())


def test_registry_permissions_file_is_current():
    from templates_src.delivery import PLATFORM_SERVICES
    from templates_src.registry_permissions import DATA_FILE, render

    assert DATA_FILE.read_text() == render(PLATFORM_RESOURCE_TYPES, PLATFORM_SERVICES, HANDLER_ACTIONS_BEYOND_REGISTRY), (
        "templates_src/registry_permissions.json is stale: python -m templates_src.registry_permissions")
