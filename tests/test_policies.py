"""Platform-wide rules, checked on every built template of every environment."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from platform_contracts import STATEFUL_TYPES
from templates_src.common import SNAPSHOT_TYPES
from templates_src.registry_permissions import iam_resource_formats

from .conftest import ENVIRONMENTS, all_templates
from .layers.helpers import assert_data_policy
from .policy_eval import ACCOUNT, REGION, Request, allowed

ROOT = Path(__file__).resolve().parent.parent

# Actions AWS only authorizes on Resource "*": the API has no resource-level permission for them.
# Each use in a template also carries a comment in the layer's code.
STAR_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments",  # X-Ray: no resource-level permissions
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "ec2:CreateNetworkInterface",  # Lambda in a VPC: ENIs do not exist before the call
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "logs:CreateLogDelivery",  # vended log delivery (Step Functions, API GW): account-level APIs
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "ecr:GetAuthorizationToken",  # ECR: the token is account-wide
    "cloudwatch:PutMetricData",  # CloudWatch: no resource-level permissions (a namespace condition narrows it)
    "secretsmanager:GetRandomPassword",  # rotation: no resource-level permissions
}
POLICY_TYPES = {
    "AWS::IAM::Role": lambda p: [d["PolicyDocument"] for d in p.get("Policies", [])],
    "AWS::IAM::Policy": lambda p: [p["PolicyDocument"]],
    "AWS::IAM::ManagedPolicy": lambda p: [p["PolicyDocument"]],
    "AWS::S3::BucketPolicy": lambda p: [p["PolicyDocument"]],
    "AWS::SQS::QueuePolicy": lambda p: [p["PolicyDocument"]],
    "AWS::SNS::TopicPolicy": lambda p: [p["PolicyDocument"]],
}


def _listify(value):
    return value if isinstance(value, list) else [value]


def policy_statements(template):
    """(logical id, resource type, statement) for every policy document in the template."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents = POLICY_TYPES.get(resource["Type"], lambda p: [])(properties)
        if resource["Type"] == "AWS::KMS::Key":
            documents = [properties["KeyPolicy"]]
        for document in documents:
            for statement in _listify(document["Statement"]):
                yield logical_id, resource["Type"], statement


def test_every_environment_builds_every_layer(built_environments):
    expected = {"artifacts", "delivery", "network", "security", "data", "storage", "messaging", "compute", "workflow", "api", "monitoring"}
    for env in ENVIRONMENTS:
        layers = set(built_environments[env]["templates"])
        assert layers == expected | ({"dr"} if env == "prod" else set())
        for layer, template in built_environments[env]["templates"].items():
            assert template["Resources"], f"{env}/{layer} has no resources"


def test_no_allow_statement_has_a_wildcard_action(built_environments):
    offenders = []
    for env, layer, template in all_templates(built_environments):
        for logical_id, _, statement in policy_statements(template):
            if statement["Effect"] != "Allow":
                continue
            for action in _listify(statement.get("Action", [])):
                if "*" in action:
                    offenders.append(f"{env}/{layer}/{logical_id}: {action}")
            assert "NotAction" not in statement, f"{env}/{layer}/{logical_id} uses NotAction"
    assert offenders == []


def test_star_resource_only_where_aws_allows_nothing_narrower(built_environments):
    offenders = []
    for env, layer, template in all_templates(built_environments):
        for logical_id, resource_type, statement in policy_statements(template):
            if statement["Effect"] != "Allow" or resource_type == "AWS::KMS::Key":
                continue  # in a key policy, "*" means the key itself
            if resource_type == "AWS::IAM::ManagedPolicy" and logical_id == "PermissionsBoundary":
                continue  # a boundary grants nothing: "*" caps resources, the actions are the ceiling
            if "*" in _listify(statement.get("Resource", [])):
                # IAM's service authorization data (bundled with cfn-lint) names the actions that
                # authorize on no resource at all: "*" is all AWS accepts for them.
                actions = set(_listify(statement["Action"])) - STAR_RESOURCE_ACTIONS
                extra = {action for action, formats in iam_resource_formats(actions).items() if formats}
                extra |= actions - set(iam_resource_formats(actions))  # unknown to IAM: never on "*"
                if extra:
                    offenders.append(f"{env}/{layer}/{logical_id}: {sorted(extra)} on *")
    assert offenders == []


def test_stateful_resources_follow_the_environment(built_environments):
    for env, layer, template in all_templates(built_environments):
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] not in STATEFUL_TYPES:
                continue
            assert_data_policy(resource, env, f"{env}/{layer}/{logical_id}", snapshot=resource["Type"] in SNAPSHOT_TYPES)


