"""Lambda REQUEST authorizer of the payment API: `Authorization: Bearer sk_...` -> merchant.

- No header, not a bearer token, not shaped like a secret key, or a key never issued: raise
  Exception("Unauthorized"), the one message API Gateway turns into 401.
- A revoked or expired key, or a suspended merchant's key: an explicit Deny (403). The caller
  did hold a real key, so the answer says "forbidden", not "who are you".
- A valid key: Allow on every method and route of the stage (API Gateway caches the policy per
  Authorization value and reuses it for every route, so a policy naming one route would deny
  the next), principalId and context.merchant_id = the merchant, context.key_id for logs, and
  usageIdentifierKey = the merchant's API Gateway key value (usage plans only; not a credential).
At most one DynamoDB read per uncached request (merchants.find_key). The secret key is never
logged: logs carry the key_id, or the first hex digits of its hash when the key is unknown.
"""
from __future__ import annotations

import time

from paylib import merchants, snapstart
from paylib.observability import lambda_handler, logger

UNAUTHORIZED = "Unauthorized"  # exactly this text: API Gateway answers 401 for it
BEARER = "bearer "
SERVICES = ("dynamodb", "secretsmanager")
snapstart.register(SERVICES)


def bearer_token(event: dict) -> str | None:
    headers = event.get("headers") or {}
    value = next((value for name, value in headers.items()
                  if isinstance(name, str) and name.lower() == "authorization"), None)
    if not isinstance(value, str) or value[:len(BEARER)].lower() != BEARER:
        return None
    return value[len(BEARER):].strip()


def stage_resource(method_arn: str) -> str:
    """arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<method>/<path> -> .../<stage>/*/*"""
    arn_prefix, _, path = method_arn.partition("/")
    stage = path.split("/", 1)[0]
    if not arn_prefix.startswith("arn:") or not stage:
        raise Exception(UNAUTHORIZED)  # not an API Gateway request: nothing to allow
    return f"{arn_prefix}/{stage}/*/*"


def policy(principal_id: str, effect: str, resource: str) -> dict:
    return {"principalId": principal_id,
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]}}


def authorize(event: dict, now_epoch: int) -> dict:
    resource = stage_resource(str(event.get("methodArn", "")))
    token = bearer_token(event)
    if not merchants.looks_like_secret_key(token):
        logger.info("refused: no well-formed bearer key")
        raise Exception(UNAUTHORIZED)
    pepper = merchants.current_pepper()
    record = merchants.find_key(token, pepper)
    if record is None:
        logger.info("refused: unknown key", extra={"key_hash_prefix": merchants.key_hash(pepper, token)[:8]})
        raise Exception(UNAUTHORIZED)
    verdict = record.verdict(now_epoch)
    log = {"merchant_id": record.merchant_id, "key_id": record.key_id, "verdict": verdict.value}
    if verdict is not merchants.KeyVerdict.VALID:
        logger.info("denied", extra=log)
        return policy(record.merchant_id, "Deny", resource)
    logger.info("allowed", extra=log)
    answer = policy(record.merchant_id, "Allow", resource)
    answer["context"] = {"merchant_id": record.merchant_id, "key_id": record.key_id}
    answer["usageIdentifierKey"] = record.usage_key
    return answer


@lambda_handler
def handler(event: dict, context: object) -> dict:
    return authorize(event, int(time.time()))
