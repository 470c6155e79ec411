"""Secrets Manager: secrets, target attachments, rotation schedules.

moto gap covered: moto has no CloudFormation model for AWS::SecretsManager::Secret,
SecretTargetAttachment or RotationSchedule (the resources are skipped, a Ref to the secret is
empty and whatever uses it fails with "Value '' at 'value' failed to satisfy constraint").
"""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.secretsmanager.models import secretsmanager_backends

    return secretsmanager_backends[request.account_id][request.region]


def _generate(request: Request, spec: dict) -> str:
    password = backend(request).get_random_password(
        password_length=int(spec.get("PasswordLength", 32)),
        exclude_characters=spec.get("ExcludeCharacters", ""),
        exclude_numbers=bool(spec.get("ExcludeNumbers", False)),
        exclude_punctuation=bool(spec.get("ExcludePunctuation", False)),
        exclude_uppercase=bool(spec.get("ExcludeUppercase", False)),
        exclude_lowercase=bool(spec.get("ExcludeLowercase", False)),
        include_space=bool(spec.get("IncludeSpace", False)),
        require_each_included_type=bool(spec.get("RequireEachIncludedType", True)),
    )
    password = json.loads(password)["RandomPassword"] if password.startswith("{") else password
    template = spec.get("SecretStringTemplate")
    key = spec.get("GenerateStringKey")
    if template is not None or key is not None:
        if template is None or key is None:
            raise ResourceFailure("Properties validation failed: SecretStringTemplate and GenerateStringKey must be "
                                  "specified together")
        try:
            document = json.loads(template)
        except json.JSONDecodeError:
            raise ResourceFailure("SecretStringTemplate is not valid JSON") from None
        document[key] = password
        return json.dumps(document)
    return password


class SecretProvider(Provider):
    """AWS::SecretsManager::Secret, created in moto's Secrets Manager (GenerateSecretString
    included). Ref and GetAtt Id: the ARN. Deleted without a recovery window, like
    CloudFormation does."""

    resource_type = "AWS::SecretsManager::Secret"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        if "SecretString" in p and "GenerateSecretString" in p:
            raise ResourceFailure("You can't specify both SecretString and GenerateSecretString")
        value = p.get("SecretString")
        if value is None:
            value = _generate(request, p.get("GenerateSecretString") or {})
        name = p.get("Name") or request.physical_name
        backend(request).create_secret(
            name=name, secret_string=value, secret_binary=None, description=p.get("Description"),
            tags=p.get("Tags") or [], kms_key_id=p.get("KmsKeyId"), client_request_token=None,
            replica_regions=p.get("ReplicaRegions") or [], force_overwrite=False,
        )
        secret = backend(request).secrets[name]
        return State(physical_id=secret.arn, ref=secret.arn, attributes={"Id": secret.arn}, data={"name": name})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        p = request.properties
        secrets = backend(request)
        secret = secrets.secrets[state.physical_id]
        secret.description = p.get("Description")
        secret.kms_key_id = p.get("KmsKeyId")
        if "SecretString" in p and p["SecretString"] != old_properties.get("SecretString"):
            secrets.put_secret_value(state.physical_id, p["SecretString"], None, None, ["AWSCURRENT"])
        elif p.get("GenerateSecretString") != old_properties.get("GenerateSecretString") and "GenerateSecretString" in p:
            secrets.put_secret_value(state.physical_id, _generate(request, p["GenerateSecretString"]), None, None, ["AWSCURRENT"])
        secrets.tag_resource(state.physical_id, p.get("Tags") or [])
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_secret(state.physical_id, None, True)


