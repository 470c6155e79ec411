"""The scanner behind the session-end check really finds a card number where one is stored."""
from __future__ import annotations

from tests.functions.conftest import LOG_LINES, find_card_numbers, register_number


def test_scanner_finds_a_planted_number_in_s3_and_logs(aws):
    planted = register_number("4000056655665556")
    aws.s3.put_object(Bucket="payments-test-audit", Key="planted.txt", Body=f"x{planted}x".encode())
    LOG_LINES.append(f'{{"message": "{planted}"}}')
    try:
        findings = find_card_numbers(aws)
        assert any(finding.startswith("s3:payments-test-audit/planted.txt") for finding in findings)
        assert any(finding.startswith("log:") for finding in findings)
    finally:
        LOG_LINES.pop()
        for version in aws.s3.list_object_versions(Bucket="payments-test-audit", Prefix="planted.txt").get("Versions", []):
            aws.s3.delete_object(Bucket="payments-test-audit", Key="planted.txt", VersionId=version["VersionId"])
    assert not [finding for finding in find_card_numbers(aws) if "planted" in finding]


def test_nothing_stored_or_logged_so_far_holds_a_card_number(aws, context):
    import json

    from tests.functions.conftest import api_event, load_app, new_key, payment_body
    body = payment_body()
    answer = load_app("payment_api").handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}), context)
    assert answer["statusCode"] == 201
    payment_id = json.loads(answer["body"])["payment_id"]
    assert any(payment_id in line for line in LOG_LINES), "log capture is not working"
    assert find_card_numbers(aws) == []


def test_scanner_finds_an_unkeyed_digest_of_a_number(aws):
    import hashlib
    planted = register_number("4000056655665556")
    digest = hashlib.sha256(planted.encode()).hexdigest()
    aws.dynamodb.put_item(TableName="payments-test-batch-status", Item={"batch_id": {"S": "planted-digest"},
                                                                         "note": {"S": digest}})
    try:
        assert "dynamodb:payments-test-batch-status: an unkeyed digest of the card number ending 5556" in \
            find_card_numbers(aws)
    finally:
        aws.dynamodb.delete_item(TableName="payments-test-batch-status", Key={"batch_id": {"S": "planted-digest"}})
    assert not [finding for finding in find_card_numbers(aws) if "unkeyed digest" in finding]


def test_no_stored_value_of_a_payment_is_an_unkeyed_digest_of_its_card(aws, context):
    """Every value the create path stores (payment, idempotency record, velocity events) and the
    batch path stores (payment, counters, report) is scanned; both paths run here first."""
    import json

    from tests.functions.conftest import api_event, batch_key, fresh_card, load_app, new_key, payment_body
    body = payment_body()
    answer = load_app("payment_api").handler(
        api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}), context)
    assert answer["statusCode"] == 201
    number = fresh_card()
    text = "merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year\nscan-1,cus_scan,100,EUR," + number + ",1,2031\n"
    key = batch_key("scan")
    version = aws.s3.put_object(Bucket="payments-test-batch", Key=key, Body=text.encode())["VersionId"]
    event = {"detail": {"bucket": {"name": "payments-test-batch"}, "object": {"key": key, "version-id": version,
                                                                                "sequencer": "SCAN1"}}}
    assert load_app("batch_ingestion").handler(event, context)["ingested"] is True
    findings = [finding for finding in find_card_numbers(aws) if "planted" not in finding]
    assert findings == [], json.dumps(findings)
