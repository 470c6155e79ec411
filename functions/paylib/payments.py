"""Creating a payment: the one code path behind POST /payments.

Order of writes, chosen so that a crash at any point is repaired by the client's retry with
the same Idempotency-Key and nothing is done twice:
1. validation (no writes; a rejected request writes nothing),
2. idempotency lock (conditional put; 409/422/replay answered here),
3. the payment id is derived from the idempotency record (HMAC), so a retry finds the same id,
4. velocity counters (idempotent per payment id and created_at bucket),
5. the payment item (conditional create; a retry reuses the stored one),
6. approved payments are sent to the settlement queue (at least once; settlement is a
   conditional state change, so a second message is harmless),
7. the answer is stored in the idempotency record.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Optional

from . import aws, fraud, idempotency, keys, repository
from .observability import MetricUnit, logger, metrics
from .validation import PaymentRequest

OPERATION = "create-payment"
DECISION_STATUS = {"approve": "approved", "review": "review", "decline": "declined"}


def derive_payment_id(namespace: str, identity: str, key: bytes) -> str:
    digest = hmac.new(key, f"payment-id:{namespace}:{identity}".encode("utf-8"), hashlib.sha256).hexdigest()
    return "pay_" + digest[:24]


def candidate_for(request: PaymentRequest, payment_id: str, key: bytes) -> fraud.Candidate:
    return fraud.Candidate(
        payment_id=payment_id, customer_id=request.customer_id,
        card_fingerprint=request.fingerprint(key), amount=request.amount,
        currency=request.currency, billing_country=request.billing_country,
    )


def build_item(request: PaymentRequest, payment_id: str, risk: fraud.Risk, fingerprint: str,
               created_at: str, source: str) -> dict:
    """The stored item. Attributes that are keys, conditions or money stay top-level; the
    immutable rest (card summary, risk, merchant fields) is one JSON document `details`, which
    keeps items small and a batch write cheap (see repository.expand for the read side)."""
    details = {
        "card": request.card.as_dict(),
        "card_fingerprint": fingerprint,
        "risk": risk.as_dict(),
        "merchant_reference": request.merchant_reference,
        "description": request.description,
        "metadata": request.metadata or None,
        "ip_address": request.ip_address,
        "billing_country": request.billing_country,
    }
    return {
        "payment_id": payment_id,
        "status": DECISION_STATUS[risk.decision],
        "amount": request.amount,
        "currency": request.currency,
        "customer_id": request.customer_id,
        "created_at": created_at,
        "source": source if source != "batch" else None,  # batch items carry batch_ref instead
        "details": json.dumps({key: value for key, value in details.items() if value is not None},
                              sort_keys=True, separators=(",", ":")),
    }


def enqueue_for_settlement(payment_ids: list[str]) -> None:
    """One message may carry many payment ids (batch ingestion sends up to 100)."""
    aws.client("sqs").send_message(
        QueueUrl=aws.env("PAYMENT_QUEUE_URL"),
        MessageBody=json.dumps({"payment_ids": payment_ids}, separators=(",", ":")),
    )


def create_payment(request: PaymentRequest, body: dict, scope: str, idempotency_key: str,
                   now: Optional[datetime] = None) -> tuple[int, dict]:
    started = time.monotonic()
    now = now or repository.utc_now()
    key = keys.fingerprint_key()
    record = idempotency.record_key(scope, OPERATION, idempotency_key)
    request_hash = idempotency.request_fingerprint(body, key)
    outcome = idempotency.begin(record, request_hash, now, repository.iso(now))
    if outcome.kind == "REPLAY":
        logger.info("idempotent replay", extra={"payment_id": outcome.body.get("payment_id")})
        return outcome.status, outcome.body
    try:
        status, view = _create(request, record, key, outcome.created_at, now)
        idempotency.complete(record, request_hash, status, view)
    except Exception:
        idempotency.release(record, request_hash)
        raise
    elapsed_ms = int((time.monotonic() - started) * 1000)
    metrics.add_metric(name="ProcessingTime", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    return status, view


def _create(request: PaymentRequest, record: str, key: bytes, created_at: str, now: datetime) -> tuple[int, dict]:
    payment_id = derive_payment_id("api", record, key)
    existing = repository.get(payment_id)
    if existing is None:
        created_moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        candidate = candidate_for(request, payment_id, key)
        history = repository.customer_history(request.customer_id)
        risk = fraud.screen(candidate, now, history)
        fraud.record(candidate, created_moment)
        item = build_item(request, payment_id, risk, candidate.card_fingerprint, created_at, "api")
        if not repository.create(item):
            item = repository.get(payment_id)
        else:
            item = repository.expand(dict(item))
            _count_decision(item["status"])
            logger.info("payment created", extra={"payment_id": payment_id, "status": item["status"],
                                                  "risk_score": risk.score, "reasons": risk.reasons})
    else:
        item = existing
    if item["status"] == "approved":
        enqueue_for_settlement([payment_id])
    return 201, repository.representation(item)


def _count_decision(status: str) -> None:
    if status == "declined":
        metrics.add_metric(name="PaymentsDeclined", unit=MetricUnit.Count, value=1)
    elif status == "approved":
        metrics.add_metric(name="PaymentsAccepted", unit=MetricUnit.Count, value=1)