class SecretTargetAttachmentProvider(Provider):
    """Adds the connection details of the target (an RDS cluster or instance) to the secret's
    JSON, as AWS does: engine, host, port, dbClusterIdentifier / dbInstanceIdentifier. Ref: the
    secret ARN."""

    resource_type = "AWS::SecretsManager::SecretTargetAttachment"
    support = "emulated"

    def create(self, request: Request) -> State:
        p = request.properties
        secrets = backend(request)
        secret_id = p["SecretId"]
        if secret_id not in secrets.secrets:
            raise ResourceFailure(f"Secrets Manager can't find the specified secret. [{secret_id}]")
        details = self._target(request, p["TargetType"], p["TargetId"])
        current = secrets.get_secret_value(secret_id, None, None)
        document = json.loads(current.get("SecretString") or "{}")
        document.update(details)
        secrets.put_secret_value(secret_id, json.dumps(document), None, None, ["AWSCURRENT"])
        arn = secrets.secrets[secret_id].arn
        return State(physical_id=arn, ref=arn, data={"secret": arn})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        return self.create(request)

    def _target(self, request: Request, target_type: str, target_id: str) -> dict:
        from moto.rds.models import rds_backends

        rds = rds_backends[request.account_id][request.region]
        if target_type == "AWS::RDS::DBCluster":
            cluster = rds.describe_db_clusters(target_id)[0] if hasattr(rds, "describe_db_clusters") else None
            if cluster is None:
                raise ResourceFailure(f"DBCluster {target_id} not found")
            return {"engine": _engine_family(cluster.engine), "host": cluster.endpoint, "port": int(cluster.port),
                    "dbClusterIdentifier": cluster.db_cluster_identifier}
        if target_type == "AWS::RDS::DBInstance":
            instance = rds.describe_db_instances(target_id)[0]
            return {"engine": _engine_family(instance.engine), "host": instance.address, "port": int(instance.port),
                    "dbInstanceIdentifier": instance.db_instance_identifier}
        raise ResourceFailure(f"TargetType {target_type} is not supported by the emulator")


def _engine_family(engine: str) -> str:
    return "postgres" if "postgres" in engine else ("mysql" if "mysql" in engine or engine == "aurora" else engine)


class RotationScheduleProvider(Provider):
    """Records the rotation on the secret (RotationEnabled, rules, the rotation Lambda's ARN):
    the hosted rotation Lambda of the AWS::SecretsManager transform, or RotationLambdaARN, cannot
    run here, so no rotation ever happens. Ref: the secret ARN."""

    resource_type = "AWS::SecretsManager::RotationSchedule"
    support = "emulated"

    def create(self, request: Request) -> State:
        p = request.properties
        secrets = backend(request)
        secret_id = p["SecretId"]
        if secret_id not in secrets.secrets:
            raise ResourceFailure(f"Secrets Manager can't find the specified secret. [{secret_id}]")
        secret = secrets.secrets[secret_id]
        hosted = p.get("HostedRotationLambda")
        if hosted and p.get("RotationLambdaARN"):
            raise ResourceFailure("You can't specify both HostedRotationLambda and RotationLambdaARN")
        if hosted:
            name = hosted.get("RotationLambdaName") or f"{request.stack_name}-{request.logical_id}"[:64]
            lambda_arn = request.arn("lambda", f"function:{name}")
        else:
            lambda_arn = p.get("RotationLambdaARN", "")
        rules = p.get("RotationRules") or {}
        secret.rotation_requested = True
        secret.rotation_enabled = True
        secret.rotation_lambda_arn = lambda_arn
        days = rules.get("AutomaticallyAfterDays")
        expression = rules.get("ScheduleExpression", "")
        if days is None and expression.startswith("rate(") and "day" in expression:
            days = int(expression[5:].split()[0])
        secret.auto_rotate_after_days = int(days or 0)
        secret.rotation_rules = rules  # kept for DescribeSecret-like inspection
        return State(physical_id=secret.arn, ref=secret.arn, data={"secret": secret.arn, "hosted": bool(hosted)})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        return self.create(request)

    def delete(self, request: Request, state: State) -> None:
        secrets = backend(request)
        if state.data["secret"] in secrets.secrets:
            secret = secrets.secrets[state.data["secret"]]
            secret.rotation_enabled = False
            secret.rotation_lambda_arn = ""
            secret.auto_rotate_after_days = 0


def apply() -> None:
    register(SecretProvider())
    register(SecretTargetAttachmentProvider())
    register(RotationScheduleProvider())
