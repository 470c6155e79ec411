"""ECR: repositories."""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import MotoProvider, Request, State, register


def backend(request: Request) -> Any:
    from moto.ecr.models import ecr_backends

    return ecr_backends[request.account_id][request.region]


class RepositoryProvider(MotoProvider):
    """AWS::ECR::Repository through moto's model (encryption, scanning, tag mutability, tags).
    moto gaps covered: moto stores CloudFormation's EncryptionConfiguration and
    ImageScanningConfiguration with their PascalCase keys where the API shape (and
    DescribeRepositories) uses camelCase, so boto3 cannot read them back (converted here);
    LifecyclePolicy and RepositoryPolicyText are ignored (applied here), and
    the repository cannot be deleted by moto's CloudFormation. Deleting it here follows ECR: a
    repository that still holds images is refused (RepositoryNotEmptyException) unless
    EmptyOnDelete is true."""

    def cloudformation_json(self, request: Request) -> dict:
        document = super().cloudformation_json(request)
        p = document["Properties"]
        if p.get("EncryptionConfiguration"):
            encryption = p["EncryptionConfiguration"]
            p["EncryptionConfiguration"] = {"encryptionType": encryption.get("EncryptionType", "AES256"),
                                            **({"kmsKey": encryption["KmsKey"]} if encryption.get("KmsKey") else {})}
        if p.get("ImageScanningConfiguration") is not None:
            scan = p["ImageScanningConfiguration"]
            p["ImageScanningConfiguration"] = {"scanOnPush": str(scan.get("ScanOnPush", False)).lower() == "true"}
        return document

    def create(self, request: Request) -> State:
        state = super().create(request)
        self._policies(request, state)
        return state

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        state = super().update(request, state, old_properties)
        self._policies(request, state)
        return state

    def _policies(self, request: Request, state: State) -> None:
        ecr = backend(request)
        p = request.properties
        lifecycle = (p.get("LifecyclePolicy") or {}).get("LifecyclePolicyText")
        if lifecycle:
            ecr.put_lifecycle_policy(None, state.physical_id, lifecycle if isinstance(lifecycle, str) else json.dumps(lifecycle))
        policy = p.get("RepositoryPolicyText")
        if policy:
            ecr.set_repository_policy(None, state.physical_id, policy if isinstance(policy, str) else json.dumps(policy))

    def delete(self, request: Request, state: State) -> None:
        force = str(request.properties.get("EmptyOnDelete", "false")).lower() == "true"
        backend(request).delete_repository(state.physical_id, force=force)


def apply() -> None:
    register(RepositoryProvider("AWS::ECR::Repository"))
