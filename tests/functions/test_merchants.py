"""Merchant authentication and isolation: the authorizer's answers, 404 for another merchant's
payment, idempotency keys per merchant, batch files per merchant prefix, no secret key stored or
logged, and a property test that no merchant ever reads another's payment."""
from __future__ import annotations

import importlib.util
import json
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functions.conftest import (
    LOG_LINES,
    ROOT,
    LambdaContext,
    api_event,
    batch_key,
    find_card_numbers,
    fresh_card,
    issue_test_key,
    load_app,
    new_key,
    payment_body,
    put_merchant,
    register_secret_key,
)

METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/live/GET/payments/pay_0123"
STAGE_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/live/*/*"
NOW = 2_000_000_000  # the authorizer's clock in these tests (epoch seconds)
BATCH_BUCKET = "payments-test-batch"
HEADER = "merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year"


@pytest.fixture(scope="module")
def authorizer(aws):
    return load_app("authorizer")


@pytest.fixture(scope="module")
def payment_api(aws):
    return load_app("payment_api")


@pytest.fixture()
def merchant(aws):
    from paylib import merchants
    return put_merchant(aws.dynamodb, merchants.new_merchant_id())


def authorizer_event(authorization: str | None) -> dict:
    headers = {} if authorization is None else {"Authorization": authorization}
    return {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": {"Accept": "*/*", **headers}}


def decide(authorizer, secret_key: str | None, now: int = NOW) -> dict:
    return authorizer.authorize(authorizer_event(None if secret_key is None else f"Bearer {secret_key}"), now)


def effect_of(answer: dict) -> str:
    return answer["policyDocument"]["Statement"][0]["Effect"]


