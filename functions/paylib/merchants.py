"""Merchants and their secret API keys: the items of the Merchants table, how a key is hashed,
and the one read the authorizer makes. Shared by functions/authorizer and tools/merchants.py.

Design decisions:
- A secret key is `sk_<env>_<token>` with secrets.token_urlsafe(32) (256 bits). It is shown
  once, at issue, and stored only as HMAC-SHA-256 under the pepper, inside the partition key
  `KEY#<hex>`: the authorizer finds a key by its hash with one GetItem. A copy of the table (a
  backup, an export) holds no usable key, and guessing offline needs the pepper too.
- The pepper is its own Secrets Manager secret (MERCHANT_KEY_PEPPER_SECRET_ARN), loaded and
  cached by keys.py (so a SnapStart restore drops it), with its own HKDF purpose label. Only
  AWSCURRENT is used: looking a key up under two pepper versions would double the authorizer's
  reads. Rotating the pepper is therefore a re-keying (every merchant gets new keys), a planned
  operation, never a schedule.
- A KEY item carries everything the authorizer decides on (merchant id, revoked, expires_at,
  the merchant's status, the usage-plan key), so a request costs one read. merchant_status is
  a copy the tool keeps in step in the same transaction as the merchant's status change.
- A MERCHANT item names its unrevoked keys (`keys`: key_id -> hash) and carries a `version`;
  the tool makes every key issue, revoke and status change conditional on the version it read,
  so two operators at once cannot issue a third active key or suspend past a new key.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from . import aws, keys
from .shapes import Item

PEPPER_SETTING = "MERCHANT_KEY_PEPPER_SECRET_ARN"
PURPOSE_KEY_HASH = b"payments/merchant-secret-key/v1"
MERCHANT_PREFIX, KEY_PREFIX = "MERCHANT#", "KEY#"
MERCHANT_ID = re.compile(r"mer_[0-9a-f]{24}")
KEY_ID = re.compile(r"key_[0-9a-f]{12}")
# sk_<environment>_<at least 43 url-safe characters: 32 random bytes>
SECRET_KEY = re.compile(r"sk_[a-z]{2,12}_[A-Za-z0-9_-]{43,128}")
MAX_ACTIVE_KEYS = 2  # the one in use and its successor: keys rotate without downtime


class MerchantStatus(str, Enum):  # noqa: UP042 StrEnum would change str() of a member (stored and logged)
    ACTIVE = "active"
    SUSPENDED = "suspended"


class KeyVerdict(Enum):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    MERCHANT_SUSPENDED = "merchant_suspended"


def new_merchant_id() -> str:
    return "mer_" + secrets.token_hex(12)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def new_secret_key(environment: str) -> str:
    return f"sk_{environment}_{secrets.token_urlsafe(32)}"


def looks_like_secret_key(value: object) -> bool:
    return isinstance(value, str) and SECRET_KEY.fullmatch(value) is not None


def pepper_from_secret(secret: bytes) -> bytes:
    """The HMAC key of secret keys, derived from the pepper secret's material."""
    return keys.hkdf_sha256(secret, b"", PURPOSE_KEY_HASH)


def current_pepper(clock: Callable[[], float] = time.monotonic) -> bytes:
    return pepper_from_secret(keys.keyring(clock, setting=PEPPER_SETTING).current.secret)


def key_hash(pepper: bytes, secret_key: str) -> str:
    return hmac.new(pepper, secret_key.encode("ascii"), hashlib.sha256).hexdigest()


def merchant_pk(merchant_id: str) -> str:
    return MERCHANT_PREFIX + merchant_id


def key_pk(hashed: str) -> str:
    return KEY_PREFIX + hashed


def table_name() -> str:
    return aws.env("MERCHANTS_TABLE")


def is_active(key_item: Item, now_epoch: int) -> bool:
    """Not revoked and not expired (whatever the merchant's status)."""
    expires_at = key_item.get("expires_at")
    return not key_item.get("revoked") and (expires_at is None or int(expires_at) > now_epoch)


@dataclass(frozen=True)
class KeyRecord:
    """A KEY item as the authorizer reads it (never the hash, never the key)."""

    merchant_id: str
    key_id: str
    revoked: bool
    expires_at: int | None
    merchant_status: MerchantStatus
    usage_key: str

    @classmethod
    def from_item(cls, item: Item) -> KeyRecord:
        expires_at = item.get("expires_at")
        return cls(item["merchant_id"], item["key_id"], bool(item.get("revoked")),
                   None if expires_at is None else int(expires_at), MerchantStatus(item["merchant_status"]),
                   item["usage_key"])

    def verdict(self, now_epoch: int) -> KeyVerdict:
        if self.revoked:
            return KeyVerdict.REVOKED
        if self.expires_at is not None and self.expires_at <= now_epoch:
            return KeyVerdict.EXPIRED
        if self.merchant_status is not MerchantStatus.ACTIVE:
            return KeyVerdict.MERCHANT_SUSPENDED
        return KeyVerdict.VALID


def find_key(secret_key: str, pepper: bytes) -> KeyRecord | None:
    """The key's record, by one GetItem on its hash; None when no such key was ever issued.
    The stored hash is compared in constant time too (the lookup itself is by equality)."""
    hashed = key_hash(pepper, secret_key)
    answer = aws.client("dynamodb").get_item(TableName=table_name(), Key={"pk": {"S": key_pk(hashed)}},
                                             ConsistentRead=True)
    item = answer.get("Item")
    if item is None or not hmac.compare_digest(item["pk"]["S"], key_pk(hashed)):
        return None
    return KeyRecord.from_item(aws.from_dynamo(item))


def merchant_status(merchant_id: str) -> MerchantStatus | None:
    """The status of a merchant; None for an id that names no merchant (or is malformed)."""
    if not MERCHANT_ID.fullmatch(merchant_id):
        return None
    answer = aws.client("dynamodb").get_item(TableName=table_name(), Key={"pk": {"S": merchant_pk(merchant_id)}},
                                             ConsistentRead=True, ProjectionExpression="#status",
                                             ExpressionAttributeNames={"#status": "status"})
    item = answer.get("Item")
    return MerchantStatus(item["status"]["S"]) if item else None


def merchant_item(merchant_id: str, name: str, usage_key: str, api_key_id: str, created_at: str) -> Item:
    return {"pk": merchant_pk(merchant_id), "merchant_id": merchant_id, "name": name,
            "status": MerchantStatus.ACTIVE.value, "created_at": created_at, "usage_key": usage_key,
            "api_key_id": api_key_id, "keys": {}, "version": 1}


def key_item(hashed: str, merchant: Item, key_id: str, created_at: str, expires_at: int | None) -> Item:
    return {"pk": key_pk(hashed), "merchant_id": merchant["merchant_id"], "key_id": key_id,
            "created_at": created_at, "expires_at": expires_at, "revoked": False,
            "merchant_status": merchant["status"], "usage_key": merchant["usage_key"]}
