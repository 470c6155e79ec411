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
