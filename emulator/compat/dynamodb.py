"""DynamoDB: tables."""
from __future__ import annotations

from typing import Any

from .cloudformation.providers import MotoProvider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[request.account_id][request.region]


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _refuse_lower_warm_throughput(current: dict, wanted: dict) -> None:
    for units in ("ReadUnitsPerSecond", "WriteUnitsPerSecond"):
        if units in wanted and int(wanted[units]) < int(current.get(units, 0)):
            raise ResourceFailure(f"Resource handler returned message: \"{units} {wanted[units]} is below the table's "
                                  f"{current[units]}: warm throughput cannot be decreased\"")


class TableProvider(MotoProvider):
    """AWS::DynamoDB::Table through moto's model (keys, indexes, billing, streams, SSE, tags,
    deletion protection: a protected table cannot be deleted, as in AWS). moto gaps covered:
    TimeToLiveSpecification and PointInTimeRecoverySpecification are ignored (applied here), and
    the type has no update in moto (in-place changes of billing, throughput, streams, deletion
    protection, TTL, point-in-time recovery, tags and global secondary indexes are applied here
    with UpdateTable & co.). Warm throughput can only be raised, as in DynamoDB: a lower value
    fails the update (moto would take it)."""

    def create(self, request: Request) -> State:
        state = super().create(request)
        self._extras(request, state.physical_id, {})
        return state

    def _extras(self, request: Request, name: str, old: dict) -> None:
        ddb = backend(request)
        p = request.properties
        ttl = p.get("TimeToLiveSpecification")
        if ttl != old.get("TimeToLiveSpecification") and (ttl or old.get("TimeToLiveSpecification")):
            spec = ttl or {"Enabled": False, "AttributeName": old["TimeToLiveSpecification"].get("AttributeName")}
            ddb.update_time_to_live(name, {"Enabled": _bool(spec.get("Enabled")), "AttributeName": spec.get("AttributeName")})
        pitr = p.get("PointInTimeRecoverySpecification")
        if pitr != old.get("PointInTimeRecoverySpecification") and (pitr or old.get("PointInTimeRecoverySpecification")):
            ddb.update_continuous_backups(name, {"PointInTimeRecoveryEnabled": _bool((pitr or {}).get("PointInTimeRecoveryEnabled"))})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        ddb = backend(request)
        p = request.properties
        name = state.physical_id
        _refuse_lower_warm_throughput(ddb.get_table(name).warm_throughput, p.get("WarmThroughput") or {})
        old_indexes = {i["IndexName"]: i for i in old_properties.get("GlobalSecondaryIndexes", [])}
        new_indexes = {i["IndexName"]: i for i in p.get("GlobalSecondaryIndexes", [])}
        updates = [{"Delete": {"IndexName": n}} for n in old_indexes if n not in new_indexes]
        updates += [{"Create": i} for n, i in new_indexes.items() if n not in old_indexes]
        ddb.update_table(
            name, p.get("AttributeDefinitions", []), updates, p.get("ProvisionedThroughput"),
            p.get("BillingMode", "PROVISIONED"), p.get("StreamSpecification"),
            _bool(p.get("DeletionProtectionEnabled", False)), p.get("WarmThroughput"),
        )
        self._extras(request, name, old_properties)
        table = ddb.get_table(name)
        old_tags = [t["Key"] for t in old_properties.get("Tags", [])]
        if old_tags:
            ddb.untag_resource(table.table_arn, old_tags)
        if p.get("Tags"):
            ddb.tag_resource(table.table_arn, {t["Key"]: t["Value"] for t in p["Tags"]})
        return self.state_from(table, request)


def apply() -> None:
    register(TableProvider("AWS::DynamoDB::Table"))
