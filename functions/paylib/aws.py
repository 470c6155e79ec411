"""AWS clients and configuration read from the environment.

Design decisions: clients are created lazily and cached per process (Lambda reuses them across
invocations); `reset()` exists for tests that switch moto contexts. Retries use botocore's
"standard" mode (jittered backoff on throttling). DynamoDB is used through the low-level client
with explicit (de)serialisation: the serializer refuses floats, which keeps money integral.
"""
from __future__ import annotations

import functools
import json
import os
from decimal import Decimal
from typing import Any, Literal

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

from .shapes import DynamoItem, Item, JsonObject

# Client-side parameter validation is off: every request is built by this code (never from
# client input), the service validates again, and on a 100-item BatchWriteItem the local
# validation walk costs about as much CPU as everything else the batch function does per row.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10,
                 parameter_validation=False)
# Every AWS service the functions call, as boto3 names them (a new one is added here).
ServiceName = Literal["dynamodb", "s3", "secretsmanager", "sns", "sqs"]
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


class MissingConfiguration(RuntimeError):
    pass


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingConfiguration(f"environment variable {name} is not set")
    return value


@functools.cache
def client(service: ServiceName) -> Any:  # boto3's low-level client (no per-service stubs pinned)
    return boto3.client(service, config=_CONFIG)


def put_audit_record(key: str, record: JsonObject) -> None:
    """One JSON record in the audit bucket. The bucket is under S3 Object Lock (PCI DSS 10.3),
    and S3 refuses a write to a locked bucket that carries neither Content-MD5 nor a checksum:
    every record is sent with its SHA-256."""
    client("s3").put_object(
        Bucket=env("AUDIT_BUCKET"), Key=key, ContentType="application/json", ChecksumAlgorithm="SHA256",
        Body=json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8"),
    )


def reset() -> None:
    client.cache_clear()


def _attribute(value: Any) -> JsonObject:
    """DynamoDB attribute value; floats are refused (money is integral end to end)."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {key: _attribute(item) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [_attribute(item) for item in value]}
    if value is None:
        return {"NULL": True}
    return dict(_SERIALIZER.serialize(value))  # Decimal, sets, bytes; raises TypeError on float


def to_dynamo(item: Item) -> DynamoItem:
    """Serialise a plain item; top-level None values are left out (absent attribute)."""
    return {key: _attribute(value) for key, value in item.items() if value is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValueError("non-integral number stored where only integers are written")
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, set):
        return {_plain(item) for item in value}
    return value


def from_dynamo(item: DynamoItem) -> Item:
    return {key: _plain(_DESERIALIZER.deserialize(value)) for key, value in item.items()}


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