def post(app, merchant_id, body, key=None):
    event = api_event("POST", "/payments", body=body, headers={"Idempotency-Key": key or new_key()}, merchant_id=merchant_id)
    answer = app.handler(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def get(app, merchant_id, payment_id):
    event = api_event("GET", "/payments/{payment_id}", path_parameters={"payment_id": payment_id}, merchant_id=merchant_id)
    answer = app.handler(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


# ---------------------------------------------------------------- the authorizer

def test_a_valid_key_is_allowed_on_the_whole_stage_with_the_merchant_in_the_context(authorizer, aws, merchant):
    secret_key, key_id = issue_test_key(aws.dynamodb, merchant)
    answer = decide(authorizer, secret_key)
    assert effect_of(answer) == "Allow"
    assert answer["policyDocument"]["Statement"][0]["Resource"] == STAGE_ARN
    assert answer["principalId"] == merchant["merchant_id"]
    assert answer["context"] == {"merchant_id": merchant["merchant_id"], "key_id": key_id}
    assert answer["usageIdentifierKey"] == merchant["usage_key"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "sk_test_" + "a" * 43,
                                           "Bearer sk_test_short", "Bearer pk_test_" + "a" * 43,
                                           "Bearer sk_test_" + "a" * 43 + " trailing", "Bearer sk_TEST_" + "a" * 43])
def test_a_missing_or_malformed_key_is_401(authorizer, aws, authorization):
    with pytest.raises(Exception) as raised:
        authorizer.authorize(authorizer_event(authorization), NOW)
    assert str(raised.value) == "Unauthorized" and type(raised.value) is Exception


def test_an_unknown_key_is_401(authorizer, aws):
    from paylib import merchants
    with pytest.raises(Exception, match="^Unauthorized$"):
        decide(authorizer, register_secret_key(merchants.new_secret_key("test")))


def test_a_revoked_key_is_denied(authorizer, aws, merchant):
    secret_key, _ = issue_test_key(aws.dynamodb, merchant, revoked=True)
    answer = decide(authorizer, secret_key)
    assert effect_of(answer) == "Deny" and "context" not in answer and "usageIdentifierKey" not in answer


def test_a_key_is_denied_from_its_expiry_on(authorizer, aws, merchant):
    secret_key, _ = issue_test_key(aws.dynamodb, merchant, expires_at=NOW + 60)
    assert effect_of(decide(authorizer, secret_key, now=NOW + 59)) == "Allow"
    assert effect_of(decide(authorizer, secret_key, now=NOW + 60)) == "Deny"


def test_a_suspended_merchants_key_is_denied(authorizer, aws):
    from paylib import merchants
    suspended = put_merchant(aws.dynamodb, merchants.new_merchant_id(), status="suspended")
    secret_key, _ = issue_test_key(aws.dynamodb, suspended)
    assert effect_of(decide(authorizer, secret_key)) == "Deny"


def test_a_rotated_in_key_works_while_the_old_one_does_until_it_is_revoked(authorizer, aws, merchant):
    from paylib import merchants
    old_key, old_id = issue_test_key(aws.dynamodb, merchant)
    new_key_, _ = issue_test_key(aws.dynamodb, merchant)
    assert [effect_of(decide(authorizer, key)) for key in (old_key, new_key_)] == ["Allow", "Allow"]
    hashed = merchants.key_hash(merchants.current_pepper(), old_key)
    aws.dynamodb.update_item(TableName="payments-test-merchants", Key={"pk": {"S": merchants.key_pk(hashed)}},
                             UpdateExpression="SET revoked = :yes", ExpressionAttributeValues={":yes": {"BOOL": True}})
    assert [effect_of(decide(authorizer, key)) for key in (old_key, new_key_)] == ["Deny", "Allow"]


def test_the_handler_answers_through_the_lambda_envelope(authorizer, aws, merchant):
    secret_key, _ = issue_test_key(aws.dynamodb, merchant)
    assert effect_of(authorizer.handler(authorizer_event(f"Bearer {secret_key}"), LambdaContext())) == "Allow"
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.handler(authorizer_event(None), LambdaContext())


def test_the_authorizer_reads_dynamodb_once_per_request(authorizer, aws, merchant):
    """Counted on the function's clients (as the round-trip budget test does), pepper cached."""
    round_trips = _round_trips_module()
    secret_key, _ = issue_test_key(aws.dynamodb, merchant)
    revoked_key, _ = issue_test_key(aws.dynamodb, merchant, revoked=True)
    decide(authorizer, secret_key)  # warm: the pepper is read once per cache lifetime
    for key in (secret_key, revoked_key):
        assert round_trips.counted(lambda: decide(authorizer, key))  # noqa: B023 called at once, inside the iteration == {("dynamodb", "GetItem"): 1}


def test_no_secret_key_is_logged_or_stored(authorizer, aws, merchant):
    secret_key, key_id = issue_test_key(aws.dynamodb, merchant)
    decide(authorizer, secret_key)
    with pytest.raises(Exception):  # noqa: B017 any refusal will do; the test is about what is logged
        decide(authorizer, secret_key[:-1] + ("A" if secret_key[-1] != "A" else "B"))
    assert any(key_id in line for line in LOG_LINES), "log capture is not working"
    assert not [finding for finding in find_card_numbers(aws) if "secret key" in finding]


def test_the_scanner_finds_a_planted_secret_key(aws):
    from paylib import merchants
    planted = register_secret_key(merchants.new_secret_key("test"))
    LOG_LINES.append(json.dumps({"message": f"header was Bearer {planted}"}))
    try:
        assert any(finding.startswith("log: merchant secret key") for finding in find_card_numbers(aws))
    finally:
        LOG_LINES.pop()


# ---------------------------------------------------------------- the payment API

def test_another_merchants_payment_is_404(payment_api, aws, merchant):
    from paylib import merchants
    status, payment = post(payment_api, merchant["merchant_id"], payment_body())
    assert status == 201
    assert get(payment_api, merchant["merchant_id"], payment["payment_id"])[0] == 200
    status, answer = get(payment_api, merchants.new_merchant_id(), payment["payment_id"])
    assert (status, answer["error"]["code"]) == (404, "payment_not_found")


def test_another_merchant_with_the_same_idempotency_key_gets_its_own_payment(payment_api, aws, merchant):
    from paylib import merchants
    body, key = payment_body(), new_key()
    first = post(payment_api, merchant["merchant_id"], body, key)
    second = post(payment_api, merchants.new_merchant_id(), body, key)
    assert first[0] == second[0] == 201
    assert first[1]["payment_id"] != second[1]["payment_id"]
    assert post(payment_api, merchant["merchant_id"], body, key) == (201, first[1])  # the first merchant's replay


@pytest.mark.parametrize("merchant_id", [None, "", "anonymous", "mer_123"])
def test_no_merchant_in_the_authorizer_context_is_401_and_writes_nothing(payment_api, aws, merchant_id):
    from tests.functions.conftest import table_counts
    before = table_counts(aws)
    for answer in (post(payment_api, merchant_id, payment_body()), get(payment_api, merchant_id, "pay_" + "0" * 24)):
        assert (answer[0], answer[1]["error"]["code"]) == (401, "unauthorized")
    assert table_counts(aws) == before


def test_fraud_check_needs_a_merchant_too(aws):
    event = api_event("POST", "/fraud-check", body=payment_body(), merchant_id=None)
    assert load_app("fraud_screening").handler(event, LambdaContext())["statusCode"] == 401


def test_customer_velocity_is_counted_per_merchant(payment_api, aws):
    """Six payments of one customer id at one merchant make the next one review; the same
    customer id at another merchant is another customer."""
    from paylib import merchants
    first, second, customer = merchants.new_merchant_id(), merchants.new_merchant_id(), f"cus_{uuid.uuid4().hex[:8]}"
    for _ in range(6):
        assert post(payment_api, first, payment_body(customer_id=customer))[1]["status"] == "approved"
    assert post(payment_api, second, payment_body(customer_id=customer))[1]["status"] == "approved"
    assert post(payment_api, first, payment_body(customer_id=customer))[1]["risk"]["reasons"] == ["CUSTOMER_VELOCITY"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owners=st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=5),
       readers=st.lists(st.integers(min_value=0, max_value=2), min_size=3, max_size=3))
