"""Idempotency over time: a key reused after its record expired, what the stored request hash
is made of, and a key rotation between a request and its retry."""
from __future__ import annotations

import json

import pytest

from tests.functions.conftest import AMEX, CVC, api_event, card_number, fresh_card, new_key, payment_body, rotate_secret

IDEMPOTENCY_TABLE = "payments-test-idempotency"


@pytest.fixture(scope="module")
def payment_api(aws):
    from tests.functions.conftest import load_app
    return load_app("payment_api")


def post(app, context, body, key):
    answer = app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": key}), context)
    return answer["statusCode"], json.loads(answer["body"])


def get(app, context, payment_id):
    answer = app.handler(api_event("GET", "/payments/{payment_id}", path_parameters={"payment_id": payment_id}), context)
    return answer["statusCode"], json.loads(answer["body"])


def idempotency_records(aws, key: str) -> list[dict]:
    items = aws.dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Items"]
    return [item for item in items if item["idempotency_key"]["S"].endswith("#" + key)]


def expire(aws, key: str) -> None:
    """What the table's TTL does after 24 h: the record is gone."""
    records = idempotency_records(aws, key)
    assert len(records) == 1
    aws.dynamodb.delete_item(TableName=IDEMPOTENCY_TABLE, Key={"idempotency_key": records[0]["idempotency_key"]})


def test_a_key_reused_after_its_record_expired_creates_a_new_payment(payment_api, context, aws):
    key = new_key()
    first_body = payment_body(amount=1250)
    status, first = post(payment_api, context, first_body, key)
    assert status == 201
    expire(aws, key)
    second_body = payment_body(amount=7700, currency="USD")  # other customer, card and amount
    status, second = post(payment_api, context, second_body, key)
    assert status == 201
    assert second["payment_id"] != first["payment_id"]
    assert (second["amount"], second["currency"], second["customer_id"]) == (7700, "USD", second_body["customer_id"])
    assert second["card"]["last4"] == second_body["card"]["number"][-4:]
    assert get(payment_api, context, first["payment_id"]) == (200, first)  # the first payment is untouched
    assert get(payment_api, context, second["payment_id"]) == (200, second)


def test_an_expired_record_not_yet_deleted_by_ttl_counts_as_expired(payment_api, context, aws):
    key = new_key()
    status, first = post(payment_api, context, payment_body(), key)
    assert status == 201
    record = idempotency_records(aws, key)[0]
    aws.dynamodb.update_item(TableName=IDEMPOTENCY_TABLE, Key={"idempotency_key": record["idempotency_key"]},
                             UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": {"N": "1000"}})
    status, second = post(payment_api, context, payment_body(amount=990), key)
    assert status == 201 and second["payment_id"] != first["payment_id"] and second["amount"] == 990


def test_the_request_hash_does_not_depend_on_the_cvc(payment_api, context, aws):
    number = card_number(AMEX)
    body = payment_body(card={"number": number, "exp_month": 3, "exp_year": 2032, "cvc": "1234"})
    other_cvc = json.loads(json.dumps(body))
    other_cvc["card"]["cvc"] = "9876"
    first_key, second_key = new_key(), new_key()
    assert post(payment_api, context, body, first_key)[0] == 201
    assert post(payment_api, context, other_cvc, second_key)[0] == 201
    first_hash = idempotency_records(aws, first_key)[0]["request_hash"]["S"]
    second_hash = idempotency_records(aws, second_key)[0]["request_hash"]["S"]
    assert first_hash == second_hash  # nothing in it can be searched for the CVC


def test_the_request_hash_still_tells_cards_apart(payment_api, context, aws):
    body = payment_body()
    other_card = json.loads(json.dumps(body))
    other_card["card"]["number"] = fresh_card()
    first_key, second_key = new_key(), new_key()
    post(payment_api, context, body, first_key)
    post(payment_api, context, other_card, second_key)
    assert idempotency_records(aws, first_key)[0]["request_hash"] != idempotency_records(aws, second_key)[0]["request_hash"]
    status, answer = post(payment_api, context, other_card, first_key)
    assert (status, answer["error"]["code"]) == (422, "idempotency_key_reused")


def test_a_retry_with_another_cvc_replays_the_first_answer(payment_api, context):
    body, key = payment_body(), new_key()
    status, first = post(payment_api, context, body, key)
    retry = json.loads(json.dumps(body))
    retry["card"]["cvc"] = "000" if body["card"]["cvc"] != "000" else "111"
    assert post(payment_api, context, retry, key) == (status, first)


def test_a_retry_after_a_key_rotation_replays_instead_of_422(payment_api, context, own_secret):
    body, key = payment_body(), new_key()
    status, first = post(payment_api, context, body, key)
    assert status == 201
    rotate_secret(own_secret)
    assert post(payment_api, context, json.loads(json.dumps(body)), key) == (201, first)


def test_no_stored_idempotency_value_holds_the_cvc_or_number(payment_api, context, aws):
    body, key = payment_body(), new_key()
    post(payment_api, context, body, key)
    record = json.dumps(idempotency_records(aws, key)[0])
    assert body["card"]["number"] not in record
    assert f'"{CVC}"' not in record and '"cvc"' not in record


@pytest.mark.parametrize("key", ["order-94111111111111111111", "x5555555555554444123", "ref-41111111111111111100"])
def test_a_key_holding_a_card_number_inside_a_longer_digit_run_is_refused(payment_api, context, aws, key):
    # keys are stored for 24 h: a card number inside a longer run of digits must not be stored
    # either (free-text fields leave long runs alone as order numbers; a key needs no such run)
    from paylib import idempotency
    from paylib.errors import ApiError
    with pytest.raises(ApiError, match="digits"):
        idempotency.validate_key(key)


def test_a_uuid_key_of_digits_only_is_still_a_key():
    # the usual key: dashes split its groups, so no run reaches 13 digits
    from paylib import idempotency
    assert idempotency.validate_key("12345678-9012-3456-7890-123456789012") == "12345678-9012-3456-7890-123456789012"
