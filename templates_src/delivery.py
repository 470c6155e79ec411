"""delivery layer: the roles GitHub Actions and CloudFormation act with.

Four principals, each able to do one thing (README: Continuous delivery):
- the CloudFormation service role: every stack but the administered ones (artifacts, delivery) is
  created, updated and deleted by CloudFormation acting as this role (deploy.py passes RoleARN). It may call exactly
  the actions AWS's resource registry lists for the handlers of the platform's resource types
  (registry_permissions.json), may create and change only roles named `payments-<env>-*` and
  only with the permissions boundary below, and never IAM users, groups or access keys;
- the deploy role (GitHub jobs of the environment's GitHub environment): plans and executes
  change sets of `payments-<env>-*` stacks, always with the service role and with ResourceTypes
  the platform's types; it changes nothing itself but the artifact bucket's objects;
- the plan role (pull requests of the repository, where the config allows): the same reads and
  change sets, but never executes one and never deletes a stack;
- the permissions boundary every role the service role creates must carry: the ceiling of what a
  platform role can ever be granted (the services the functions and tasks use), so a template
  change cannot mint a role more powerful than the platform itself.
The roles, the boundary and the service role's own policies live under the IAM path
DELIVERY_PATH: outside `role/payments-<env>-*`, so the service role cannot touch them. This stack
is `administered` (layers.py): only an administrator deploys it, with their own credentials, and
the GitHub roles are denied change sets on it. It is a stack of its own, not part of the bootstrap
stack, because the service role's policies alone are larger than the 51,200 bytes the bootstrap
stack may have (it goes by TemplateBody); this one goes by TemplateURL.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from awacs.aws import Action as IamAction
from awacs.aws import Allow, Condition, Deny, ForAllValuesStringEquals, Null, Policy, Principal, Statement, StringEquals
from troposphere import GetAtt, Output, Ref, Sub, Template, encode_to_dict, iam

from .blocks import service_trust
from .common import APPLICATION, arn, import_value, new_template, resource_name, skip_checkov, stack_name, tags
from .config import GITHUB_OIDC_HOST, EnvironmentConfig
from .registry_permissions import action_resources, handler_permissions

LAYER = "delivery"
DELIVERY_PATH = "/payments-delivery/"
OIDC_AUDIENCE = "sts.amazonaws.com"
# Every resource type a non-bootstrap template may hold. The build refuses a template with any
# other type: the service role would be denied it at deploy time. Adding one is an administrator's
# change: extend this, `python -m templates_src.registry_permissions`, `make bootstrap` first.
PLATFORM_RESOURCE_TYPES: frozenset[str] = frozenset({
    "AWS::ApiGateway::Account", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::UsagePlan", "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy", "AWS::CertificateManager::Certificate", "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::CompositeAlarm", "AWS::CloudWatch::Dashboard", "AWS::DynamoDB::Table", "AWS::EC2::EIP",
    "AWS::EC2::FlowLog", "AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::Route",
    "AWS::EC2::RouteTable", "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::SecurityGroupIngress", "AWS::EC2::Subnet", "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::VPC",
    "AWS::EC2::VPCEndpoint", "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::VPCPeeringConnection",
    "AWS::ECR::Repository", "AWS::ECS::Cluster", "AWS::ECS::Service", "AWS::ECS::TaskDefinition",
    "AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup", "AWS::Events::Rule", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy",
    "AWS::IAM::Role", "AWS::KMS::Alias", "AWS::KMS::Key", "AWS::Lambda::Alias", "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Function", "AWS::Lambda::Permission", "AWS::Lambda::Version", "AWS::Logs::LogGroup",
    "AWS::RDS::DBCluster", "AWS::RDS::DBClusterParameterGroup", "AWS::RDS::DBInstance", "AWS::RDS::DBSubnetGroup",
    "AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::SNS::Subscription", "AWS::SNS::Topic", "AWS::SNS::TopicPolicy",
    "AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "AWS::SSM::Parameter",
    "AWS::SecretsManager::Secret", "AWS::StepFunctions::StateMachine",
    "AWS::WAFv2::LoggingConfiguration", "AWS::WAFv2::WebACL", "AWS::WAFv2::WebACLAssociation",
    "Custom::RestrictDefaultSecurityGroup",
})
# What a type's handler has AWS do with the service role's permission (forward access) that its
# registry schema does not list. AWS::RDS::DBCluster: the cluster's storage key (a grant RDS creates)
# and the RDS-managed master secret (ManageMasterUserPassword): RDS creates the secret, turns on
# its rotation, and Secrets Manager encrypts it with the secrets key, all as the caller.
HANDLER_ACTIONS_BEYOND_REGISTRY: dict[str, tuple[str, ...]] = {
    "AWS::RDS::DBCluster": ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey",
                            "secretsmanager:CreateSecret", "secretsmanager:RotateSecret", "secretsmanager:TagResource"),
}
# The services those types belong to (and the ones their handlers call on the way: Route 53 for
# certificate validation). A registry handler action of any other service is for an optional
# feature the platform does not use (S3 Tables, Amplify, Cognito...) and is not granted.
PLATFORM_SERVICES: tuple[str, ...] = (
    "acm", "apigateway", "application-autoscaling", "cloudwatch", "dynamodb", "ec2", "ecr", "ecs",
    "elasticloadbalancing", "events", "kms", "lambda", "logs", "rds", "route53", "s3", "secretsmanager", "sns", "sqs",
    "ssm", "states", "wafv2",
)
# Service-linked roles the handlers of the platform's types may create (iam:AWSServiceName).
SERVICE_LINKED_ROLE_SERVICES = (
    "dynamodb.application-autoscaling.amazonaws.com", "ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com",
    "elasticloadbalancing.amazonaws.com", "rds.amazonaws.com", "wafv2.amazonaws.com",
)
# What roles the service role creates may do to roles: with the boundary only (iam:PermissionsBoundary
# applies to exactly these actions).
BOUNDED_ROLE_ACTIONS = ("iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
                        "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy")
PLATFORM_ROLE_ACTIONS = ("iam:DeleteRole", "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
                         "iam:ListRolePolicies", "iam:PassRole", "iam:TagRole", "iam:UntagRole",
                         "iam:UpdateAssumeRolePolicy", "iam:UpdateRole", "iam:UpdateRoleDescription")
PLATFORM_POLICY_ACTIONS = ("iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion",
                           "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListEntitiesForPolicy", "iam:ListPolicyVersions",
                           "iam:TagPolicy", "iam:UntagPolicy")
# Never, for anyone this stack creates: long-lived credentials and escaping the boundary.
DENIED_IAM_ACTIONS = ("iam:AddUserToGroup", "iam:AttachUserPolicy", "iam:CreateAccessKey", "iam:CreateGroup",
                      "iam:CreateLoginProfile", "iam:CreateUser", "iam:DeleteRolePermissionsBoundary",
                      "iam:PutUserPolicy", "iam:UpdateAccessKey", "iam:UpdateLoginProfile")
# The boundary: every action a platform role may ever hold (a test checks each role's policies
# and the AWS managed policies they attach stay inside it). Grants nothing by itself.
BOUNDARY_ACTIONS = (
    "cloudwatch:PutMetricData", "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
    "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem",
    "ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
    "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress", "ec2:UnassignPrivateIpAddresses",
    "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "lambda:InvokeFunction",
    "logs:CreateLogDelivery", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups", "logs:DescribeLogStreams", "logs:DescribeResourcePolicies", "logs:FilterLogEvents",
    "logs:GetLogDelivery", "logs:GetLogEvents", "logs:ListLogDeliveries", "logs:PutLogEvents",
    "logs:PutResourcePolicy", "logs:PutRetentionPolicy", "logs:UpdateLogDelivery", "rds-db:connect",
    "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectLegalHold",
    "s3:GetObjectRetention", "s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionForReplication",
    "s3:GetObjectVersionTagging", "s3:GetReplicationConfiguration", "s3:ListBucket", "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts", "s3:PutObject", "s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags",
    "secretsmanager:DescribeSecret", "secretsmanager:GetRandomPassword", "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage", "sns:GetTopicAttributes",
    "sns:Publish", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage", "sqs:SendMessage", "states:DescribeExecution", "states:StartExecution",
    "states:StopExecution", "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
)
# IAM's managed-policy size limit is 6,144 characters (whitespace not counted): the service role's
# statements are spread over policies of at most this many (room for the policy's own envelope).
POLICY_CHARACTERS = 5800


# checkov judges a policy by its actions alone; these two are what they are on purpose.
BOUNDARY_SKIPS = {
    check: "a permissions boundary grants nothing: it is the ceiling of the platform's roles, whose own "
           "policies name the resources" for check in ("CKV_AWS_107", "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_111")
}
SERVICE_POLICY_SKIPS = {
    check: "the CloudFormation service role: exactly the registry handler actions of the platform's resource "
           "types (it writes key, bucket and queue policies because the templates hold them), on this account's "
           "resources; \"*\" only for actions that authorize on nothing narrower"
    for check in ("CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_111")
}


def _skip_checks(skips: dict[str, str], resource: iam.ManagedPolicy) -> iam.ManagedPolicy:
    for check, reason in skips.items():
        skip_checkov(resource, check, reason)
    return resource


def _platform(config: EnvironmentConfig) -> str:
    """`payments-<env>-*`: the names of everything the platform's stacks create."""
    return f"{resource_name(config)}-*"


