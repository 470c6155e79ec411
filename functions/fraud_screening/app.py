"""POST /fraud-check (read-only scoring), and the workflow's "FraudCheck" step."""
from __future__ import annotations

from datetime import datetime

from paylib import apigw, fraud, keys, repository
from paylib.errors import response
from paylib.handlers import api_endpoint, is_api_event
from paylib.observability import logger, metrics, tracer
from paylib.payments import candidate_for
from paylib.validation import parse_payment_request

# The API check scores a body that is not a payment yet: it gets a placeholder id that no
# stored payment can have, so it is never excluded from counts and never counted.
UNSAVED_PAYMENT_ID = "unsaved"


@api_endpoint
def check_request(event: dict, context: object) -> dict:
    request = parse_payment_request(apigw.json_body(event))
    candidate = candidate_for(request, UNSAVED_PAYMENT_ID, keys.fingerprint_key())
    risk = fraud.screen(candidate, repository.utc_now(), repository.customer_history(request.customer_id))
    return response(200, {"decision": risk.decision, "risk": risk.as_dict()})


class PaymentInvalid(Exception):
    pass


def screen_stored(event: dict) -> dict:
    payment_id = event.get("payment_id") if isinstance(event, dict) else None
    item = repository.get(payment_id) if isinstance(payment_id, str) else None
    if item is None:
        raise PaymentInvalid("unknown payment")
    candidate = fraud.Candidate(payment_id, item["customer_id"], item["card_fingerprint"], int(item["amount"]),
                                item["currency"], item.get("billing_country"))
    created_at = datetime.fromisoformat(item["created_at"].replace("Z", "+00:00"))
    risk = fraud.screen(candidate, repository.utc_now(), repository.customer_history(item["customer_id"]))
    fraud.record(candidate, created_at)  # no-op when the API already counted this payment
    logger.info("payment screened", extra={"payment_id": payment_id, "decision": risk.decision, "score": risk.score})
    return {"payment_id": payment_id, "decision": risk.decision, "risk": risk.as_dict()}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    if is_api_event(event):
        return check_request(event, context)
    return screen_stored(event)
