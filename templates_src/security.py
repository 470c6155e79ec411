"""security layer: the platform's KMS keys, its generated secrets and the SSM names that
publish them.

Design decisions:
- One customer-managed key per purpose, each rotated yearly, each policy naming the services
  allowed to use it:
  * data: the services that use it as themselves (CloudWatch alarms publishing to the
    encrypted alarm topic, log delivery of the encrypted state machine, SNS dead-lettering the
    alarm topic), each limited to this account (aws:SourceAccount, and aws:SourceArn where
    known), and the account's own roles only through the data services (kms:ViaService);
  * logs: CloudWatch Logs of this region, only for log groups of this account (encryption
    context condition);
  * secrets: the account's roles only through Secrets Manager (kms:ViaService). That is also
    how the Aurora master secret, which RDS creates and rotates (data layer), uses it: RDS calls
    Secrets Manager as the caller (the CloudFormation service role at create, RDS's
    service-linked role when it rotates), and Secrets Manager calls KMS, so kms:ViaService is
    secretsmanager; no statement for RDS itself or any service principal is needed.
- This layer needs nothing from the network: it imports nothing, so it can deploy first.
- No database secret here: RDS owns the Aurora master secret (data layer, ManageMasterUserPassword).
- The API signing key and the card-fingerprint HMAC key are generated once. Rotating the signing
  key is a re-keying (old signatures stop matching). The fingerprint key rotates without one:
  the functions keep counting under AWSPREVIOUS as well (docs/payments.md, "Keys"), so a new
  version may be put at most once per 26 hours; that is an operator's step (no rotation
  function here), not a schedule.
- SSM parameters publish ids, ARNs and names only (type String); never a secret value.
"""
from __future__ import annotations

from dataclasses import dataclass

import awacs.kms as kms_actions
from troposphere import GetAtt, Ref, Template, secretsmanager, ssm

from .blocks import kms_key, logs_service_statement, service_key_statement, via_services_statement
from .common import export, keep_data, new_template, resource_name, skip_checkov, standard_tags, tags
from .config import EnvironmentConfig

LAYER = "security"



@dataclass(frozen=True)
class GeneratedSecret:
    """A key the platform generates and keeps in Secrets Manager (logical id `<stem>Secret`,
    name payments-<env>-<purpose>), and why it has no rotation schedule."""

    stem: str  # export-key stem: <stem>SecretArn
    purpose: str
    description: str
    why_not_rotated: str
    length: int = 64


SECRETS = (
    GeneratedSecret("ApiSigning", "api-signing-key", "Key that signs API responses and webhooks",
                    "rotating is a re-keying that invalidates issued signatures: a planned operation, not a schedule"),
    GeneratedSecret("CardFingerprint", "card-fingerprint-key",
                    "HMAC key that fingerprints card numbers (for velocity checks) without storing them",
                    "rotated by an operator at most once per 26 h (the functions count under AWSPREVIOUS too); "
                    "no rotation function"),
    GeneratedSecret("MerchantKeyPepper", "merchant-key-pepper",
                    "HMAC key (pepper) under which merchants' secret API keys are stored, never the keys themselves",
                    "rotating the pepper invalidates every stored key hash: all merchants' keys would be reissued"),
)
# Export-key stem -> secret purpose (its name is payments-<env>-<purpose>).
SECRET_PURPOSES = {secret.stem: secret.purpose for secret in SECRETS}

# Services that call KMS as themselves (service principal) with the data key, and why. Each is
# limited to this account and, where the source is known, to its resources. The others that use
# the key (DynamoDB, RDS, Lambda, S3, SQS, SNS, Step Functions) act with the caller's own
# permission (kms:ViaService, below) or through grants, and need no service statement.
DATA_KEY_SERVICE_USES = (
    # CloudWatch alarms publish to the alarm topic, which the data key encrypts.
    ("CloudWatchAlarmsPublish", "cloudwatch.amazonaws.com",
     "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*", (kms_actions.Decrypt, kms_actions.GenerateDataKey)),
    # Log delivery reads the execution events of the state machine, which the data key encrypts.
    ("LogDeliveryReadsStateMachineEvents", "delivery.logs.amazonaws.com", None, (kms_actions.Decrypt,)),
    # SNS moves what the alarm topic cannot deliver into its encrypted dead-letter queue.
    ("SnsTopicsDeadLetters", "sns.amazonaws.com", "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:{prefix}",
     (kms_actions.Decrypt, kms_actions.GenerateDataKey)),
)
# Services through which the account's roles may use the data key (kms:ViaService).
DATA_KEY_VIA_SERVICES = ("dynamodb", "lambda", "rds", "s3", "sns", "sqs", "states")