def role_arn(config: EnvironmentConfig, purpose: str) -> Sub:
    return arn("iam", f"role{DELIVERY_PATH}{resource_name(config, purpose)}", region=False)


def boundary_arn(config: EnvironmentConfig) -> Sub:
    return arn("iam", f"policy{DELIVERY_PATH}{resource_name(config, 'boundary')}", region=False)


def service_role_arn_literal(config: EnvironmentConfig) -> str:
    """The service role's ARN spelled out for deploy.py (the manifest): the partition from the region."""
    partition = "aws-cn" if config.region.startswith("cn-") else "aws-us-gov" if "-gov-" in config.region else "aws"
    return f"arn:{partition}:iam::{config.account_id}:role{DELIVERY_PATH}{resource_name(config, 'cloudformation')}"


def _actions(names: Iterable[str]) -> list[IamAction]:
    return [IamAction(*name.split(":", 1)) for name in sorted(set(names))]


def _statement(sid: str, actions: Iterable[str], resources: list, condition: Condition | None = None,
               effect=Allow) -> Statement:
    fields = dict(Sid=sid, Effect=effect, Action=_actions(actions), Resource=resources)
    if condition is not None:
        fields["Condition"] = condition
    return Statement(**fields)


def _stacks(config: EnvironmentConfig) -> Sub:
    return arn("cloudformation", f"stack/{_platform(config)}/*")


