"""Idempotency-Key handling after the IETF httpapi Idempotency-Key draft.

Design decisions:
- The record key is built by identity.idempotency_record_key from the merchant id the
  authorizer resolved, so two merchants never share keys: another merchant's request with the
  same Idempotency-Key is its own request and creates its own payment. A record is written in the same transaction as the payment it
  answers for, already complete (status, body, payment id): there is no "in progress" state to
  get stuck in, and a payment id is only ever answered for the request that created it.
- Retention: 24 h. A record past its `expires_at` counts as absent even before TTL deletes it,
  so a key reused after 24 h creates a new payment with a new id (the Stripe / IETF draft
  behaviour). Clients must not retry a request after 24 h; the contract says so.
- The request hash holds nothing that can be searched for card data: it is an HMAC, under the
  request-hash key (keys.py), of the validated request with the card number replaced by its
  keyed fingerprint and without the CVC. A retry that differs only in the CVC is the same
  request. The record names the key version it was hashed with; a retry is compared with that
  version if it is still live, else with every live version, so a key rotation between a
  request and its retry never turns the retry into a 422.
- Records written by the earlier version of this code (no `key_version`) are compared the way
  that code hashed them, so a retry across the deploy replays instead of answering 422; such a
  record still "in progress" answers 409 until it expires.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from . import aws, keys
from .errors import ApiError
from .shapes import Item, JsonObject, TransactAction
from .validation import PaymentRequest, contains_card_number

RETENTION_SECONDS = 24 * 3600
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")
# 13 or more digits in a row: room for a card number. Free text leaves longer runs alone as order
# numbers; a key is an opaque token and needs none, and it is stored for 24 h, so a card number
# hidden inside a longer run is refused too. Contiguous digits only: the groups of a UUID (the
# usual key) are split by dashes, and a separated card number is caught by contains_card_number.
CARD_LENGTH_DIGIT_RUN = re.compile(r"\d{13,}")
EXPIRED_OR_ABSENT = "attribute_not_exists(idempotency_key) OR expires_at < :now"


@dataclass(frozen=True)
class Replay:
    status: int
    body: JsonObject


def validate_key(value: str | None) -> str:
    if value is None:
        raise ApiError(400, "missing_idempotency_key", "the Idempotency-Key header is required", "Idempotency-Key")
    if not KEY_PATTERN.fullmatch(value):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters", "Idempotency-Key")
    if contains_card_number(value):  # the key is stored; a careless client must not make us store a card
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must not contain a card number", "Idempotency-Key")
    if CARD_LENGTH_DIGIT_RUN.search(value):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must not hold 13 or more digits in a row",
                       "Idempotency-Key")
    return value


def table_name() -> str:
    return aws.env("IDEMPOTENCY_TABLE")


def request_hash(request: PaymentRequest, version: keys.KeyVersion) -> str:
    canonical = request.canonical()
    canonical["card"] = {**canonical["card"], "fingerprint": request.fingerprint(version.fingerprint_key)}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(version.request_hash_key, b"request:" + text.encode("ascii"), hashlib.sha256).hexdigest()


def _legacy_request_hash(body: JsonObject, secret: bytes) -> str:
    """How the earlier code hashed (raw body under the raw secret); only ever compared, never stored."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hmac.new(secret, b"request:" + canonical.encode("ascii"), hashlib.sha256).hexdigest()


def _same_request(record: Item, request: PaymentRequest, body: JsonObject, ring: keys.Keyring) -> bool:
    stored = record["request_hash"]
    if "key_version" not in record:
        return any(hmac.compare_digest(stored, _legacy_request_hash(body, version.secret)) for version in ring.versions)
    named = ring.version(record["key_version"])
    versions = (named,) if named else ring.versions
    return any(hmac.compare_digest(stored, request_hash(request, version)) for version in versions)


def replay_of(record: Item | None, request: PaymentRequest, body: JsonObject, ring: keys.Keyring,
              now_epoch: int) -> Replay | None:
    """The first answer when `record` is a live record of this request; None when there is no
    live record; 422 when the key was used for another request."""
    if record is None or int(record["expires_at"]) < now_epoch:
        return None
    if not _same_request(record, request, body, ring):
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request body", "Idempotency-Key")
    if record.get("state") == "in_progress":
        raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is still being processed", "Idempotency-Key")
    return Replay(int(record["response_status"]), json.loads(record["response_body"]))


def record_write(record_key: str, hashed: str, version_id: str, status: int, body: JsonObject,
                 now_epoch: int) -> TransactAction:
    """The transaction action that stores the answer, unless a live record holds the key."""
    item = {
        "idempotency_key": record_key, "request_hash": hashed, "key_version": version_id, "state": "completed",
        "payment_id": body["payment_id"], "response_status": status,
        "response_body": json.dumps(body, sort_keys=True, separators=(",", ":")),
        "created_at": now_epoch, "expires_at": now_epoch + RETENTION_SECONDS,
    }
    return {"Put": {"TableName": table_name(), "Item": aws.to_dynamo(item), "ConditionExpression": EXPIRED_OR_ABSENT,
                    "ExpressionAttributeValues": {":now": {"N": str(now_epoch)}}}}
