"""API Gateway proxy events through the handlers: every endpoint, every error code."""
from __future__ import annotations

import json

import pytest

from tests.functions.conftest import (
    AMEX,
    MASTERCARD,
    TEST_MERCHANT,
    api_event,
    card_number,
    new_key,
    payment_body,
    queued_bodies,
    table_counts,
)


@pytest.fixture(scope="module")
def payment_api(aws):
    from tests.functions.conftest import load_app
    return load_app("payment_api")


def post_payment(app, context, body, key=None, headers=None, **kwargs):
    all_headers = {"Idempotency-Key": new_key() if key is None else key, **(headers or {})}
    answer = app.handler(api_event("POST", "/payments", body=body, headers=all_headers, **kwargs), context)
    return answer["statusCode"], json.loads(answer["body"])


def error_of(answer_body):
    return answer_body["error"]["code"], answer_body["error"]["field"]


def test_create_payment_returns_201_with_the_contract_representation(payment_api, context, schema_validator):
    body = payment_body()
    status, payment = post_payment(payment_api, context, body)
    assert status == 201
    schema_validator("Payment", payment)
    assert payment["status"] == "approved"
    assert payment["amount"] == 1250 and payment["currency"] == "EUR"
    assert payment["card"] == {"brand": "visa", "last4": body["card"]["number"][-4:], "exp_month": 12, "exp_year": 2030}
    assert payment["risk"]["level"] == "low"
    assert payment["created_at"].endswith("Z")
    assert "number" not in json.dumps(payment)


def test_approved_payment_is_queued_for_settlement(payment_api, context, aws):
    _, payment = post_payment(payment_api, context, payment_body())
    messages = [json.loads(body) for body in queued_bodies("payments-test-queue")]
    assert any(payment["payment_id"] in message["payment_ids"] for message in messages)


def test_get_payment_returns_what_was_created(payment_api, context, schema_validator):
    _, created = post_payment(payment_api, context, payment_body(card={"number": card_number(MASTERCARD), "exp_month": 1, "exp_year": 2031}))
    answer = payment_api.handler(api_event("GET", "/payments/{payment_id}", path_parameters={"payment_id": created["payment_id"]}), context)
    assert answer["statusCode"] == 200
    fetched = json.loads(answer["body"])
    schema_validator("Payment", fetched)
    assert fetched == created
    assert fetched["card"]["brand"] == "mastercard"


def test_get_unknown_payment_is_404(payment_api, context):
    answer = payment_api.handler(api_event("GET", "/payments/{payment_id}", path_parameters={"payment_id": "pay_" + "0" * 24}), context)
    assert answer["statusCode"] == 404
    assert error_of(json.loads(answer["body"])) == ("payment_not_found", "payment_id")


@pytest.mark.parametrize("payment_id", ["../etc", "pay_XYZ", "pay_" + "0" * 23, "PAY_" + "0" * 24, "x" * 3000, "",
                                        "pay_" + "0" * 24 + "\n"])
def test_get_malformed_payment_id_is_404_like_any_unknown_id(payment_api, context, payment_id):
    """A malformed id cannot exist: the contract's answer for an unknown payment is 404."""
    answer = payment_api.handler(api_event("GET", "/payments/{payment_id}", path_parameters={"payment_id": payment_id}), context)
    assert answer["statusCode"] == 404
    assert error_of(json.loads(answer["body"])) == ("payment_not_found", "payment_id")


def test_get_without_a_payment_id_is_404(payment_api, context):
    answer = payment_api.handler(api_event("GET", "/payments/{payment_id}", path_parameters=None), context)
    assert answer["statusCode"] == 404