def build(config: EnvironmentConfig) -> Template:
    """The boundary, the service role and, where the environment is delivered from GitHub, the
    OIDC provider, the plan role and the deploy role."""
    template = new_template(config, LAYER, "delivery roles: CloudFormation service role, boundary, GitHub OIDC roles")
    boundary = template.add_resource(_skip_checks(BOUNDARY_SKIPS, iam.ManagedPolicy(
        "PermissionsBoundary", ManagedPolicyName=resource_name(config, "boundary"), Path=DELIVERY_PATH,
        Description="Ceiling of every role the CloudFormation service role creates",
        PolicyDocument=Policy(Version="2012-10-17", Statement=[
            # A boundary grants nothing: it caps what the role's own policies can allow, whatever
            # resource they name, so "*" here is the cap on resources, not a grant.
            _statement("PlatformRolesAtMost", BOUNDARY_ACTIONS, ["*"]),
        ]),
    )))
    _service_role(template, config, boundary)
    if config.delivery is not None:
        provider = _oidc_provider(template, config)
        shared = [
            template.add_resource(iam.ManagedPolicy(
                logical_id, ManagedPolicyName=resource_name(config, name), Path=DELIVERY_PATH, Description=description,
                PolicyDocument=Policy(Version="2012-10-17", Statement=statements),
            ))
            for logical_id, name, description, statements in (
                ("GitHubReadPolicy", "github-read", "What every GitHub role may read", read_statements(config)),
                ("GitHubPlanPolicy", "github-plan", "What every GitHub role may change: artifacts, and change sets "
                                                    "with the service role", plan_statements(config)),
            )
        ]
        for purpose, subject, may_execute in _github_roles(config):
            _github_role(template, config, purpose, provider, subject, may_execute, shared)
    return template


def _github_roles(config: EnvironmentConfig) -> list[tuple[str, str, bool]]:
    """(purpose, the token `sub` it trusts, may execute change sets) for each GitHub role."""
    assert config.delivery is not None
    repository = f"repo:{config.github_repository}"
    roles = [("github-deploy", f"{repository}:environment:{config.delivery.github_environment}", True)]
    if config.delivery.pull_request_plans:
        roles.append(("github-plan", f"{repository}:pull_request", False))
    return roles


