"""CloudWatch Logs: log groups."""
from __future__ import annotations

from typing import Any

from .cloudformation.providers import Provider, Request, State, register


def backend(request: Request) -> Any:
    from moto.logs.models import logs_backends

    return logs_backends[request.account_id][request.region]


class LogGroupProvider(Provider):
    """moto gaps: moto's AWS::Logs::LogGroup drops KmsKeyId (it reads a lower-case key), has no
    update (a new retention is never applied) and no name generation of CloudFormation's form.
    Ref: the name; GetAtt Arn."""

    resource_type = "AWS::Logs::LogGroup"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        name = p.get("LogGroupName") or request.physical_name
        tags = {t["Key"]: t["Value"] for t in p.get("Tags") or []}
        kwargs = {}
        if p.get("RetentionInDays") is not None:
            kwargs["RetentionInDays"] = int(p["RetentionInDays"])
        if p.get("KmsKeyId"):
            kwargs["kmsKeyId"] = p["KmsKeyId"]
        group = backend(request).create_log_group(name, tags, **kwargs)
        return State(physical_id=name, handle=group, attributes={"Arn": f"{group.arn}:*"})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        logs = backend(request)
        p = request.properties
        if p.get("RetentionInDays") is not None:
            logs.put_retention_policy(state.physical_id, int(p["RetentionInDays"]))
        else:
            logs.delete_retention_policy(state.physical_id)
        state.handle.kms_key_id = p.get("KmsKeyId")
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_log_group(state.physical_id)


def apply() -> None:
    register(LogGroupProvider())
