"""The card fingerprint key, read from Secrets Manager and cached in the function.

Design decision: the secret holds either a plain string (GenerateSecretString) or a JSON object
with a "key" field; both are accepted so the security layer may choose. The key is cached for
five minutes so a rotation is picked up without a cold start and without a call per request.
"""
from __future__ import annotations

import json
import time

from . import aws

CACHE_SECONDS = 300
_cache: dict[str, tuple[bytes, float]] = {}


def fingerprint_key() -> bytes:
    secret_arn = aws.env("CARD_FINGERPRINT_SECRET_ARN")
    cached = _cache.get(secret_arn)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    answer = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    if "SecretBinary" in answer and answer["SecretBinary"]:
        key = bytes(answer["SecretBinary"])
    else:
        text = answer["SecretString"]
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        key = (parsed["key"] if isinstance(parsed, dict) and "key" in parsed else text).encode("utf-8")
    if len(key) < 16:
        raise aws.MissingConfiguration("card fingerprint key is shorter than 16 bytes")
    _cache[secret_arn] = (key, time.monotonic() + CACHE_SECONDS)
    return key


def clear_cache() -> None:
    _cache.clear()