def _oidc_provider(template: Template, config: EnvironmentConfig):
    """The account's GitHub OIDC provider: the one the config names, else created here. No
    thumbprint: IAM verifies GitHub's certificate through its own trusted CAs."""
    assert config.delivery is not None
    if config.delivery.oidc_provider_arn:
        return config.delivery.oidc_provider_arn
    provider = template.add_resource(iam.OIDCProvider(
        "GitHubOidcProvider", Url=f"https://{GITHUB_OIDC_HOST}", ClientIdList=[OIDC_AUDIENCE],
        Tags=tags(config, f"{APPLICATION}-github-oidc"),
    ))
    return Ref(provider)


def github_trust(provider, subject: str) -> Policy:
    """Tokens of GitHub's issuer, for AWS (aud), whose subject is exactly `subject`."""
    return Policy(Version="2012-10-17", Statement=[Statement(
        Effect=Allow, Principal=Principal("Federated", provider),
        Action=[IamAction("sts", "AssumeRoleWithWebIdentity")],
        Condition=Condition(StringEquals({f"{GITHUB_OIDC_HOST}:aud": OIDC_AUDIENCE,
                                          f"{GITHUB_OIDC_HOST}:sub": subject})),
    )])


def _github_role(template: Template, config: EnvironmentConfig, purpose: str, provider, subject: str,
                 may_execute: bool, shared: list[iam.ManagedPolicy]) -> None:
    logical_id = "GitHubDeployRole" if may_execute else "GitHubPlanRole"
    extra = {"Policies": [iam.Policy(PolicyName="execute", PolicyDocument=Policy(
        Version="2012-10-17", Statement=execute_statements(config)))]} if may_execute else {}
    role = template.add_resource(iam.Role(
        logical_id, RoleName=resource_name(config, purpose), Path=DELIVERY_PATH,
        Description=f"GitHub Actions ({subject}): {'plans and executes' if may_execute else 'plans (never executes)'} "
                    f"change sets of {_platform(config)} stacks",
        MaxSessionDuration=3600,
        AssumeRolePolicyDocument=github_trust(provider, subject),
        ManagedPolicyArns=[Ref(policy) for policy in shared],
        Tags=tags(config, resource_name(config, purpose)),
        **extra,
    ))
    template.add_output(_role_output(logical_id, role, f"role the GitHub workflow assumes ({subject})"))


def _role_output(logical_id: str, role, description: str) -> Output:
    return Output(f"{logical_id}Arn", Description=description, Value=GetAtt(role, "Arn"))


def _change_set_condition(config: EnvironmentConfig) -> Condition:
    """A change set only with the service role and only for the platform's resource types (an
    absent ResourceTypes would allow every type: Null false requires it)."""
    return Condition([
        StringEquals("cloudformation:RoleArn", role_arn(config, "cloudformation")),
        ForAllValuesStringEquals("cloudformation:ResourceTypes", sorted(PLATFORM_RESOURCE_TYPES)),
        Null("cloudformation:ResourceTypes", "false"),
    ])


# What plan and deploy read, by the resources AWS lets a policy name (preflight's checks, the
# stateful guard, skip detection and the review).
STACK_READ_ACTIONS = ("cloudformation:DescribeChangeSet", "cloudformation:DescribeStackEvents",
                      "cloudformation:DescribeStackResources", "cloudformation:DescribeStacks",
                      "cloudformation:GetStackPolicy", "cloudformation:GetTemplate", "cloudformation:ListChangeSets",
                      "cloudformation:ListStackResources")
# These APIs authorize on no resource narrower than "*" (account-wide reads).
ACCOUNT_READ_ACTIONS = ("cloudformation:ListImports", "ec2:DescribeAddresses", "ec2:DescribeRegions",
                        "lambda:GetAccountSettings", "logs:DescribeLogGroups")
EXECUTE_ACTIONS = ("cloudformation:ExecuteChangeSet", "cloudformation:SetStackPolicy",
                   "cloudformation:UpdateTerminationProtection")
# Deleting a stack (a failed first create is deleted and created again) or continuing a rollback
# makes CloudFormation act: only as the service role.
ACT_AS_SERVICE_ROLE_ACTIONS = ("cloudformation:ContinueUpdateRollback", "cloudformation:DeleteStack")