@pytest.mark.parametrize("mutate, code, field", [
    (lambda b: b.update(amount=0), "invalid_amount", "amount"),
    (lambda b: b.update(amount=-5), "invalid_amount", "amount"),
    (lambda b: b.update(amount="1250"), "invalid_amount", "amount"),
    (lambda b: b.update(amount=True), "invalid_amount", "amount"),
    (lambda b: b.update(amount=10**12), "amount_too_large", "amount"),
    (lambda b: b.update(currency="eur"), "invalid_currency", "currency"),
    (lambda b: b.update(currency="ABC"), "unsupported_currency", "currency"),
    (lambda b: b.update(currency="XAU"), "unsupported_currency", "currency"),
    (lambda b: b.update(currency="XTS"), "unsupported_currency", "currency"),
    (lambda b: b.update(currency="CLF"), "unsupported_currency", "currency"),
    (lambda b: b.update(currency="USN"), "unsupported_currency", "currency"),
    (lambda b: b.pop("customer_id"), "missing_field", "customer_id"),
    (lambda b: b.update(customer_id="has space"), "invalid_field", "customer_id"),
    (lambda b: b.update(unexpected="x"), "unknown_field", "unexpected"),
    (lambda b: b["card"].update(number="4242424242424241"), "invalid_card_number", "card.number"),
    (lambda b: b["card"].update(number="4242 4242 4242 4242"), "invalid_card_number", "card.number"),
    (lambda b: b["card"].update(number="424242424242"), "invalid_card_number", "card.number"),
    (lambda b: b["card"].update(number="\uff14" * 16), "invalid_card_number", "card.number"),
    (lambda b: b["card"].update(exp_year=2020), "card_expired", "card.exp_year"),
    (lambda b: b["card"].update(exp_month=13), "invalid_expiry", "card.exp_month"),
    (lambda b: b["card"].update(cvc="12"), "invalid_cvc", "card.cvc"),
    (lambda b: b["card"].update(pin="1234"), "unknown_field", "card.pin"),
    (lambda b: b["card"].pop("exp_month"), "missing_field", "card.exp_month"),
    (lambda b: b.update(metadata={"k": 5}), "invalid_field", "metadata.k"),
    (lambda b: b.update(metadata={f"k{i}": "v" for i in range(21)}), "invalid_field", "metadata"),
    (lambda b: b.update(description="card 4000 0566 5566 5556 please"), "invalid_field", "description"),
    (lambda b: b.update(billing_country="France"), "invalid_field", "billing_country"),
    (lambda b: b.update(customer_id="4000056655665556"), "invalid_field", "customer_id"),
    (lambda b: b.update(metadata={"note": "4000-0566-5566-5556"}), "invalid_field", "metadata.note"),
])
def test_invalid_fields_are_400_with_the_field_and_write_nothing(payment_api, context, aws, mutate, code, field):
    body = payment_body()
    mutate(body)
    before = table_counts(aws)
    status, answer = post_payment(payment_api, context, body)
    assert status == 400
    assert error_of(answer) == (code, field)
    assert table_counts(aws) == before


def test_amount_with_a_fraction_is_refused_not_rounded(payment_api, context):
    raw = json.dumps(payment_body()).replace('"amount": 1250', '"amount": 12.50')
    status, answer = post_payment(payment_api, context, None, raw_body=raw)
    assert (status, error_of(answer)) == (400, ("invalid_amount", "amount"))
    raw = json.dumps(payment_body()).replace('"amount": 1250', '"amount": 1.25e3')
    status, answer = post_payment(payment_api, context, None, raw_body=raw)
    assert (status, error_of(answer)) == (400, ("invalid_amount", "amount"))


def test_currency_exponent_decides_the_cap(payment_api, context):
    status, _ = post_payment(payment_api, context, payment_body(currency="JPY", amount=150_000_000 + 1))
    assert status == 400
    status, _ = post_payment(payment_api, context, payment_body(currency="KWD", amount=1_000_000_000 + 1))
    assert status == 400


@pytest.mark.parametrize("raw", ["{", "[1,2", "", "   ", '{"amount": NaN}', '{"a": 1, "a": 2}', "\"just a string\"", "[]"])
def test_malformed_json_is_400(payment_api, context, raw):
    status, answer = post_payment(payment_api, context, None, raw_body=raw)
    assert status == 400
    assert answer["error"]["code"] in {"malformed_json", "invalid_body"}


def test_missing_or_bad_idempotency_key_is_400(payment_api, context):
    event = api_event("POST", "/payments", body=payment_body())
    answer = payment_api.handler(event, context)
    assert answer["statusCode"] == 400
    assert error_of(json.loads(answer["body"])) == ("missing_idempotency_key", "Idempotency-Key")
    for bad in ("", "x" * 256, "caf\u00e9", "tab\there", "order-4000056655665556"):
        status, answer = post_payment(payment_api, context, payment_body(), key=bad)
        assert status == 400 and answer["error"]["field"] == "Idempotency-Key"


