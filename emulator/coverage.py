"""Which CloudFormation resource types the emulator creates, emulates or only records.

This module is data (no moto import): the project's docs are generated from it.

- "created":  the resource exists in moto's backend afterwards and the service's own API shows
              it (through moto's CloudFormation model, fixed where noted, or through an emulator
              provider calling moto's service backend);
- "emulated": the emulator reproduces the resource's effect on other resources in moto, but no
              resource of that type exists (e.g. an account setting, a secret's content);
- "recorded": CloudFormation knows the type, nothing in moto can hold it; the stack records a
              physical id, a Ref and the GetAtt attributes, properties are still validated.

Any other type CloudFormation knows is handled the same way: moto's model when moto has one
("created"), otherwise a record ("recorded"); `support_level(type)` answers for any type. A type
CloudFormation does not know fails the change set ("Unrecognized resource types").
"""
from __future__ import annotations

CREATED = "created"
EMULATED = "emulated"
RECORDED = "recorded"

# type -> (support level, one-line note)
_TABLE: dict[str, tuple[str, str]] = {
    "AWS::ApiGateway::Account": (EMULATED, "sets the account's CloudWatch role (UpdateAccount); stages need it before logging"),
    "AWS::ApiGateway::ApiKey": (CREATED, "CreateApiKey; Ref the key id"),
    "AWS::ApiGateway::Deployment": (CREATED, "CreateDeployment; Ref the deployment id (moto's Ref was an object)"),
    "AWS::ApiGateway::RestApi": (CREATED, "CreateRestApi + PutRestApi from Body/BodyS3Location (moto ignored Body)"),
    "AWS::ApiGateway::Stage": (CREATED, "CreateStage; access/execution logging needs the account's CloudWatch role"),
    "AWS::ApiGateway::UsagePlan": (CREATED, "CreateUsagePlan; the API stages must exist"),
    "AWS::ApiGateway::UsagePlanKey": (CREATED, "CreateUsagePlanKey"),
    "AWS::ApplicationAutoScaling::ScalableTarget": (CREATED, "RegisterScalableTarget; the ECS service must exist"),
    "AWS::ApplicationAutoScaling::ScalingPolicy": (CREATED, "PutScalingPolicy; Ref the policy ARN"),
    "AWS::CertificateManager::Certificate": (CREATED, "RequestCertificate; ISSUED only with DNS validation through an emulator hosted zone, else fails"),
    "AWS::CloudFormation::WaitCondition": (RECORDED, "always fails: nothing can signal it"),
    "AWS::CloudFormation::WaitConditionHandle": (RECORDED, "recorded; Ref a presigned-URL-shaped string"),
    "AWS::CloudWatch::Alarm": (CREATED, "PutMetricAlarm (metric or metric-math alarms); GetAtt Arn"),
    "AWS::CloudWatch::CompositeAlarm": (CREATED, "PutCompositeAlarm (the alarms of its rule must exist); GetAtt Arn; a rollback trigger of its type"),
    "AWS::CloudWatch::Dashboard": (CREATED, "moto's model"),
    "AWS::DynamoDB::Table": (CREATED, "moto's model + TTL, point-in-time recovery and in-place updates; deletion protection enforced"),
    "AWS::EC2::EIP": (CREATED, "moto's model + tags and release on deletion"),
    "AWS::EC2::FlowLog": (CREATED, "moto's model + deletion"),
    "AWS::EC2::InternetGateway": (CREATED, "moto's model + tags and deletion"),
    "AWS::EC2::NatGateway": (CREATED, "CreateNatGateway with tags; deleted with DeleteNatGateway"),
    "AWS::EC2::Route": (CREATED, "moto's model + deletion; Ref rtb-id|destination"),
    "AWS::EC2::RouteTable": (CREATED, "moto's model + tags and deletion"),
    "AWS::EC2::SecurityGroup": (CREATED, "CreateSecurityGroup with ingress and egress rules, updated in place"),
    "AWS::EC2::SecurityGroupEgress": (CREATED, "AuthorizeSecurityGroupEgress; Ref the rule id"),
    "AWS::EC2::SecurityGroupIngress": (CREATED, "AuthorizeSecurityGroupIngress; Ref the rule id"),
    "AWS::EC2::Subnet": (CREATED, "moto's model + MapPublicIpOnLaunch and tags"),
    "AWS::EC2::SubnetRouteTableAssociation": (CREATED, "AssociateRouteTable (moto's model bypassed the route table)"),
    "AWS::EC2::VPC": (CREATED, "moto's model + DNS attributes, tags, AWS's default security group rules"),
    "AWS::EC2::VPCEndpoint": (CREATED, "moto's model + tags and deletion"),
    "AWS::EC2::VPCGatewayAttachment": (CREATED, "moto's model + detach on deletion"),
    "AWS::ECR::Repository": (CREATED, "moto's model + lifecycle/repository policies; non-empty repository kept unless EmptyOnDelete"),
    "AWS::ECS::Cluster": (CREATED, "moto's model + deletion (refused while services are active)"),
    "AWS::ECS::Service": (CREATED, "CreateService with load balancers and network config; this account's missing ECR image fails"),
    "AWS::ECS::TaskDefinition": (CREATED, "RegisterTaskDefinition with every property; deregistered on deletion"),
    "AWS::ElasticLoadBalancingV2::Listener": (CREATED, "moto's model; HTTPS needs an ISSUED ACM certificate of the account and region"),
    "AWS::ElasticLoadBalancingV2::ListenerRule": (CREATED, "moto's model + deletion"),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": (CREATED, "CreateLoadBalancer with attributes and tags; FullName/zone attributes"),
    "AWS::ElasticLoadBalancingV2::TargetGroup": (CREATED, "moto's model + attributes, tags, FullName attribute, deletion"),
    "AWS::Events::Rule": (CREATED, "moto's model"),
    "AWS::IAM::ManagedPolicy": (CREATED, "moto's model + deletion"),
    "AWS::IAM::Policy": (CREATED, "moto's model"),
    "AWS::IAM::OIDCProvider": (RECORDED, "recorded (staging and prod's delivery stack; local trusts no GitHub): Ref the ARN-shaped id"),
    "AWS::IAM::Role": (CREATED, "CreateRole + inline policies + managed policy ARNs (must exist), updated in place"),
    "AWS::KMS::Alias": (CREATED, "moto's model"),
    "AWS::KMS::Key": (CREATED, "CreateKey with Key/Value tags, policy, spec; deletion is scheduled (PendingDeletion)"),
    "AWS::Lambda::Alias": (CREATED, "CreateAlias; Ref the alias ARN"),
    "AWS::Lambda::EventSourceMapping": (CREATED, "moto's model"),
    "AWS::Lambda::Function": (CREATED, "moto's model (code from S3, layers of other accounts when shared); never runs"),
    "AWS::Lambda::Permission": (CREATED, "AddPermission; removed on deletion"),
    "AWS::Lambda::Version": (CREATED, "PublishVersion; Ref the version ARN, GetAtt Version"),
    "AWS::Logs::LogGroup": (CREATED, "CreateLogGroup with retention, KMS key and tags, updated in place"),
    "AWS::RDS::DBCluster": (CREATED, "CreateDBCluster (Aurora, Serverless v2); Snapshot policy takes a final snapshot"),
    "AWS::RDS::DBClusterParameterGroup": (CREATED, "CreateDBClusterParameterGroup with its parameters"),
    "AWS::RDS::DBInstance": (CREATED, "CreateDBInstance, in its cluster when DBClusterIdentifier is set"),
    "AWS::RDS::DBSubnetGroup": (CREATED, "moto's model; Ref the group name (moto's Ref was an object)"),
    "AWS::S3::Bucket": (CREATED, "moto's model + versioning, public access block, ownership, logging, EventBridge; non-empty bucket kept"),
    "AWS::S3::BucketPolicy": (CREATED, "PutBucketPolicy (conditions evaluated, TLS requests assumed)"),
    "AWS::SNS::Subscription": (CREATED, "Subscribe with subscription attributes"),
    "AWS::SNS::Topic": (CREATED, "moto's model"),
    "AWS::SNS::TopicPolicy": (CREATED, "SetTopicAttributes Policy"),
    "AWS::SQS::Queue": (CREATED, "moto's model"),
    "AWS::SQS::QueuePolicy": (CREATED, "SetQueueAttributes Policy"),
    "AWS::SSM::Parameter": (CREATED, "moto's model with map Tags fixed; updates write a new version"),
    "AWS::SecretsManager::RotationSchedule": (EMULATED, "records rotation on the secret (hosted rotation Lambda cannot run)"),
    "AWS::SecretsManager::Secret": (CREATED, "CreateSecret, GenerateSecretString included; deleted without recovery window"),
    "AWS::SecretsManager::SecretTargetAttachment": (EMULATED, "writes the RDS target's engine/host/port into the secret"),
    "AWS::StepFunctions::StateMachine": (CREATED, "CreateStateMachine from Definition + DefinitionSubstitutions, logging, tracing"),
    "AWS::WAFv2::LoggingConfiguration": (CREATED, "PutLoggingConfiguration; destination must be an aws-waf-logs-* log group"),
    "AWS::WAFv2::WebACL": (CREATED, "CreateWebACL; Ref name|id|scope"),
    "AWS::WAFv2::WebACLAssociation": (CREATED, "AssociateWebACL; the ALB or API stage must exist"),
    "Custom::RestrictDefaultSecurityGroup": (EMULATED, "revokes the default security group's rules in moto's EC2 (its Lambda cannot run)"),
}