def _bucket_policies(template):
    policies = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::S3::BucketPolicy":
            policies[json.dumps(resource["Properties"]["Bucket"], sort_keys=True)] = resource["Properties"]["PolicyDocument"]
    return policies


def _is_access_log_target(policy):
    return any(
        s["Effect"] == "Allow" and s.get("Principal", {}).get("Service") == "logging.s3.amazonaws.com"
        for s in _listify(policy["Statement"])
    )


def test_every_bucket_is_encrypted_versioned_private_and_tls_only(built_environments):
    seen = 0
    for env, layer, template in all_templates(built_environments):
        policies = _bucket_policies(template)
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::S3::Bucket":
                continue
            seen += 1
            where = f"{env}/{layer}/{logical_id}"
            properties = resource["Properties"]
            policy = policies.get(json.dumps({"Ref": logical_id}, sort_keys=True))
            assert policy, f"{where} has no bucket policy"
            denies_plain_http = [
                s for s in _listify(policy["Statement"])
                if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in (False, "false")
            ]
            assert denies_plain_http, f"{where} is not TLS-only"
            rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            if _is_access_log_target(policy):
                # S3 server access logs can only be delivered to SSE-S3 buckets.
                assert rule["SSEAlgorithm"] == "AES256", where
            else:
                assert rule["SSEAlgorithm"] == "aws:kms" and rule.get("KMSMasterKeyID"), where
            assert properties["VersioningConfiguration"]["Status"] == "Enabled", where
            block = properties["PublicAccessBlockConfiguration"]
            assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")), where
            name = json.dumps(properties["BucketName"])
            assert env in name and "${AWS::AccountId}" in name and "${AWS::Region}" in name, where
    assert seen >= 3 * 5


def test_every_log_group_has_retention_and_kms(built_environments):
    for env, layer, template in all_templates(built_environments):
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Logs::LogGroup":
                properties = resource["Properties"]
                assert properties.get("RetentionInDays"), f"{env}/{layer}/{logical_id}"
                assert properties.get("KmsKeyId"), f"{env}/{layer}/{logical_id}"


def test_queues_topics_tables_use_kms(built_environments):
    for env, layer, template in all_templates(built_environments):
        for logical_id, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            where = f"{env}/{layer}/{logical_id}"
            if resource["Type"] in ("AWS::SQS::Queue", "AWS::SNS::Topic"):
                assert properties.get("KmsMasterKeyId"), where
            if resource["Type"] == "AWS::DynamoDB::Table":
                sse = properties["SSESpecification"]
                assert sse["SSEEnabled"] is True and sse.get("SSEType") == "KMS" and sse.get("KMSMasterKeyId"), where
                assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, where
                assert properties["BillingMode"] == "PAY_PER_REQUEST", where


def test_kms_keys_rotate(built_environments):
    for env, layer, template in all_templates(built_environments):
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::KMS::Key":
                assert resource["Properties"]["EnableKeyRotation"] is True, f"{env}/{layer}/{logical_id}"


SECRET_WORDS = re.compile(r"(password|secret|token|private[_-]?key|api[_-]?key)", re.IGNORECASE)


def test_no_secret_values_in_templates(built_environments):
    for env, layer, template in all_templates(built_environments):
        for name, parameter in template.get("Parameters", {}).items():
            if SECRET_WORDS.search(name):
                assert parameter.get("NoEcho") is True and "Default" not in parameter, f"{env}/{layer} parameter {name}"
        for name, output in template.get("Outputs", {}).items():
            assert "resolve:secretsmanager" not in json.dumps(output), f"{env}/{layer} output {name}"
            assert "SecretString" not in json.dumps(output)
        for logical_id, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::SecretsManager::Secret":
                assert "SecretString" not in properties, f"{env}/{layer}/{logical_id} embeds a secret value"
                assert "GenerateSecretString" in properties
            for key in ("MasterUserPassword", "Password"):
                value = properties.get(key)
                if value is not None:
                    assert "resolve:secretsmanager" in json.dumps(value), f"{env}/{layer}/{logical_id}.{key}"


def test_no_secret_values_in_parameter_files():
    for path in sorted((ROOT / "parameters").glob("*.yaml")):
        def walk(node, trail):
            if isinstance(node, dict):
                for key, value in node.items():
                    assert not SECRET_WORDS.search(str(key)), f"{path.name}: {'.'.join(trail + [key])}"  # noqa: B023 walk runs within this iteration
                    walk(value, trail + [str(key)])
        walk(yaml.safe_load(path.read_text()), [])


NAME_PROPERTIES = ("TableName", "QueueName", "TopicName", "FunctionName", "LogGroupName", "StateMachineName",
                   "ClusterName", "DBClusterIdentifier", "AliasName", "Name")