def test_wrong_content_type_is_415(payment_api, context):
    status, answer = post_payment(payment_api, context, payment_body(), headers={"Content-Type": "text/plain"})
    assert (status, answer["error"]["code"]) == (415, "unsupported_media_type")
    event = api_event("POST", "/payments", body=payment_body(), headers={"Idempotency-Key": new_key()})
    del event["headers"]["Content-Type"]
    assert payment_api.handler(event, context)["statusCode"] == 415


def test_content_type_with_charset_and_any_case_is_accepted(payment_api, context):
    status, _ = post_payment(payment_api, context, payment_body(), headers={"content-type": "Application/JSON; charset=utf-8"})
    assert status == 201


def test_body_too_large_is_413(payment_api, context):
    body = payment_body(description="x" * 20_000)
    status, answer = post_payment(payment_api, context, body)
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")


def test_base64_body_is_decoded(payment_api, context):
    status, _ = post_payment(payment_api, context, payment_body(), base64_body=True)
    assert status == 201


def test_same_key_same_body_replays_the_first_answer(payment_api, context, aws):
    body, key = payment_body(), new_key()
    first = post_payment(payment_api, context, body, key=key)
    before = table_counts(aws)
    second = post_payment(payment_api, context, json.loads(json.dumps(body)), key=key)
    assert first == second and first[0] == 201
    assert table_counts(aws) == before


def test_same_key_different_body_is_422(payment_api, context):
    body, key = payment_body(), new_key()
    assert post_payment(payment_api, context, body, key=key)[0] == 201
    status, answer = post_payment(payment_api, context, {**body, "amount": 1251}, key=key)
    assert (status, error_of(answer)) == (422, ("idempotency_key_reused", "Idempotency-Key"))


def test_a_request_still_in_flight_under_the_earlier_code_is_409(payment_api, context, aws):
    """Records written before this version may be "in_progress" (the earlier lock); a retry of
    the same body waits for them (409), another body is 422."""
    import hashlib
    import hmac

    from paylib import identity, keys
    body, key = payment_body(), new_key()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    legacy_hash = hmac.new(keys.keyring().current.secret, b"request:" + canonical.encode(), hashlib.sha256).hexdigest()
    now = int(__import__("time").time())
    aws.dynamodb.put_item(TableName="payments-test-idempotency", Item={
        "idempotency_key": {"S": identity.idempotency_record_key(TEST_MERCHANT, "create-payment", key)},
        "request_hash": {"S": legacy_hash}, "state": {"S": "in_progress"}, "locked_until": {"N": str(now + 60)},
        "expires_at": {"N": str(now + 3600)}, "created_at": {"S": "2026-01-01T00:00:00.000000Z"}})
    status, answer = post_payment(payment_api, context, body, key=key)
    assert (status, answer["error"]["code"]) == (409, "request_in_progress")
    status, answer = post_payment(payment_api, context, {**body, "amount": 1}, key=key)
    assert (status, answer["error"]["code"]) == (422, "idempotency_key_reused")


def test_keys_are_scoped_per_merchant(payment_api, context):
    key = new_key()
    assert post_payment(payment_api, context, payment_body(), key=key, merchant_id="mer_" + "a" * 24)[0] == 201
    assert post_payment(payment_api, context, payment_body(amount=99), key=key, merchant_id="mer_" + "b" * 24)[0] == 201


