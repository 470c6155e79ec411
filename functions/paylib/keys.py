"""Keys derived from the card fingerprint secret: one key per purpose, for every live version.
The merchant key pepper (merchants.py) is loaded and cached by the same code, from its own
secret (`keyring(setting=...)`), so a SnapStart restore drops both.

Design decisions:
- One secret, one job: the Secrets Manager secret is only key material. Each purpose gets its
  own key by HKDF-SHA256 (RFC 5869) with a purpose label, so a value computed for one purpose
  (a card fingerprint) says nothing about another (a request hash), and adding a purpose never
  reuses a key. Payment ids use no key at all (see identity.py): a rotation cannot change them.
- Rotation: Secrets Manager keeps the new version under AWSCURRENT and the one before under
  AWSPREVIOUS; both are loaded. New values are computed with `current`; stored values are
  matched against every version, current first ("checked in order"), so card fingerprints and
  request hashes keep matching through a rotation. A rotation interval must therefore be longer
  than the longest-lived value that is matched: 25 h (velocity events; idempotency records live
  24 h) plus the cache lifetime below. A version is named by its Secrets Manager VersionId.
- Accepted secret formats: a plain string (GenerateSecretString) or JSON {"key": ...}; binary.
  At least 16 bytes.
- Cached for CACHE_SECONDS so a rotation is picked up without a cold start and without a call
  per request; `clear_cache()` drops the cache (SnapStart restore, tests).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import aws
from .shapes import JsonObject

CACHE_SECONDS = 300
MIN_SECRET_BYTES = 16
STAGES = ("AWSCURRENT", "AWSPREVIOUS")  # current first: the order values are checked in
PURPOSE_FINGERPRINT = b"payments/card-fingerprint/v1"
PURPOSE_REQUEST_HASH = b"payments/idempotency-request-hash/v1"

CARD_FINGERPRINT_SETTING = "CARD_FINGERPRINT_SECRET_ARN"

_cache: dict[str, tuple[Keyring, float]] = {}


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF (RFC 5869) with SHA-256: extract with the salt, then expand with the purpose label."""
    pseudo_random_key = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    output, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(pseudo_random_key, block + info + bytes([counter]), hashlib.sha256).digest()
        output += block
    return output[:length]


@dataclass(frozen=True)
class KeyVersion:
    version_id: str
    secret: bytes = field(repr=False)

    @property
    def fingerprint_key(self) -> bytes:
        return hkdf_sha256(self.secret, b"", PURPOSE_FINGERPRINT)

    @property
    def request_hash_key(self) -> bytes:
        return hkdf_sha256(self.secret, b"", PURPOSE_REQUEST_HASH)


@dataclass(frozen=True)
class Keyring:
    versions: tuple[KeyVersion, ...]  # current first

    @property
    def current(self) -> KeyVersion:
        return self.versions[0]

    def version(self, version_id: str) -> KeyVersion | None:
        return next((version for version in self.versions if version.version_id == version_id), None)


def secret_bytes(answer: JsonObject) -> bytes:
    """The key material of a GetSecretValue answer (binary, plain string or JSON {\"key\": ...})."""
    if answer.get("SecretBinary"):
        return bytes(answer["SecretBinary"])
    text = str(answer["SecretString"])
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return str(parsed["key"] if isinstance(parsed, dict) and "key" in parsed else text).encode("utf-8")


def _load(secret_arn: str, setting: str) -> Keyring:
    client = aws.client("secretsmanager")
    versions: list[KeyVersion] = []
    for stage in STAGES:
        try:
            answer = client.get_secret_value(SecretId=secret_arn, VersionStage=stage)
        except client.exceptions.ResourceNotFoundException:
            continue  # no previous version before the first rotation
        secret = secret_bytes(answer)
        if len(secret) < MIN_SECRET_BYTES:
            raise aws.MissingConfiguration(f"the secret named by {setting} is shorter than {MIN_SECRET_BYTES} bytes")
        if all(version.version_id != answer["VersionId"] for version in versions):
            versions.append(KeyVersion(answer["VersionId"], secret))
    if not versions:
        raise aws.MissingConfiguration(f"the secret named by {setting} has no current version")
    return Keyring(tuple(versions))


def keyring(clock: Callable[[], float] = time.monotonic, setting: str = CARD_FINGERPRINT_SETTING) -> Keyring:
    """The live versions of the secret whose ARN the environment variable `setting` holds."""
    secret_arn = aws.env(setting)
    cached = _cache.get(secret_arn)
    if cached and cached[1] > clock():
        return cached[0]
    ring = _load(secret_arn, setting)
    _cache[secret_arn] = (ring, clock() + CACHE_SECONDS)
    return ring


def clear_cache() -> None:
    _cache.clear()