def build(config: EnvironmentConfig) -> Template:
    template = new_template(config, LAYER, "KMS keys (data, logs, secrets), generated secrets, SSM names")
    keys = {
        "Data": _data_key(template, config),
        "Logs": _logs_key(template, config),
        "Secrets": _secrets_key(template, config),
    }
    secrets = _secrets(template, config, keys["Secrets"])
    _parameters(template, config, keys, secrets)
    _exports(template, config, keys, secrets)
    return template


def _data_key(template: Template, config: EnvironmentConfig):
    return kms_key(
        template,
        config,
        "DataKey",
        "data",
        [
            *(service_key_statement(sid, service, source and source.replace("{prefix}", resource_name(config, "*")), actions)
              for sid, service, source, actions in DATA_KEY_SERVICE_USES),
            via_services_statement("AllowAccountThroughDataServices", DATA_KEY_VIA_SERVICES),
        ],
    )


def _logs_key(template: Template, config: EnvironmentConfig):
    return kms_key(
        template,
        config,
        "LogsKey",
        "logs",
        [
            logs_service_statement(),
        ],
    )


def _secrets_key(template: Template, config: EnvironmentConfig):
    return kms_key(
        template, config, "SecretsKey", "secrets", [via_services_statement("AllowAccountThroughSecretsManager", ("secretsmanager",))]
    )


def _secret(template: Template, config: EnvironmentConfig, spec: GeneratedSecret, key) -> secretsmanager.Secret:
    name = resource_name(config, spec.purpose)
    secret = template.add_resource(
        keep_data(
            secretsmanager.Secret(
                f"{spec.stem}Secret",
                Name=name,
                Description=spec.description,
                KmsKeyId=GetAtt(key, "Arn"),
                GenerateSecretString=secretsmanager.GenerateSecretString(PasswordLength=spec.length,
                                                                         ExcludePunctuation=True),
                Tags=tags(config, name),
            ),
            config,
        )
    )
    return skip_checkov(secret, "CKV2_AWS_57", spec.why_not_rotated)


def _secrets(template: Template, config: EnvironmentConfig, key) -> dict[str, secretsmanager.Secret]:
    return {spec.stem: _secret(template, config, spec, key) for spec in SECRETS}


def parameter_path(config: EnvironmentConfig, *parts: str) -> str:
    return "/".join(("", "payments", config.name, *parts))


def _parameter(template: Template, config: EnvironmentConfig, logical_id: str, path: str, value, description: str) -> None:
    template.add_resource(
        ssm.Parameter(
            logical_id,
            Name=path,
            Type="String",
            Value=value,
            Description=description,
            Tags=standard_tags(config),
        )
    )


def _parameters(template: Template, config: EnvironmentConfig, keys: dict, secrets: dict) -> None:
    for purpose, key in keys.items():
        slug = purpose.lower()
        _parameter(template, config, f"{purpose}KeyIdParameter", parameter_path(config, "kms", f"{slug}-key-id"), Ref(key), f"{slug} KMS key id")
        _parameter(template, config, f"{purpose}KeyArnParameter", parameter_path(config, "kms", f"{slug}-key-arn"), GetAtt(key, "Arn"), f"{slug} KMS key ARN")
        _parameter(
            template, config, f"{purpose}KeyAliasParameter", parameter_path(config, "kms", f"{slug}-key-alias"),
            f"alias/{resource_name(config, slug)}", f"{slug} KMS key alias",
        )
    for name, secret in secrets.items():
        _parameter(
            template, config, f"{name}SecretArnParameter", parameter_path(config, "secrets", f"{SECRET_PURPOSES[name]}-arn"),
            Ref(secret), f"ARN of secret {secret.Name} (the ARN only, never the value)",
        )


def _exports(template: Template, config: EnvironmentConfig, keys: dict, secrets: dict) -> None:
    for purpose, key in keys.items():
        export(template, config, LAYER, f"{purpose}KeyArn", GetAtt(key, "Arn"), f"{purpose.lower()} KMS key ARN")
    for name, secret in secrets.items():
        export(template, config, LAYER, f"{name}SecretArn", Ref(secret), f"ARN of secret {secret.Name}")