def test_names_include_the_environment(built_environments):
    for env, layer, template in all_templates(built_environments):
        for logical_id, resource in template["Resources"].items():
            for key in NAME_PROPERTIES:
                value = resource.get("Properties", {}).get(key)
                if isinstance(value, str) and resource["Type"] != "AWS::Lambda::Alias":
                    assert env in value, f"{env}/{layer}/{logical_id}.{key} = {value!r}"


def test_network_spans_three_zones_everywhere(built_environments):
    for env in ENVIRONMENTS:
        template = built_environments[env]["templates"]["network"]
        config = built_environments[env]["config"]
        subnets = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::EC2::Subnet"]
        assert len(subnets) == 9
        assert {s["AvailabilityZone"] for s in subnets} == set(config.network.availability_zones)
        assert all(s["CidrBlock"].endswith("/24") for s in subnets)


STANDARD_TAG_KEYS = {"Application", "CostCenter", "Environment", "ManagedBy", "Repository"}


def _tag_keys(tags) -> set[str]:
    if isinstance(tags, list):
        return {tag.get("Key") for tag in tags if isinstance(tag, dict)}
    return set(tags) if isinstance(tags, dict) else set()


def test_every_taggable_resource_carries_the_standard_tags(built_environments):
    """Stack tags propagate too, but a template read on its own must show who owns what.
    "Taggable" comes from the CloudFormation resource schemas that cfn-lint ships."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    untagged = []
    for env, layer, template in all_templates(built_environments):
        region = built_environments[env]["config"].region
        for logical_id, resource in template["Resources"].items():
            if resource["Type"].startswith("Custom::"):
                continue
            schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource["Type"]).schema
            if "Tags" not in schema.get("properties", {}):
                continue
            tags = resource.get("Properties", {}).get("Tags")
            if not _tag_keys(tags) >= STANDARD_TAG_KEYS:
                untagged.append(f"{env}/{layer}/{logical_id} ({resource['Type']})")
            elif env not in json.dumps(tags):
                untagged.append(f"{env}/{layer}/{logical_id}: Environment tag is not {env}")
    assert untagged == []


def test_no_template_names_an_account_literally(built_environments):
    """Accounts are `${AWS::AccountId}` everywhere: the same template deploys into any account,
    and nothing points at the account an example file happened to name. The only literal
    accounts allowed are AWS's own ELB log-delivery accounts (an AWS-owned principal)."""
    from templates_src.storage import ELB_ACCOUNT_BY_REGION

    aws_owned = set(ELB_ACCOUNT_BY_REGION.values())

    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for env, layer, template in all_templates(built_environments):
        text = "\n".join(strings(template))
        found = set(re.findall(r"(?<![0-9A-Za-z])[0-9]{12}(?![0-9])", text)) - aws_owned
        assert not found, f"{env}/{layer}: literal account id(s) {sorted(found)}"
        assert "arn:aws:acm:" not in text and ":certificate/0000" not in text, f"{env}/{layer}: literal certificate ARN"


# --- PCI DSS controls (docs/pci-dss.md names these tests) -------------------------------------------


AUDIT_BUCKETS = {"AuditBucket", "ReplicaAuditBucket"}


def test_pci_10_3_audit_trail_buckets_are_locked_as_the_environment_requires(built_environments):
    found = 0
    for env, _layer, template in all_templates(built_environments):
        config = built_environments[env]["config"]
        for logical_id in AUDIT_BUCKETS & set(template["Resources"]):
            found += 1
            properties = template["Resources"][logical_id]["Properties"]
            assert properties["ObjectLockEnabled"] is True, (env, logical_id)
            lock = properties["ObjectLockConfiguration"]
            assert lock["ObjectLockEnabled"] == "Enabled"
            retention = lock["Rule"]["DefaultRetention"]
            expected_mode = {"prod": "COMPLIANCE", "staging": "GOVERNANCE"}.get(env, "GOVERNANCE")
            assert retention["Mode"] == expected_mode == config.storage.audit_lock_mode, (env, logical_id)
            assert retention["Days"] == config.storage.audit_lock_days
            assert retention["Days"] >= 365 or env in ("dev", "local")
    assert found == 5  # one per environment, plus prod's DR replica


def test_pci_10_3_locked_versions_replicate_with_their_retention(built_environments):
    storage = built_environments["prod"]["templates"]["storage"]
    (policy,) = [r for r in storage["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    reads = next(s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Sid"] == "ReadSourceVersions")
    assert {"s3:GetObjectRetention", "s3:GetObjectLegalHold"} <= set(reads["Action"])