def test_no_merchant_reads_another_merchants_payment(payment_api, aws, owners, readers):
    from paylib import merchants
    ids = [merchants.new_merchant_id() for _ in range(3)]
    created = []
    for owner in owners:
        # Hypothesis seeds `random` alike for every example: the card comes from the OS instead.
        body = payment_body(card={"number": fresh_card(rng=random.SystemRandom()), "exp_month": 12, "exp_year": 2030})
        status, answer = post(payment_api, ids[owner], body)
        assert status == 201, answer
        created.append((owner, answer["payment_id"]))
    for owner, payment_id in created:
        for reader in readers:
            status, answer = get(payment_api, ids[reader], payment_id)
            assert status == (200 if reader == owner else 404)
            assert status == 404 or answer["payment_id"] == payment_id


# ---------------------------------------------------------------- batch files

def upload(aws, key: str, rows: list[str]) -> dict:
    body = ("\n".join([HEADER] + rows) + "\n").encode()
    answer = aws.s3.put_object(Bucket=BATCH_BUCKET, Key=key, Body=body)
    return {"detail": {"bucket": {"name": BATCH_BUCKET},
                       "object": {"key": key, "version-id": answer["VersionId"], "sequencer": uuid.uuid4().hex}}}


def report_for(aws, result: dict) -> tuple[str, dict]:
    objects = aws.s3.list_objects_v2(Bucket=BATCH_BUCKET, Prefix="reports/").get("Contents", [])
    key = next(item["Key"] for item in objects if result["batch_id"] in item["Key"])
    return key, json.loads(aws.s3.get_object(Bucket=BATCH_BUCKET, Key=key)["Body"].read())


def a_row() -> str:
    return f"ref-{uuid.uuid4().hex[:8]},cus_{uuid.uuid4().hex[:8]},1000,EUR,{fresh_card()},12,2031"