def _platform_reads(config: EnvironmentConfig) -> list[Statement]:
    """Preflight's reads of the platform's own resources (kept resources, concurrency, image)."""
    platform = _platform(config)
    return [
        _statement("ReadPlatformResources", (
            "dynamodb:DescribeTable", "ecr:DescribeImages", "ecr:DescribeRepositories", "lambda:GetFunctionConcurrency",
            "rds:DescribeDBClusters", "secretsmanager:DescribeSecret", "sqs:GetQueueUrl"), [
            arn("dynamodb", f"table/{platform}"), arn("ecr", f"repository/{platform}"),
            arn("lambda", f"function:{platform}"), arn("rds", f"cluster:{platform}"),
            arn("secretsmanager", f"secret:{platform}"), arn("sqs", platform)]),
        _statement("ReadPlatformBuckets", ("s3:ListBucket",), [arn("s3", platform, region=False, account=False)]),
        _statement("ReadRoles", ("iam:GetRole",), [arn("iam", f"role/{platform}", region=False),
                                                  arn("iam", "role/aws-service-role/*", region=False)]),
        _statement("ReadCertificateAndZone", ("acm:DescribeCertificate", "route53:GetHostedZone"), [
            arn("acm", "certificate/*"), arn("route53", "hostedzone/*", region=False, account=False)]),
        _statement("ReadApiGatewayAccountSetting", ("apigateway:GET",),
                   [Sub("arn:${AWS::Partition}:apigateway:${AWS::Region}::/account")]),
        _statement("ReadQuotas", ("servicequotas:GetServiceQuota",), [arn("servicequotas", "*")]),
    ]


def _administered_stacks(config: EnvironmentConfig) -> list[Sub]:
    from .layers import LAYERS  # the layer table imports this module

    return [arn("cloudformation", f"stack/{stack_name(config, layer.name)}/*") for layer in LAYERS if layer.administered]


def _never_administered_stacks(config: EnvironmentConfig) -> list[Statement]:
    return [
        # The bootstrap and delivery stacks hold these roles: only an administrator changes them.
        _statement("NeverTheAdministeredStacks", (
            "cloudformation:CreateChangeSet", *EXECUTE_ACTIONS, *ACT_AS_SERVICE_ROLE_ACTIONS),
            _administered_stacks(config), effect=Deny),
        _statement("NoLongLivedCredentials", DENIED_IAM_ACTIONS, ["*"], effect=Deny),
    ]


def read_statements(config: EnvironmentConfig) -> list[Statement]:
    """What the plan role may read, and the deploy role too."""
    return [
        _statement("ReadStacks", STACK_READ_ACTIONS, [_stacks(config)]),
        # List/Describe APIs without resource-level permissions: AWS accepts only "*" for them.
        _statement("ReadAccountWide", ACCOUNT_READ_ACTIONS, ["*"]),
        *_platform_reads(config),
    ]


def plan_statements(config: EnvironmentConfig) -> list[Statement]:
    """What the plan role may change, and the deploy role too: upload, create change sets."""
    stacks = _stacks(config)
    bucket_arn = import_value(config, "artifacts", "ArtifactBucketArn")
    return [
        _statement("CreateChangeSetsAsTheServiceRole", ("cloudformation:CreateChangeSet",), [stacks],
                   _change_set_condition(config)),
        _statement("DeleteChangeSets", ("cloudformation:DeleteChangeSet",), [stacks]),
        _statement("PassTheServiceRoleToCloudFormation", ("iam:PassRole",), [role_arn(config, "cloudformation")],
                   Condition(StringEquals("iam:PassedToService", "cloudformation.amazonaws.com"))),
        # Templates over 51,200 bytes go by TemplateURL, which CloudFormation reads with the caller's
        # credentials; function zips are uploaded under content-hash keys.
        _statement("ArtifactBucketObjects", ("s3:GetObject", "s3:PutObject"), [Sub("${Arn}/*", Arn=bucket_arn)]),
        _statement("ArtifactBucketListing", ("s3:ListBucket",), [bucket_arn]),
        _statement("ArtifactKey", ("kms:Decrypt", "kms:GenerateDataKey"),
                   [import_value(config, "artifacts", "ArtifactKeyArn")]),
        *_never_administered_stacks(config),
    ]