def _key_policies(built_environments):
    for env, layer, template in all_templates(built_environments):
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::KMS::Key":
                yield env, layer, logical_id, resource["Properties"]["KeyPolicy"]


def test_pci_3_6_every_key_refuses_grants_that_are_not_for_an_aws_resource(built_environments):
    keys = 0
    for env, layer, logical_id, policy in _key_policies(built_environments):
        keys += 1
        deny = [s for s in policy["Statement"] if s.get("Sid") == "DenyGrantsNotForAwsResources"]
        assert deny == [{
            "Sid": "DenyGrantsNotForAwsResources", "Effect": "Deny", "Principal": "*", "Action": ["kms:CreateGrant"],
            "Resource": ["*"],
            "Condition": {"BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}},
        }], f"{env}/{layer}/{logical_id}"
    assert keys >= 4 * 6


ROLE = {"AWS": f"arn:aws:iam::{ACCOUNT}:role/payments-deployer"}


def _grant_for(service: str) -> Request:
    """What an AWS service does with the caller's permission when it needs the key for its own
    resource (an Aurora cluster, a Lambda function's environment, a table, a secret)."""
    return Request("kms:CreateGrant", ROLE, {"kms:GrantIsForAWSResource": True, "aws:PrincipalIsAWSService": False,
                                             "kms:ViaService": f"{service}.{REGION}.amazonaws.com",
                                             "kms:CallerAccount": ACCOUNT})


def test_pci_3_6_each_consumer_of_the_keys_still_works(built_environments):
    security = built_environments["staging"]["templates"]["security"]["Resources"]
    data, secrets = security["DataKey"]["Properties"]["KeyPolicy"], security["SecretsKey"]["Properties"]["KeyPolicy"]
    for service in ("rds", "lambda", "dynamodb"):
        assert allowed(data, _grant_for(service)), service
    assert allowed(secrets, _grant_for("secretsmanager"))
    function_role = {"AWS": f"arn:aws:iam::{ACCOUNT}:role/payments-staging-payment-api"}
    via_dynamodb = {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    assert allowed(data, Request("kms:Decrypt", function_role, via_dynamodb))
    alarms = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:payments-staging-api-5xx"}
    assert allowed(data, Request("kms:GenerateDataKey", {"Service": "cloudwatch.amazonaws.com"}, alarms))
    # ... and what the deny is for: a principal handing decrypt to someone by a grant of its own
    assert not allowed(data, Request("kms:CreateGrant", ROLE, {"kms:GrantIsForAWSResource": False}))
    assert not allowed(data, Request("kms:CreateGrant", ROLE, {}))
    # another account's alarms cannot use the key
    foreign = {"aws:SourceAccount": "999999999999", "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:999999999999:alarm:x"}
    assert not allowed(data, Request("kms:GenerateDataKey", {"Service": "cloudwatch.amazonaws.com"}, foreign))


def test_pci_4_2_staging_and_prod_have_no_port_80(built_environments):
    for env, layer, template in all_templates(built_environments):
        if env not in ("staging", "prod"):
            continue
        for logical_id, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::ElasticLoadBalancingV2::Listener":
                assert properties["Protocol"] == "HTTPS" and properties["Port"] == 443, f"{env}/{logical_id}"
            rules = properties.get("SecurityGroupIngress", []) if resource["Type"] == "AWS::EC2::SecurityGroup" else (
                [properties] if resource["Type"] == "AWS::EC2::SecurityGroupIngress" else [])
            for rule in rules:
                opens_80 = rule.get("FromPort", 0) <= 80 <= rule.get("ToPort", 65535) and rule.get("IpProtocol") in ("tcp", "-1")
                assert not (opens_80 and rule.get("CidrIp") == "0.0.0.0/0"), f"{env}/{layer}/{logical_id}"


def test_pci_10_7_alarm_notifications_cannot_vanish(built_environments):
    for env, data in built_environments.items():
        messaging, monitoring = data["templates"]["messaging"], data["templates"]["monitoring"]
        subscriptions = [r for r in messaging["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"]
        assert subscriptions
        for subscription in subscriptions:
            target = subscription["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            queue = messaging["Resources"][target]
            assert queue["Type"] == "AWS::SQS::Queue" and "KmsMasterKeyId" in queue["Properties"], env
        alarms = {r["Properties"].get("MetricName") for r in monitoring["Resources"].values()
                  if r["Type"] == "AWS::CloudWatch::Alarm"}
        assert "ConfirmedAlarmSubscriptions" in alarms, env
        assert any(r["Type"] == "AWS::CloudWatch::Alarm" and "AlarmDlqName" in json.dumps(r) for r in monitoring["Resources"].values())
