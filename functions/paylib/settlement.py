"""Settlement of approved payments (queue worker) and the audit/notification side effects.

Design decisions:
- approved -> settled (or -> failed when the card expired before settlement) is one
  conditional update; a duplicate message finds the payment already final and only repeats the
  idempotent side effects.
- Side effects come after the state change and are repeated on a retry: the audit object has
  a deterministic key (same content, same key), the notification carries an `event_id`
  (`<payment_id>:<status>`) so consumers can drop the rare duplicate.
- A payment that is not approved (review, declined) is not settled; its message is
  acknowledged with a warning, since retrying cannot change the answer.
"""
from __future__ import annotations

import json
from datetime import datetime

from . import aws, repository
from .observability import MetricUnit, logger, metrics
from .shapes import Item, JsonObject


def audit_key(payment_id: str, status: str, created_at: str) -> str:
    day = created_at[:10].replace("-", "/")
    return f"settlements/{day}/{payment_id}-{status}.json"


def audit_record(item: Item) -> JsonObject:
    view = repository.representation(item)
    return {"event_id": f"{item['payment_id']}:{item['status']}", "event": f"payment.{item['status']}",
            "payment": view, "recorded_at": item.get("updated_at")}


def write_audit(item: Item) -> str:
    key = audit_key(item["payment_id"], item["status"], item["created_at"])
    aws.put_audit_record(key, audit_record(item))
    return key


def notify(item: Item) -> None:
    event = f"payment.{item['status']}"
    message = {"event_id": f"{item['payment_id']}:{item['status']}", "event": event,
               "payment_id": item["payment_id"], "status": item["status"],
               "amount": int(item["amount"]), "currency": item["currency"],
               "customer_id": item["customer_id"]}
    aws.client("sns").publish(
        TopicArn=aws.env("NOTIFICATIONS_TOPIC_ARN"),
        Message=json.dumps(message, sort_keys=True, separators=(",", ":")),
        MessageAttributes={"event": {"DataType": "String", "StringValue": event}},
    )


def settle(payment_id: str, now: datetime | None = None) -> str:
    """Settle one payment; return its final status. Raises on failures worth retrying."""
    now = now or repository.utc_now()
    item = _current(payment_id)
    if item["status"] in ("review", "declined"):
        logger.warning("payment not approved; nothing to settle", extra={"payment_id": payment_id, "status": item["status"]})
        return str(item["status"])
    if item["status"] == "approved":
        wanted = "failed" if _card_expired(item, now) else "settled"
        extra = {"settled_at": repository.iso(now)} if wanted == "settled" else {"failure_reason": "card_expired"}
        try:
            item = repository.transition(payment_id, wanted, now, extra)
            if wanted == "settled":
                metrics.add_metric(name="PaymentsSettled", unit=MetricUnit.Count, value=1)
            logger.info("payment final", extra={"payment_id": payment_id, "status": wanted})
        except repository.InvalidTransition:
            item = _current(payment_id)  # a concurrent worker finished first
    write_audit(item)
    notify(item)
    return str(item["status"])


def _current(payment_id: str) -> Item:
    """The stored payment; PaymentNotFound (the message is retried, then kept in the DLQ) when
    there is none."""
    item = repository.get(payment_id)
    if item is None:
        raise repository.PaymentNotFound(payment_id)
    return item


def _card_expired(item: Item, now: datetime) -> bool:
    return repository.card_expiry(item) < (now.year, now.month)
