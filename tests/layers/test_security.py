"""security layer: rotated KMS keys whose policies name their services, generated secrets
encrypted with the secrets key, SSM names without secret values, the export contract."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from templates_src import security

from ..policy_eval import ACCOUNT, REGION, Request, allowed
from .helpers import assert_data_policy, exports_contract, of_type, rendered

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")
KEYS = ("DataKey", "LogsKey", "SecretsKey")
SECRETS = ("ApiSigningSecret", "CardFingerprintSecret", "MerchantKeyPepperSecret")


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def env(request):
    return rendered(security, request.param)


def statements(template: dict, key: str) -> dict[str, dict]:
    return {s["Sid"]: s for s in template["Resources"][key]["Properties"]["KeyPolicy"]["Statement"]}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_three_rotated_keys_with_aliases(env):
    config, template = env
    assert set(of_type(template, "AWS::KMS::Key")) == set(KEYS)
    for key in KEYS:
        properties = template["Resources"][key]["Properties"]
        assert properties["EnableKeyRotation"] is True
    aliases = {a["Properties"]["AliasName"] for a in of_type(template, "AWS::KMS::Alias").values()}
    assert aliases == {f"alias/payments-{config.name}-{purpose}" for purpose in ("data", "logs", "secrets")}


def env_name(template: dict) -> str:
    return template["Description"].split()[1]


def test_data_key_names_only_the_services_that_use_it_as_themselves_with_source_conditions(env):
    _, template = env
    policy = statements(template, "DataKey")
    service_statements = {sid: s for sid, s in policy.items() if "Service" in s["Principal"]}
    assert {s["Principal"]["Service"] for s in service_statements.values()} == {
        "cloudwatch.amazonaws.com", "delivery.logs.amazonaws.com", "sns.amazonaws.com"}
    this_account = {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    for statement in service_statements.values():
        assert statement["Condition"]["StringEquals"] == this_account
        assert "kms:Encrypt" not in statement["Action"] and "kms:ReEncryptFrom" not in statement["Action"]
    alarms = service_statements["CloudWatchAlarmsPublish"]
    assert alarms["Condition"]["ArnLike"] == {
        "aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"}}
    assert service_statements["LogDeliveryReadsStateMachineEvents"]["Action"] == ["kms:Decrypt"]
    sns_source = {"Fn::Sub": f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:payments-{env_name(template)}-*"}
    assert service_statements["SnsTopicsDeadLetters"]["Condition"]["ArnLike"] == {"aws:SourceArn": sns_source}
    # DynamoDB, RDS, Lambda, S3, SQS, SNS and Step Functions use it through the caller (or grants)
    via = policy["AllowAccountThroughDataServices"]["Condition"]["StringEquals"]
    assert via["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
    assert {v["Fn::Sub"].split(".")[0] for v in via["kms:ViaService"]} == set(security.DATA_KEY_VIA_SERVICES)


def test_logs_key_serves_only_this_accounts_log_groups(env):
    _, template = env
    statement = statements(template, "LogsKey")["AllowCloudWatchLogsForThisAccount"]
    assert statement["Principal"]["Service"] == [{"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}]
    assert statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
    }


def test_secrets_key_is_usable_only_through_secrets_manager(env):
    _, template = env
    policy = statements(template, "SecretsKey")
    assert set(policy) == {"AccountAdministersKey", "AllowAccountThroughSecretsManager", "DenyGrantsNotForAwsResources"}
    condition = policy["AllowAccountThroughSecretsManager"]["Condition"]["StringEquals"]
    assert condition["kms:ViaService"] == [{"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}]


def test_key_policies_have_no_wildcard_action_and_allow_no_wildcard_principal(env):
    _, template = env
    for key in KEYS:
        for statement in statements(template, key).values():
            assert not any("*" in action for action in statement["Action"])
            if statement["Effect"] == "Allow":
                assert statement["Principal"] != "*" and statement["Principal"] != {"AWS": "*"}


def test_no_database_secret_rds_owns_the_master_secret(env):
    _, template = env
    assert "DbCredentialsSecret" not in template["Resources"]
    assert not any(name.startswith("DbCredentials") for name in template["Outputs"])


def test_rds_managed_master_secret_may_use_the_secrets_key_through_secrets_manager_only(env):
    """RDS creates the master secret with the caller's permission (the CloudFormation service role)
    and rotates it as its service-linked role; either way Secrets Manager calls KMS. Nothing new
    may use the key: no service principal (RDS's included), no other account. (Within the account,
    AccountAdministersKey already delegates to IAM policies.)"""
    _, template = env
    policy = template["Resources"]["SecretsKey"]["Properties"]["KeyPolicy"]
    deploy_role = {"AWS": f"arn:aws:iam::{ACCOUNT}:role/payments-delivery/payments-staging-cloudformation"}
    rds_role = {"AWS": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS"}
    via_secrets_manager = {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    for principal in (deploy_role, rds_role):
        for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"):
            assert allowed(policy, Request(action, principal, via_secrets_manager)), (principal, action)
    assert not allowed(policy, Request("kms:Decrypt", {"Service": "rds.amazonaws.com"}, via_secrets_manager))
    foreign = {"AWS": "arn:aws:iam::999999999999:role/x"}
    assert not allowed(policy, Request("kms:Decrypt", foreign, {**via_secrets_manager, "kms:CallerAccount": "999999999999"}))


def test_fingerprint_key_is_a_generated_64_character_value(env):
    _, template = env
    generate = template["Resources"]["CardFingerprintSecret"]["Properties"]["GenerateSecretString"]
    assert generate["PasswordLength"] == 64


def test_every_secret_is_generated_and_encrypted_with_the_secrets_key(env):
    config, template = env
    secrets = of_type(template, "AWS::SecretsManager::Secret")
    assert set(secrets) == set(SECRETS)
    for name, secret in secrets.items():
        properties = secret["Properties"]
        assert "SecretString" not in properties, f"{name} carries a literal value"
        assert "GenerateSecretString" in properties
        assert properties["KmsKeyId"] == {"Fn::GetAtt": ["SecretsKey", "Arn"]}
        assert properties["Name"].startswith(f"payments-{config.name}-")
        assert_data_policy(secret, config.name, name)
        assert any(skip["id"] == "CKV2_AWS_57" and skip["comment"] for skip in secret["Metadata"]["checkov"]["skip"])


def test_stateful_resources_follow_the_environment_policy(env):
    config, template = env
    for resource in [*of_type(template, "AWS::KMS::Key").values(), *of_type(template, "AWS::SecretsManager::Secret").values()]:
        assert_data_policy(resource, config.name)


def test_ssm_parameters_publish_names_never_values(env):
    config, template = env
    parameters = of_type(template, "AWS::SSM::Parameter")
    names = {p["Properties"]["Name"] for p in parameters.values()}
    for purpose in ("data", "logs", "secrets"):
        assert {f"/payments/{config.name}/kms/{purpose}-key-{what}" for what in ("id", "arn", "alias")} <= names
    for purpose in security.SECRET_PURPOSES.values():
        assert f"/payments/{config.name}/secrets/{purpose}-arn" in names
    for parameter in parameters.values():
        properties = parameter["Properties"]
        assert properties["Type"] == "String"
        value = properties["Value"]
        # A literal value may only be a key alias; secrets are published by reference (ARN).
        if isinstance(value, str):
            assert value.startswith(f"alias/payments-{config.name}-")
        elif "Ref" in value and value["Ref"] in SECRETS:
            assert value == {"Ref": value["Ref"]}  # Ref of a secret is its ARN


def test_exports_match_the_contract_and_nothing_is_imported(env):
    config, template = env
    assert set(template["Outputs"]) == exports_contract("security")
    for key, output in template["Outputs"].items():
        assert output["Export"]["Name"] == f"payments-{config.name}-security-{key}"
    assert template["Outputs"]["DataKeyArn"]["Value"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert template["Outputs"]["ApiSigningSecretArn"]["Value"] == {"Ref": "ApiSigningSecret"}
    assert "Fn::ImportValue" not in json.dumps(template)


def test_no_hard_coded_partition_region_or_account(env):
    config, template = env
    text = json.dumps(template)
    assert "arn:aws:" not in text
    assert config.region not in text
