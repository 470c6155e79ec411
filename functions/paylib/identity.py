"""Every identifier and storage key the payment path builds, in one place.

Design decisions:
- API payment ids are random (128 bits would do; 96 bits from `secrets`, the `pay_` + 24 hex
  digits of the contract). Nothing derives them from the Idempotency-Key: a key reused after its
  record expired gets a new payment, and a payment id is only ever answered for the request that
  created it (the idempotency record that names it is written in the same transaction).
- Batch payment ids are deterministic, so the same row in another upload finds the same
  payment: a SHA-256 of the row's identity (customer_id, merchant_reference). No key is involved:
  the id must survive a key rotation, and it needs uniqueness, not secrecy (ids are shown to the
  merchant; they authorise nothing).
- Velocity counters: one per customer and one per card fingerprint (per key version).
- Merchant scoping (next issue) adds a merchant id as the first argument of these functions;
  nothing else builds these keys.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

PAYMENT_ID_PREFIX = "pay_"
PAYMENT_ID_HEX_DIGITS = 24


def idempotency_record_key(scope: str, operation: str, key: str) -> str:
    """`<scope>#<operation>#<Idempotency-Key>`; scope is the API key id."""
    return f"{scope}#{operation}#{key}"


def new_payment_id() -> str:
    return PAYMENT_ID_PREFIX + secrets.token_hex(PAYMENT_ID_HEX_DIGITS // 2)


def batch_payment_id(customer_id: str, merchant_reference: str) -> str:
    identity = f"batch-row\x1f{customer_id}\x1f{merchant_reference}".encode("utf-8")
    return PAYMENT_ID_PREFIX + hashlib.sha256(identity).hexdigest()[:PAYMENT_ID_HEX_DIGITS]


def legacy_batch_payment_id(customer_id: str, merchant_reference: str, secret: bytes) -> str:
    """The id the earlier code derived (HMAC under the raw fingerprint secret): looked up so a
    file ingested before this version and uploaded again after it stays a duplicate. It can only
    be computed while that secret version is live, i.e. until the second rotation."""
    message = f"payment-id:batch:{customer_id}\x1f{merchant_reference}".encode("utf-8")
    return PAYMENT_ID_PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()[:PAYMENT_ID_HEX_DIGITS]


def customer_counter(customer_id: str) -> str:
    return f"customer#{customer_id}"


def card_counter(fingerprint: str) -> str:
    return f"card#{fingerprint}"
