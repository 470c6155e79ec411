"""The transactions table: create once, read, and move a payment forward only.

Design decisions:
- A payment is created with `attribute_not_exists(payment_id)`, inside the transaction that
  also writes its idempotency record and velocity events (payments.py, batch.py): nothing ever
  writes over a payment.
- Status changes are conditional updates: the condition names the statuses the payment may
  come from, so a payment never moves backwards and never settles twice, whatever the order
  in which retries and duplicate messages arrive.
- The API representation is built here from the stored item: brand and last four only.
- Every payment carries the merchant_id it was created for; `get_owned` answers None for
  another merchant's payment, exactly as for a payment that does not exist, so an API caller
  cannot even learn that an id exists. Customer histories are the merchant's own (filtered by
  merchant_id: customer ids are per-merchant names).
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import aws
from .shapes import Item, JsonObject, TransactAction

if TYPE_CHECKING:  # types only: the read-only functions do not import the validation rules
    from .fraud import Risk
    from .validation import PaymentRequest

# decision of the fraud rules -> status of a new payment
DECISION_STATUS = {"approve": "approved", "review": "review", "decline": "declined"}
# status -> statuses it may move to; anything not listed is final
TRANSITIONS: dict[str, set[str]] = {
    "review": {"approved", "declined"},
    "approved": {"settled", "failed"},
}
FINAL_STATUSES = {"declined", "settled", "failed"}


class InvalidTransition(Exception):
    def __init__(self, payment_id: str, current: str | None, wanted: str):
        super().__init__(f"payment {payment_id} cannot move from {current} to {wanted}")
        self.payment_id = payment_id
        self.current = current
        self.wanted = wanted


class PaymentNotFound(Exception):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def table_name() -> str:
    return aws.env("TRANSACTIONS_TABLE")


def build_item(merchant_id: str, request: PaymentRequest, payment_id: str, risk: Risk,
               fingerprints: tuple[str, ...], created_at: str, source: str) -> Item:
    """The stored item. Attributes that are keys, conditions or money stay top-level; the
    immutable rest (card summary, risk, merchant fields) is one JSON document `details`, which
    keeps items small (see repository.expand for the read side). `card_fingerprints` are the
    keyed fingerprints under every key version live at creation (current first): the counters
    the payment was counted in."""
    details = {
        "card": request.card.as_dict(),
        "card_fingerprint": fingerprints[0],
        "card_fingerprints": list(fingerprints),
        "risk": risk.as_dict(),
        "merchant_reference": request.merchant_reference,
        "description": request.description,
        "metadata": request.metadata or None,
        "ip_address": request.ip_address,
        "billing_country": request.billing_country,
    }
    return {
        "payment_id": payment_id,
        "merchant_id": merchant_id,
        "status": DECISION_STATUS[risk.decision],
        "amount": request.amount,
        "currency": request.currency,
        "customer_id": request.customer_id,
        "created_at": created_at,
        "source": source if source != "batch" else None,  # batch items carry batch_ref instead
        "details": json.dumps({key: value for key, value in details.items() if value is not None},
                              sort_keys=True, separators=(",", ":")),
    }


def create_action(item: Item) -> TransactAction:
    """The transaction action that writes a new payment, never over an existing one."""
    return {"Put": {"TableName": table_name(), "Item": aws.to_dynamo(item),
                    "ConditionExpression": "attribute_not_exists(payment_id)"}}


def get(payment_id: str) -> Item | None:
    answer = aws.client("dynamodb").get_item(
        TableName=table_name(), Key={"payment_id": {"S": payment_id}}, ConsistentRead=True,
    )
    return expand(aws.from_dynamo(answer["Item"])) if "Item" in answer else None


def get_owned(payment_id: str, merchant_id: str) -> Item | None:
    """The payment if `merchant_id` created it; None otherwise (absent and foreign look alike)."""
    item = get(payment_id)
    return item if item is not None and item.get("merchant_id") == merchant_id else None


def transition(payment_id: str, wanted: str, now: datetime, extra: Item | None = None) -> Item:
    """Move a payment to `wanted` if its current status allows it; return the new item."""
    allowed_from = sorted(status for status, targets in TRANSITIONS.items() if wanted in targets)
    if not allowed_from:
        raise InvalidTransition(payment_id, None, wanted)
    names = {"#status": "status", "#updated_at": "updated_at", "#version": "version"}
    values = {":wanted": wanted, ":now": iso(now), ":one": 1}
    sets = ["#status = :wanted", "#updated_at = :now"]
    for index, (name, value) in enumerate(sorted((extra or {}).items())):
        names[f"#x{index}"] = name
        values[f":x{index}"] = value
        sets.append(f"#x{index} = :x{index}")
    placeholders = []
    for index, status in enumerate(allowed_from):
        values[f":from{index}"] = status
        placeholders.append(f":from{index}")
    client = aws.client("dynamodb")
    try:
        answer = client.update_item(
            TableName=table_name(), Key={"payment_id": {"S": payment_id}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD #version :one",
            ConditionExpression=f"attribute_exists(payment_id) AND #status IN ({', '.join(placeholders)})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=aws.to_dynamo(values),
            ReturnValues="ALL_NEW",
        )
    except client.exceptions.ConditionalCheckFailedException:
        current = get(payment_id)
        if current is None:
            raise PaymentNotFound(payment_id) from None
        raise InvalidTransition(payment_id, current.get("status"), wanted) from None
    return expand(aws.from_dynamo(answer["Attributes"]))


def customer_history(merchant_id: str, customer_id: str, limit: int = 50) -> list[Item]:
    """The merchant's customer's most recent payments, newest first (GSI by-customer). The
    filter drops another merchant's customer of the same name; Limit counts before the filter,
    so such a collision can only shorten the history, never mix it."""
    answer = aws.client("dynamodb").query(
        TableName=table_name(), IndexName="by-customer",
        KeyConditionExpression="customer_id = :customer", FilterExpression="merchant_id = :merchant",
        ExpressionAttributeValues={":customer": {"S": customer_id}, ":merchant": {"S": merchant_id}},
        ScanIndexForward=False, Limit=limit,
    )
    return [expand(aws.from_dynamo(item)) for item in answer.get("Items", [])]


def expand(item: Item) -> Item:
    """The stored item with its `details` document unpacked into card, risk, merchant fields."""
    details = item.pop("details", None)
    if details:
        for key, value in json.loads(details).items():
            item.setdefault(key, value)
    return item


def card_expiry(item: Item) -> tuple[int, int]:
    """(year, month) of the card of an expanded item."""
    return int(item["card"]["exp_year"]), int(item["card"]["exp_month"])


def representation(item: Item) -> JsonObject:
    """The API view of a stored payment (matches the OpenAPI Payment schema)."""
    card, risk = item["card"], item["risk"]
    view: JsonObject = {
        "payment_id": item["payment_id"],
        "status": item["status"],
        "amount": int(item["amount"]),
        "currency": item["currency"],
        "customer_id": item["customer_id"],
        "card": {"brand": card["brand"], "last4": card["last4"],
                 "exp_month": int(card["exp_month"]), "exp_year": int(card["exp_year"])},
        "risk": {"score": int(risk["score"]), "level": risk["level"], "reasons": list(risk["reasons"])},
        "created_at": item["created_at"],
    }
    for optional in ("merchant_reference", "description", "metadata", "billing_country", "settled_at"):
        if item.get(optional) not in (None, "", {}):
            view[optional] = item[optional]
    return view