def test_retry_after_a_crash_creates_one_payment_counts_velocity_once_and_queues_it(payment_api, context, aws, monkeypatch):
    from paylib import identity, settlement_queue
    body, key = payment_body(), new_key()
    calls = {"n": 0}
    real = settlement_queue.enqueue_for_settlement

    def crash_once(ids):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash after the payment was written")
        return real(ids)
    monkeypatch.setattr(settlement_queue, "enqueue_for_settlement", crash_once)
    status, answer = post_payment(payment_api, context, body, key=key)
    assert status == 500 and answer == {"error": {"code": "internal_error", "message": "unexpected error; retry later", "field": None}}
    before = table_counts(aws)
    status, payment = post_payment(payment_api, context, body, key=key)
    assert status == 201
    assert table_counts(aws)["payments-test-transactions"] == before["payments-test-transactions"]
    velocity = aws.dynamodb.query(TableName="payments-test-velocity", KeyConditionExpression="counter_key = :k",
                                  ExpressionAttributeValues={":k": {"S": identity.customer_counter(TEST_MERCHANT, body['customer_id'])}})["Items"]
    assert [event["S"].split(":", 1)[1] for item in velocity for event in item["events"]["L"]] == [payment["payment_id"]]
    queued = [json.loads(body)["payment_ids"] for body in queued_bodies("payments-test-queue")]
    assert [payment["payment_id"]] in queued  # the replay sent what the crash did not


def test_unknown_route_is_404(payment_api, context):
    answer = payment_api.handler(api_event("DELETE", "/payments"), context)
    assert answer["statusCode"] == 404


def test_validate_endpoint_checks_without_writing(aws, context, schema_validator):
    from tests.functions.conftest import load_app
    app = load_app("validation")
    before = table_counts(aws)
    answer = app.handler(api_event("POST", "/payments/validate", body=payment_body(card={"number": card_number(AMEX), "exp_month": 5, "exp_year": 2032, "cvc": "1234"})), context)
    assert answer["statusCode"] == 200
    result = json.loads(answer["body"])
    schema_validator("ValidationResult", result)
    assert result["card"]["brand"] == "amex" and result["currency_exponent"] == 2
    bad = app.handler(api_event("POST", "/payments/validate", body=payment_body(amount=-1)), context)
    assert bad["statusCode"] == 400
    assert app.handler(api_event("POST", "/payments/validate", raw_body="{"), context)["statusCode"] == 400
    assert app.handler(api_event("POST", "/payments/validate", body=payment_body(), headers={"Content-Type": "text/csv"}), context)["statusCode"] == 415
    big = app.handler(api_event("POST", "/payments/validate", body=payment_body(description="y" * 17000)), context)
    assert big["statusCode"] == 413
    assert table_counts(aws) == before


def test_fraud_check_endpoint_scores_without_writing(aws, context, schema_validator):
    from tests.functions.conftest import load_app
    app = load_app("fraud_screening")
    before = table_counts(aws)
    answer = app.handler(api_event("POST", "/fraud-check", body=payment_body()), context)
    assert answer["statusCode"] == 200
    result = json.loads(answer["body"])
    schema_validator("FraudCheckResult", result)
    assert result["decision"] == "approve"
    high = app.handler(api_event("POST", "/fraud-check", body=payment_body(amount=50_000_000)), context)
    assert json.loads(high["body"])["risk"]["reasons"] == ["HIGH_AMOUNT", "NEW_CUSTOMER_HIGH_AMOUNT"]
    assert app.handler(api_event("POST", "/fraud-check", body=payment_body(currency="XXX")), context)["statusCode"] == 400
    assert app.handler(api_event("POST", "/fraud-check", raw_body="nope"), context)["statusCode"] == 400
    assert app.handler(api_event("POST", "/fraud-check", body=payment_body(), headers={"Content-Type": "text/xml"}), context)["statusCode"] == 415
    assert table_counts(aws) == before


def test_status_reports_ok_and_degraded(aws, context, schema_validator, monkeypatch):
    from tests.functions.conftest import load_app
    app = load_app("status")
    answer = app.handler(api_event("GET", "/status"), context)
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    schema_validator("Status", body)
    assert body["status"] == "ok" and all(check["ok"] for check in body["checks"].values())
    monkeypatch.setenv("VELOCITY_TABLE", "missing-table")
    answer = app.handler(api_event("GET", "/status"), context)
    body = json.loads(answer["body"])
    schema_validator("Status", body)
    assert answer["statusCode"] == 503 and body["status"] == "degraded"
    assert body["checks"]["velocity_table"] == {"ok": False, "error": "ResourceNotFoundException"}


def test_error_bodies_match_the_contract(payment_api, context, schema_validator):
    for body in (payment_body(amount=0), payment_body(currency="ZZZ")):
        _, answer = post_payment(payment_api, context, body)
        schema_validator("Error", answer)
