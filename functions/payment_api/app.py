"""POST /payments and GET /payments/{payment_id}.

GET answers 404 for any id that names no payment of the caller's merchant: another merchant's
payment (never 403: that would confirm the id exists) and a malformed id (it cannot name one,
so DynamoDB is not asked). 400 stays for requests that are invalid in another way. Both routes
refuse with 401 a request without the authorizer's merchant id.
"""
from __future__ import annotations

import re

from paylib import apigw, idempotency, payments, repository, snapstart
from paylib.errors import ApiError, response
from paylib.handlers import api_endpoint
from paylib.observability import lambda_handler
from paylib.validation import parse_payment_request

PAYMENT_ID = re.compile(r"pay_[0-9a-f]{24}")
SERVICES = ("dynamodb", "sqs", "secretsmanager")
# SnapStart hooks (docs/payments.md): harmless where SnapStart is off, ready where it is on.
snapstart.register(SERVICES)


def create(event: dict) -> dict:
    merchant_id = apigw.merchant_id(event)  # first: without a merchant nothing else is looked at (401)
    body = apigw.json_body(event)
    request = parse_payment_request(body)
    key = idempotency.validate_key(apigw.header(event, "Idempotency-Key"))
    status, view = payments.create_payment(request, body, merchant_id, key)
    return response(status, view, {"Location": f"/payments/{view['payment_id']}"})


def read(event: dict) -> dict:
    merchant_id = apigw.merchant_id(event)
    payment_id = apigw.path_parameter(event, "payment_id")
    item = repository.get_owned(payment_id, merchant_id) if payment_id and PAYMENT_ID.fullmatch(payment_id) else None
    if item is None:
        raise ApiError(404, "payment_not_found", "no payment with this id", "payment_id")
    return response(200, repository.representation(item))


@api_endpoint
def route(event: dict, context: object) -> dict:
    method, resource = event.get("httpMethod"), event.get("resource")
    if method == "POST" and resource == "/payments":
        return create(event)
    if method == "GET" and resource == "/payments/{payment_id}":
        return read(event)
    raise ApiError(404, "route_not_found", "no such operation")


@lambda_handler
def handler(event: dict, context: object) -> dict:
    return route(event, context)
