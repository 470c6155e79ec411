"""KMS: AWS::KMS::Key."""
from __future__ import annotations

import json

from .cloudformation.providers import MotoProvider, Request, State, register


class KeyProvider(MotoProvider):
    """AWS::KMS::Key through moto's KMS backend.

    moto gaps:
    - moto's handler passes CloudFormation's Key/Value tags to create_key, whose tagger wants
      TagKey/TagValue: KeyError 'TagKey' (the stack then reports "Fn::GetAtt references
      undefined resource"); converted here;
    - it passes KeyPolicy as a dict where the backend stores a JSON string (GetKeyPolicy then
      returns a Python repr); serialized here;
    - it ignores KeySpec / KeyUsage / MultiRegion; passed through here;
    - on deletion it removes the key at once; AWS schedules the deletion
      (PendingWindowInDays, default 30) and the key stays visible as PendingDeletion.
    Updates (description, policy, rotation, enabled, tags) are applied in place.
    """

    def create(self, request: Request) -> State:
        from moto.kms.models import kms_backends

        backend = kms_backends[request.account_id][request.region]
        p = request.properties
        policy = p.get("KeyPolicy")
        key = backend.create_key(
            policy=json.dumps(policy) if isinstance(policy, (dict, list)) else policy,
            key_usage=p.get("KeyUsage", "ENCRYPT_DECRYPT"), key_spec=p.get("KeySpec", "SYMMETRIC_DEFAULT"),
            description=p.get("Description", ""),
            tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in p.get("Tags", [])],
            multi_region=bool(p.get("MultiRegion", False)),
        )
        key.key_rotation_status = bool(p.get("EnableKeyRotation", False))
        key.enabled = bool(p.get("Enabled", True))
        if not key.enabled:
            key.key_state = "Disabled"
        return self.state_from(key, request)

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        from moto.kms.models import kms_backends

        backend = kms_backends[request.account_id][request.region]
        key = state.handle
        p = request.properties
        policy = p.get("KeyPolicy")
        key.policy = json.dumps(policy) if isinstance(policy, (dict, list)) else policy
        key.description = p.get("Description", "")
        key.key_rotation_status = bool(p.get("EnableKeyRotation", False))
        key.enabled = bool(p.get("Enabled", True))
        key.key_state = "Enabled" if key.enabled else "Disabled"
        backend.tagger.delete_all_tags_for_resource(key.id)
        tags = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in p.get("Tags", [])]
        if tags:
            backend.tagger.tag_resource(key.id, tags)
        return state

    def delete(self, request: Request, state: State) -> None:
        from moto.kms.models import kms_backends

        backend = kms_backends[request.account_id][request.region]
        window = int(request.properties.get("PendingWindowInDays", 30))
        if state.handle.id in backend.keys:
            backend.schedule_key_deletion(state.handle.id, window)


def apply() -> None:
    register(KeyProvider("AWS::KMS::Key"))
