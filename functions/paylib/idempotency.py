"""Idempotency-Key handling after the IETF httpapi Idempotency-Key draft.

Design decisions:
- The record key is `<scope>#<operation>#<header value>` (scope = API key id), so two clients
  never share keys. The request fingerprint is an HMAC of the canonical JSON body under the
  card fingerprint key: the body contains a card number, and an unkeyed hash of it would be a
  derivative of the number that can be brute-forced.
- begin() takes a lock with a conditional put. Outcomes: NEW (go ahead), REPLAY (same key and
  body, first answer stored), MISMATCH (same key, other body: 422), IN_FLIGHT (the first request
  still holds the lock: 409). A lock older than LOCK_SECONDS (longer than the function timeout)
  belonged to a crashed attempt and is taken over, keeping the first attempt's created_at so the
  retry derives the same payment and counts velocity for it once.
- Only successful answers are stored. Validation failures never reach this module (nothing is
  written for a rejected request) and an unexpected failure expires the lock (the record stays).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from . import aws
from .errors import ApiError
from .validation import contains_card_number

RETENTION_SECONDS = 24 * 3600
LOCK_SECONDS = 60
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True)
class Outcome:
    kind: str  # NEW | REPLAY
    created_at: str = ""
    status: int = 0
    body: Optional[dict] = None


def validate_key(value: Optional[str]) -> str:
    if value is None:
        raise ApiError(400, "missing_idempotency_key", "the Idempotency-Key header is required", "Idempotency-Key")
    if not KEY_PATTERN.fullmatch(value):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters", "Idempotency-Key")
    if contains_card_number(value):  # the key is stored; a careless client must not make us store a card
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must not contain a card number", "Idempotency-Key")
    return value


def request_fingerprint(body: dict, key: bytes) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hmac.new(key, b"request:" + canonical.encode("ascii"), hashlib.sha256).hexdigest()


def record_key(scope: str, operation: str, key: str) -> str:
    return f"{scope}#{operation}#{key}"


def _table() -> str:
    return aws.env("IDEMPOTENCY_TABLE")


def begin(record: str, request_hash: str, now: datetime, created_at: str) -> Outcome:
    client = aws.client("dynamodb")
    epoch = int(now.timestamp())
    for _ in range(3):
        try:
            client.put_item(
                TableName=_table(),
                Item=aws.to_dynamo({
                    "idempotency_key": record, "request_hash": request_hash, "state": "in_progress",
                    "locked_until": epoch + LOCK_SECONDS, "expires_at": epoch + RETENTION_SECONDS,
                    "created_at": created_at,
                }),
                ConditionExpression="attribute_not_exists(idempotency_key) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(epoch)}},
            )
            return Outcome("NEW", created_at=created_at)
        except client.exceptions.ConditionalCheckFailedException:
            pass
        existing = client.get_item(TableName=_table(), Key={"idempotency_key": {"S": record}}, ConsistentRead=True).get("Item")
        if existing is None:
            continue  # expired and deleted between the two calls: try again
        existing = aws.from_dynamo(existing)
        if not hmac.compare_digest(existing["request_hash"], request_hash):
            raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request body", "Idempotency-Key")
        if existing["state"] == "completed":
            return Outcome("REPLAY", status=int(existing["response_status"]), body=json.loads(existing["response_body"]))
        if existing["locked_until"] > epoch:
            raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is still being processed", "Idempotency-Key")
        if _take_over(record, request_hash, epoch, existing["locked_until"]):
            return Outcome("NEW", created_at=existing["created_at"])
    raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is still being processed", "Idempotency-Key")


def _take_over(record: str, request_hash: str, epoch: int, stale_lock: int) -> bool:
    client = aws.client("dynamodb")
    try:
        client.update_item(
            TableName=_table(), Key={"idempotency_key": {"S": record}},
            UpdateExpression="SET locked_until = :lock",
            ConditionExpression="#state = :in_progress AND locked_until = :stale AND request_hash = :hash",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=aws.to_dynamo({
                ":lock": epoch + LOCK_SECONDS, ":in_progress": "in_progress", ":stale": stale_lock, ":hash": request_hash,
            }),
        )
        return True
    except client.exceptions.ConditionalCheckFailedException:
        return False


def complete(record: str, request_hash: str, status: int, body: dict) -> None:
    aws.client("dynamodb").update_item(
        TableName=_table(), Key={"idempotency_key": {"S": record}},
        UpdateExpression="SET #state = :completed, response_status = :status, response_body = :body REMOVE locked_until",
        ConditionExpression="request_hash = :hash",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues=aws.to_dynamo({
            ":completed": "completed", ":status": status, ":hash": request_hash,
            ":body": json.dumps(body, sort_keys=True, separators=(",", ":")),
        }),
    )


def release(record: str, request_hash: str) -> None:
    """Expire the lock after an unexpected failure so the client may retry at once. The record
    is kept (not deleted) so the retry takes it over with the first attempt's created_at."""
    client = aws.client("dynamodb")
    try:
        client.update_item(
            TableName=_table(), Key={"idempotency_key": {"S": record}},
            UpdateExpression="SET locked_until = :expired",
            ConditionExpression="#state = :in_progress AND request_hash = :hash",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=aws.to_dynamo({":expired": 0, ":in_progress": "in_progress", ":hash": request_hash}),
        )
    except client.exceptions.ConditionalCheckFailedException:
        pass
