"""POST /fraud-check (read-only scoring), and the workflow's "FraudCheck" step."""
from __future__ import annotations

from paylib import apigw, fraud, keys, repository, snapstart
from paylib.errors import response
from paylib.handlers import api_endpoint, is_api_event
from paylib.observability import lambda_handler, logger
from paylib.validation import parse_payment_request

# The API check scores a body that is not a payment yet: it gets a placeholder id that no
# stored payment can have, so it is never excluded from counts and never counted.
UNSAVED_PAYMENT_ID = "unsaved"
# SnapStart hooks (docs/payments.md): harmless where SnapStart is off, ready where it is on.
snapstart.register(("dynamodb", "secretsmanager"))


@api_endpoint
def check_request(event: dict, context: object) -> dict:
    merchant_id = apigw.merchant_id(event)
    request = parse_payment_request(apigw.json_body(event))
    candidate = fraud.candidate_for(merchant_id, request, UNSAVED_PAYMENT_ID, keys.keyring())
    risk = _screen(candidate, int(repository.utc_now().timestamp()))
    return response(200, {"decision": risk.decision, "risk": risk.as_dict()})


def _screen(candidate: fraud.Candidate, now_epoch: int) -> fraud.Risk:
    velocity = fraud.velocity_counts(fraud.read_counters(candidate), candidate.payment_id, now_epoch)
    return fraud.score(candidate, repository.customer_history(candidate.merchant_id, candidate.customer_id), velocity)


class PaymentInvalid(Exception):
    pass


def screen_stored(event: dict) -> dict:
    payment_id = event.get("payment_id") if isinstance(event, dict) else None
    item = repository.get(payment_id) if isinstance(payment_id, str) else None
    if item is None:
        raise PaymentInvalid("unknown payment")
    if "merchant_id" not in item:  # created before merchants existed and not backfilled yet
        raise PaymentInvalid("payment belongs to no merchant")
    fingerprints = tuple(item.get("card_fingerprints") or [item["card_fingerprint"]])
    candidate = fraud.Candidate(item["merchant_id"], payment_id, item["customer_id"], fingerprints,
                                int(item["amount"]), item["currency"], item.get("billing_country"))
    # Scored as of now; the payment was counted when it was created (never counted twice).
    risk = _screen(candidate, int(repository.utc_now().timestamp()))
    logger.info("payment screened", extra={"payment_id": payment_id, "decision": risk.decision, "score": risk.score})
    return {"payment_id": payment_id, "decision": risk.decision, "risk": risk.as_dict()}


@lambda_handler
def handler(event: dict, context: object) -> dict:
    if is_api_event(event):
        return check_request(event, context)
    return screen_stored(event)
