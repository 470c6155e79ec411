"""The workflow's "Process" and "Decline" steps: apply the decision to a stored payment.

approve: review -> approved (an approved payment stays approved) and the payment is sent to the
settlement queue; decline: review -> declined. Both are conditional writes, so the workflow's
retries cannot apply a decision twice or move a payment backwards. AWS errors are raised as
TransientError, which the workflow retries with backoff; a forbidden transition is final.
"""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from paylib import repository, settlement_queue
from paylib.errors import TransientError
from paylib.observability import MetricUnit, lambda_handler, logger, metrics


class PaymentStateError(Exception):
    """The decision cannot be applied to the payment in its current state."""


def apply_decision(payment_id: str, decision: str) -> dict:
    now = repository.utc_now()
    item = repository.get(payment_id)
    if item is None:
        raise PaymentStateError(f"payment {payment_id} does not exist")
    wanted = {"approve": "approved", "decline": "declined"}.get(decision)
    if wanted is None:
        raise PaymentStateError(f"decision {decision!r} cannot be processed")
    if item["status"] != wanted:
        try:
            item = repository.transition(payment_id, wanted, now)
        except repository.InvalidTransition as error:
            raise PaymentStateError(str(error)) from None
        metrics.add_metric(name="PaymentsAccepted" if wanted == "approved" else "PaymentsDeclined",
                           unit=MetricUnit.Count, value=1)
    if item["status"] == "approved":
        settlement_queue.enqueue_for_settlement([payment_id])
    logger.info("decision applied", extra={"payment_id": payment_id, "status": item["status"]})
    return {"payment_id": payment_id, "status": item["status"]}


@lambda_handler
def handler(event: dict, context: object) -> dict:
    payment_id = event.get("payment_id") if isinstance(event, dict) else None
    if not isinstance(payment_id, str):
        raise PaymentStateError("the workflow input has no payment_id")
    try:
        return apply_decision(payment_id, str(event.get("decision")))
    except (ClientError, BotoCoreError) as error:
        raise TransientError(type(error).__name__) from None
