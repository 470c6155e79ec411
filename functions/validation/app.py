"""POST /payments/validate, and the workflow's "Validate" step on a stored payment."""
from __future__ import annotations

from paylib import apigw, cards, money, repository, snapstart
from paylib.errors import response
from paylib.handlers import api_endpoint, is_api_event
from paylib.observability import lambda_handler
from paylib.validation import parse_payment_request

# SnapStart hooks (docs/payments.md): harmless where SnapStart is off, ready where it is on.
snapstart.register(("dynamodb",))


class PaymentInvalid(Exception):
    """The stored payment cannot be processed (the workflow catches this name)."""


@api_endpoint
def validate_request(event: dict, context: object) -> dict:
    request = parse_payment_request(apigw.json_body(event))
    return response(200, {"valid": True, "amount": request.amount, "currency": request.currency,
                          "currency_exponent": money.currency_exponent(request.currency),
                          "card": request.card.as_dict()})


def validate_stored(event: dict) -> dict:
    payment_id = event.get("payment_id") if isinstance(event, dict) else None
    if not isinstance(payment_id, str):
        raise PaymentInvalid("the workflow input has no payment_id")
    item = repository.get(payment_id)
    if item is None:
        raise PaymentInvalid(f"payment {payment_id} does not exist")
    if item["status"] not in ("approved", "review"):
        raise PaymentInvalid(f"payment {payment_id} is {item['status']} and cannot be processed")
    currency = item["currency"]
    if currency not in money.CURRENCY_EXPONENTS or not 0 < int(item["amount"]) <= money.amount_cap(currency):
        raise PaymentInvalid(f"payment {payment_id} has an invalid amount or currency")
    try:
        year, month = repository.card_expiry(item)
        cards.check_expiry(month, year)
    except cards.CardError:
        raise PaymentInvalid(f"payment {payment_id}: the card has expired") from None
    return {"payment_id": payment_id, "status": item["status"]}


@lambda_handler
def handler(event: dict, context: object) -> dict:
    if is_api_event(event):
        return validate_request(event, context)
    return validate_stored(event)