def test_batch_rows_are_created_for_the_merchant_of_the_prefix(aws, merchant, payment_api):
    from paylib import repository
    key = batch_key(merchant_id=merchant["merchant_id"])
    result = load_app("batch_ingestion").handler(upload(aws, key, [a_row(), a_row()]), LambdaContext())
    assert result["counts"]["accepted"] == 2
    report_key, report = report_for(aws, result)
    assert report_key.startswith(f"reports/{merchant['merchant_id']}/") and report["merchant_id"] == merchant["merchant_id"]
    payment_ids = [entry["payment_id"] for entry in _batch_payments(aws, result["batch_id"])]
    assert len(payment_ids) == 2
    assert {repository.get(payment_id)["merchant_id"] for payment_id in payment_ids} == {merchant["merchant_id"]}
    assert get(payment_api, merchant["merchant_id"], payment_ids[0])[0] == 200


def test_the_same_rows_of_two_merchants_are_two_payments(aws, merchant):
    from paylib import merchants
    other = put_merchant(aws.dynamodb, merchants.new_merchant_id())
    rows = [a_row()]
    results = [load_app("batch_ingestion").handler(upload(aws, batch_key(merchant_id=owner["merchant_id"]), rows),
                                                   LambdaContext()) for owner in (merchant, other)]
    assert [result["counts"]["accepted"] for result in results] == [1, 1]


@pytest.mark.parametrize("where, code", [
    ("incoming/{name}.csv", "no_merchant_prefix"),
    ("incoming/mer_" + "9" * 24 + "/{name}.csv", "unknown_merchant"),
    ("incoming/not-a-merchant/{name}.csv", "unknown_merchant"),
    ("incoming/{suspended}/{name}.csv", "merchant_suspended"),
])
def test_a_file_outside_an_active_merchants_prefix_is_refused_with_a_report(aws, where, code):
    from paylib import merchants

    from tests.functions.conftest import table_counts
    suspended = put_merchant(aws.dynamodb, merchants.new_merchant_id(), status="suspended")
    key = where.format(name=uuid.uuid4().hex, suspended=suspended["merchant_id"])
    before = table_counts(aws)["payments-test-transactions"]
    result = load_app("batch_ingestion").handler(upload(aws, key, [a_row(), a_row(), a_row()]), LambdaContext())
    assert result["counts"] == {"total": 3, "accepted": 0, "rejected": 3, "duplicate": 0}
    _, report = report_for(aws, result)
    assert report["file_error"] == code
    assert report["rejected_rows"] == [{"row": row, "field": None, "code": code} for row in (1, 2, 3)]
    assert table_counts(aws)["payments-test-transactions"] == before
    assert "Versions" not in aws.s3.list_object_versions(Bucket=BATCH_BUCKET, Prefix=key)  # card numbers: deleted


def _batch_payments(aws, batch_id: str) -> list[dict]:
    items = aws.dynamodb.scan(TableName="payments-test-transactions", FilterExpression="begins_with(batch_ref, :b)",
                              ExpressionAttributeValues={":b": {"S": batch_id + "#"}})["Items"]
    return [{"payment_id": item["payment_id"]["S"]} for item in items]


def _round_trips_module():
    spec = importlib.util.spec_from_file_location("round_trips_for_merchants", ROOT / "benchmarks" / "round_trips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- cold start

def test_the_cold_start_benchmark_measures_the_authorizer(tmp_path):
    spec = importlib.util.spec_from_file_location("cold_start_benchmark", ROOT / "benchmarks" / "cold_start.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = [name for name, _, _ in module.targets(ROOT / "functions", tmp_path)]
    assert "authorizer" in names
    assert (tmp_path / "authorizer" / "app.py").exists() and (tmp_path / "authorizer" / "paylib" / "merchants.py").exists()


def test_without_a_merchant_even_a_bad_request_is_401(payment_api, aws):
    # authentication comes first: a body or Idempotency-Key problem must not answer 400 instead
    for body, key in (({"amount": "not a number"}, None), (payment_body(), "4111 1111 1111 1111")):
        assert post(payment_api, None, body, key)[0] == 401