def execute_statements(config: EnvironmentConfig) -> list[Statement]:
    """What only the deploy role may do on top: execute the change sets it reviewed, delete a
    stack or continue its rollback as the service role."""
    stacks = _stacks(config)
    return [
        _statement("ExecuteReviewedChangeSets", EXECUTE_ACTIONS, [stacks]),
        _statement("DeleteOrRecoverAsTheServiceRole", ACT_AS_SERVICE_ROLE_ACTIONS, [stacks],
                   Condition(StringEquals("cloudformation:RoleArn", role_arn(config, "cloudformation")))),
        *_never_administered_stacks(config),
    ]


def _service_role(template: Template, config: EnvironmentConfig, boundary) -> None:
    policies = [
        template.add_resource(_skip_checks(SERVICE_POLICY_SKIPS, iam.ManagedPolicy(
            f"CloudFormationServicePolicy{index}", ManagedPolicyName=resource_name(config, f"cloudformation-{index}"),
            Path=DELIVERY_PATH, Description=f"What CloudFormation's handlers call for the platform's types ({index})",
            PolicyDocument=Policy(Version="2012-10-17", Statement=statements),
        )))
        for index, statements in enumerate(_chunks(handler_statements(config)), start=1)
    ]
    role = template.add_resource(iam.Role(
        "CloudFormationServiceRole", RoleName=resource_name(config, "cloudformation"), Path=DELIVERY_PATH,
        Description=f"CloudFormation acts as this role for the {_platform(config)} stacks (never the administered ones)",
        # Only CloudFormation, and only when someone of this account passes the role (iam:PassRole
        # never crosses accounts); CloudFormation sends no source context to condition on.
        AssumeRolePolicyDocument=service_trust("cloudformation.amazonaws.com", on_behalf_of_this_account=False),
        ManagedPolicyArns=[Ref(policy) for policy in policies],
        Policies=[iam.Policy(PolicyName="iam", PolicyDocument=Policy(
            Version="2012-10-17", Statement=_service_role_iam_statements(config, boundary)))],
        Tags=tags(config, resource_name(config, "cloudformation")),
    ))
    template.add_output(_role_output("CloudFormationServiceRole", role, "role deploy.py passes as RoleARN"))


def _service_role_iam_statements(config: EnvironmentConfig, boundary) -> list[Statement]:
    platform_roles = arn("iam", f"role/{_platform(config)}", region=False)
    delivery = [arn("iam", f"role{DELIVERY_PATH}*", region=False), arn("iam", f"policy{DELIVERY_PATH}*", region=False)]
    return [
        _statement("RolesOnlyWithTheBoundary", BOUNDED_ROLE_ACTIONS, [platform_roles],
                   Condition(StringEquals("iam:PermissionsBoundary", Ref(boundary)))),
        _statement("PlatformRoles", PLATFORM_ROLE_ACTIONS, [platform_roles]),
        _statement("PlatformManagedPolicies", PLATFORM_POLICY_ACTIONS,
                   [arn("iam", f"policy/{_platform(config)}", region=False)]),
        _statement("ServiceLinkedRolesOfThePlatformsServices", ("iam:CreateServiceLinkedRole",),
                   [arn("iam", "role/aws-service-role/*", region=False)],
                   Condition(StringEquals("iam:AWSServiceName", list(SERVICE_LINKED_ROLE_SERVICES)))),
        _statement("NeverTheDeliveryRoles", (*BOUNDED_ROLE_ACTIONS, *PLATFORM_ROLE_ACTIONS, *PLATFORM_POLICY_ACTIONS),
                   delivery, effect=Deny),
        _statement("NoLongLivedCredentials", DENIED_IAM_ACTIONS, ["*"], effect=Deny),
    ]


def service_role_actions() -> list[str]:
    """The registry handlers' actions for the platform's types, in the platform's services (IAM's
    own are granted by hand above, scoped to the platform's roles)."""
    handlers = handler_permissions()
    return sorted({action for resource_type in PLATFORM_RESOURCE_TYPES
                   for action in (*handlers.get(resource_type, ()), *HANDLER_ACTIONS_BEYOND_REGISTRY.get(resource_type, ()))
                   if action.split(":", 1)[0] in PLATFORM_SERVICES})