RESOURCE_SUPPORT: dict[str, str] = {name: level for name, (level, _) in _TABLE.items()}
RESOURCE_NOTES: dict[str, str] = {name: note for name, (_, note) in _TABLE.items()}

OTHER_CUSTOM_RESOURCES_NOTE = "any other Custom:: type fails: its Lambda cannot run in the emulator"


def support_level(resource_type: str) -> str | None:
    """The level for any type: the table, else moto's model or a record, None if unknown."""
    if resource_type in RESOURCE_SUPPORT:
        return RESOURCE_SUPPORT[resource_type]
    if resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource":
        return None
    from moto.cloudformation.parsing import get_model_map

    if resource_type in get_model_map():
        return CREATED
    from .compat.cloudformation import schemas

    return RECORDED if schemas.schema_for(resource_type, "us-east-1") is not None else None


def table_rows() -> list[tuple[str, str, str]]:
    """(type, level, note), sorted by type: what a docs generator renders."""
    return [(name, level, note) for name, (level, note) in sorted(_TABLE.items())]


def render_markdown() -> str:
    """The table as docs/deploy.md shows it (between its emulator-coverage markers)."""
    lines = ["| resource type | in the emulator | how |", "|---|---|---|"]
    lines += [f"| `{name}` | {level} | {note.replace('|', '/')} |" for name, level, note in table_rows()]
    return "\n".join(lines) + "\n"
