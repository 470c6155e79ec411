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
- Merchant scoping: every key that names something a merchant owns starts from the merchant id
  (from the authorizer's context, or the batch file's prefix): idempotency records, batch
  payment ids and customer counters. Customer ids are the merchant's own namespace (cus_1 at
  one merchant is not cus_1 at another), so neither their payments nor their velocity mix.
- Card counters stay platform-wide on purpose: a card is the same card at every merchant, and
  card testing spreads over merchants. They hold no merchant's data (a keyed fingerprint and
  payment ids) and only ever raise a risk score.
- Nothing else builds these keys.
"""
from __future__ import annotations

import hashlib
import secrets

PAYMENT_ID_PREFIX = "pay_"
PAYMENT_ID_HEX_DIGITS = 24


def idempotency_record_key(merchant_id: str, operation: str, key: str) -> str:
    """`<merchant_id>#<operation>#<Idempotency-Key>`: two merchants never share a key."""
    return f"{merchant_id}#{operation}#{key}"


def new_payment_id() -> str:
    return PAYMENT_ID_PREFIX + secrets.token_hex(PAYMENT_ID_HEX_DIGITS // 2)


def batch_payment_id(merchant_id: str, customer_id: str, merchant_reference: str) -> str:
    identity = f"batch-row\x1f{merchant_id}\x1f{customer_id}\x1f{merchant_reference}".encode()
    return PAYMENT_ID_PREFIX + hashlib.sha256(identity).hexdigest()[:PAYMENT_ID_HEX_DIGITS]


def customer_counter(merchant_id: str, customer_id: str) -> str:
    return f"customer#{merchant_id}#{customer_id}"


def card_counter(fingerprint: str) -> str:
    return f"card#{fingerprint}"