def _scope(config: EnvironmentConfig, arn_format: str) -> str:
    """An IAM ARN format cut to "this account, any region, any resource of the service" (the DR
    stack is in another region). S3: the platform's buckets and their objects by name, since a
    bucket's ARN carries no account and IAM refuses an S3 resource with a region in it (the
    account-and-region S3 kinds, access points and the like, are not the platform's)."""
    service = arn_format.split(":")[2]
    if service == "s3":
        return f"arn:${{AWS::Partition}}:s3:::{_platform(config)}"
    account = "${AWS::AccountId}" if "${Account}" in arn_format.split(":")[4] else ""
    return f"arn:${{AWS::Partition}}:{service}:*:{account}:*"


def handler_statements(config: EnvironmentConfig) -> list[Statement]:
    """Per service: the actions that authorize on resources, on this account's resources of the
    service; the actions that authorize on nothing narrower, on "*" (AWS requires it)."""
    resources = action_resources()
    by_service: dict[str, dict[tuple[str, ...], list[str]]] = {}
    for action in service_role_actions():
        scopes = tuple(sorted({_scope(config, arn_format) for arn_format in resources[action]})) or ("*",)
        by_service.setdefault(action.split(":", 1)[0], {}).setdefault(scopes, []).append(action)
    statements = []
    for service, groups in sorted(by_service.items()):
        for index, (scopes, actions) in enumerate(sorted(groups.items())):
            sid = "".join(part.title() for part in service.split("-")) + (f"{index}" if index else "")
            statements.append(_statement(sid, actions, [Sub(scope) if "${" in scope else scope for scope in scopes]))
    return statements


def _chunks(statements: list[Statement]) -> list[list[Statement]]:
    """Statements spread over managed policies within IAM's size limit (whitespace not counted)."""
    chunks: list[list[Statement]] = [[]]
    size = 0
    for statement in statements:
        length = len(json.dumps(encode_to_dict(statement.JSONrepr()), separators=(",", ":")))
        if chunks[-1] and size + length > POLICY_CHARACTERS:
            chunks.append([])
            size = 0
        chunks[-1].append(statement)
        size += length
    return chunks


def bound_every_role(template: Template, config: EnvironmentConfig) -> None:
    """Every role of a stack the service role deploys carries the boundary: the service role may
    create no other (RolesOnlyWithTheBoundary)."""
    for resource in template.resources.values():
        if resource.resource_type == "AWS::IAM::Role":
            resource.PermissionsBoundary = boundary_arn(config)


def unknown_resource_types(stack_name: str, template: dict) -> list[str]:
    """The build's refusal of a type the service role and the deploy role do not cover."""
    types = {resource["Type"] for resource in template.get("Resources", {}).values()}
    return [f"{stack_name}: resource type {resource_type} is not in templates_src/delivery.py "
            "PLATFORM_RESOURCE_TYPES (the CloudFormation service role could not create it): add it, "
            "run `python -m templates_src.registry_permissions`, and have an administrator run "
            "`make bootstrap` before the deploy that needs it"
            for resource_type in sorted(types - PLATFORM_RESOURCE_TYPES)]


def github_role_arn(config: EnvironmentConfig, purpose: str) -> str:
    """The ARN a workflow assumes for `purpose` (github-plan, github-deploy); ValueError naming
    the setting when the environment has no such role."""
    if config.delivery is None:
        raise ValueError(f"{config.name} is not delivered from GitHub: parameters/{config.name}.yaml has no delivery section")
    purposes = [role_purpose for role_purpose, _, _ in _github_roles(config)]
    if purpose not in purposes:
        raise ValueError(f"{config.name} has no {purpose} role (it has {', '.join(purposes)}; "
                         "pull requests plan only where delivery.pull_request_plans is true)")
    return service_role_arn_literal(config).replace(resource_name(config, "cloudformation"), resource_name(config, purpose))


def main(argv: list[str] | None = None) -> int:
    """`make delivery-role`: role=<arn> and region=<region> lines for a workflow's outputs."""
    import argparse
    import sys

    from .config import ConfigError, load_environment

    parser = argparse.ArgumentParser(prog="make delivery-role", description=main.__doc__)
    parser.add_argument("--env", required=True)
    parser.add_argument("--role", required=True, choices=("github-plan", "github-deploy"))
    parser.add_argument("--output", help="append to this file (a workflow's $GITHUB_OUTPUT) instead of printing")
    args = parser.parse_args(argv)
    try:
        config = load_environment(args.env)
        lines = f"role={github_role_arn(config, args.role)}\nregion={config.region}\n"
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "a", encoding="utf-8") as output:
            output.write(lines)
    else:
        print(lines, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
