"""Concurrency: requests and batch workers that run at the same time, in threads against moto.

Every test forces the worst interleaving (each thread has read before any thread writes; see
ReadsBeforeWrites) and asserts on the outcome only: how many payments passed a limit, how many
times a row was written or counted. Nothing depends on timing."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.functions.conftest import (
    TEST_MERCHANT,
    LambdaContext,
    ReadsBeforeWrites,
    api_event,
    batch_key,
    fresh_card,
    load_app,
    new_key,
    payment_body,
    run_together,
)

VELOCITY_TABLE = "payments-test-velocity"
TRANSACTIONS_TABLE = "payments-test-transactions"


def concurrent_payments(bodies: list[dict]) -> list[dict]:
    app = load_app("payment_api")

    def one(body):
        return lambda: app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}),
                                   LambdaContext())
    with ReadsBeforeWrites(len(bodies), VELOCITY_TABLE):
        answers = run_together([one(body) for body in bodies])
    for answer in answers:
        assert isinstance(answer, dict) and answer["statusCode"] == 201, answer
    return [json.loads(answer["body"]) for answer in answers]


def test_concurrent_payments_on_one_card_let_exactly_the_limit_through(aws, atomic_aws_calls):
    from paylib import fraud
    card_limit = min(limit for _, limit, _ in fraud.VELOCITY_LIMITS["card"])  # 3 earlier payments in 10 min
    card = fresh_card()
    bodies = [payment_body(customer_id=f"cus_{uuid.uuid4().hex[:10]}", billing_country=None,
                           card={"number": card, "exp_month": 1, "exp_year": 2031}) for _ in range(8)]
    payments = concurrent_payments(bodies)
    clean = [payment for payment in payments if "CARD_VELOCITY" not in payment["risk"]["reasons"]]
    assert len(clean) == card_limit + 1
    assert sorted(payment["status"] for payment in payments) == ["approved"] * 4 + ["review"] * 4


def test_concurrent_payments_of_one_customer_let_exactly_the_limit_through(aws, atomic_aws_calls):
    from paylib import fraud
    customer_limit = min(limit for _, limit, _ in fraud.VELOCITY_LIMITS["customer"])  # 5 in 10 min
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    bodies = [payment_body(customer_id=customer, billing_country=None, amount=1000,
                           card={"number": fresh_card(), "exp_month": 1, "exp_year": 2031}) for _ in range(8)]
    payments = concurrent_payments(bodies)
    clean = [payment for payment in payments if "CUSTOMER_VELOCITY" not in payment["risk"]["reasons"]]
    assert len(clean) == customer_limit + 1
    ids = {payment["payment_id"] for payment in payments}
    assert len(ids) == 8


def test_concurrent_retries_of_one_request_create_one_payment(aws, atomic_aws_calls):
    app = load_app("payment_api")
    body, key = payment_body(), new_key()

    def attempt():
        return app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": key}), LambdaContext())
    with ReadsBeforeWrites(4, TRANSACTIONS_TABLE):
        answers = run_together([attempt] * 4)
    assert all(isinstance(answer, dict) for answer in answers), answers
    created = [json.loads(answer["body"]) for answer in answers if answer["statusCode"] == 201]
    assert {payment["payment_id"] for payment in created} and len({p["payment_id"] for p in created}) == 1
    assert all(answer["statusCode"] in (201, 409) for answer in answers)
    items = aws.dynamodb.query(TableName=TRANSACTIONS_TABLE, IndexName="by-customer",
                               KeyConditionExpression="customer_id = :c",
                               ExpressionAttributeValues={":c": {"S": body["customer_id"]}})["Items"]
    assert len(items) == 1


# ---------------------------------------------------------------- batch workers

BATCH_BUCKET = "payments-test-batch"
HEADER = "merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year"


def upload(aws, text: str) -> dict:
    key = batch_key()
    answer = aws.s3.put_object(Bucket=BATCH_BUCKET, Key=key, Body=text.encode())
    return {"detail": {"bucket": {"name": BATCH_BUCKET},
                       "object": {"key": key, "version-id": answer.get("VersionId"), "sequencer": uuid.uuid4().hex}}}


@pytest.fixture()
def no_lease(monkeypatch):
    """Whatever the lease does: here it never excludes anyone."""
    from paylib import batch
    monkeypatch.setattr(batch.Lease, "acquire", lambda self, deadline: None)
    monkeypatch.setattr(batch.Lease, "renew", lambda self: None)
    monkeypatch.setattr(batch.Lease, "release", lambda self: None)


def test_two_workers_without_the_lease_never_write_a_row_twice(aws, atomic_aws_calls, no_lease):
    ingestion = load_app("batch_ingestion")
    customers = [f"cus_{uuid.uuid4().hex[:8]}" for _ in range(5)]
    rows = [f"ref-{index},{customer},1000,EUR,{fresh_card()},12,2031" for index, customer in enumerate(customers)]
    text = "\n".join([HEADER] + rows) + "\n"
    events = [upload(aws, text), upload(aws, text)]  # the same file uploaded twice, ingested at once
    with ReadsBeforeWrites(2, TRANSACTIONS_TABLE):
        results = run_together([lambda event=event: ingestion.handler(event, LambdaContext()) for event in events])
    assert all(isinstance(result, dict) for result in results), results
    accepted = sum(result["counts"]["accepted"] for result in results)
    duplicate = sum(result["counts"]["duplicate"] for result in results)
    assert (accepted, duplicate) == (5, 5)
    from paylib import identity
    for customer in customers:
        velocity = aws.dynamodb.query(TableName=VELOCITY_TABLE, KeyConditionExpression="counter_key = :k",
                                      ExpressionAttributeValues={":k": {"S": identity.customer_counter(TEST_MERCHANT, customer)}})["Items"]
        assert _counted(velocity) == 1, customer


def _counted(items: list[dict]) -> int:
    """Payments a counter holds, whatever its layout (a list of events or a count)."""
    total = 0
    for item in items:
        if "events" in item:
            total += len(item["events"]["L"])
        else:
            total += int(item["payment_count"]["N"])
    return total
