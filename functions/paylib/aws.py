"""AWS clients and configuration read from the environment.

Design decisions: clients are created lazily and cached per process (Lambda reuses them across
invocations); `reset()` exists for tests that switch moto contexts. Retries use botocore's
"standard" mode (jittered backoff on throttling). DynamoDB is used through the low-level client
with explicit (de)serialisation: the serializer refuses floats, which keeps money integral.
"""
from __future__ import annotations

import functools
import os
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
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
def client(service: str):
    return boto3.client(service, config=_CONFIG)


def reset() -> None:
    client.cache_clear()


def to_dynamo(item: dict) -> dict:
    return {key: _SERIALIZER.serialize(value) for key, value in item.items() if value is not None}


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


def from_dynamo(item: dict) -> dict:
    return {key: _plain(_DESERIALIZER.deserialize(value)) for key, value in item.items()}


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code", "")
