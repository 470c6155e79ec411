"""Queue worker: settlement, audit record, notification, partial batch failures, DLQ, and
state changes that never go backwards or happen twice."""
from __future__ import annotations

import json
import uuid
from datetime import UTC

import pytest
from paylib import repository, settlement

from tests.functions.conftest import api_event, drain, load_app, new_key, payment_body


@pytest.fixture(scope="module")
def worker(aws):
    return load_app("queue_worker")


def create_payment(context, **overrides) -> dict:
    app = load_app("payment_api")
    answer = app.handler(api_event("POST", "/payments", body=payment_body(**overrides),
                                   headers={"Idempotency-Key": new_key()}), context)
    assert answer["statusCode"] == 201
    return json.loads(answer["body"])


def sqs_event(bodies: list[str]) -> dict:
    return {"Records": [{
        "messageId": f"m-{index}-{uuid.uuid4().hex[:6]}", "receiptHandle": "r", "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "x",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:payments-test-queue",
        "awsRegion": "eu-west-1"} for index, body in enumerate(bodies)]}


def test_worker_settles_writes_audit_and_notifies(aws, worker, context):
    drain(aws, aws.capture_url)
    payment = create_payment(context)
    event = sqs_event([json.dumps({"payment_ids": [payment["payment_id"]]})])
    assert worker.handler(event, context) == {"batchItemFailures": []}
    stored = repository.get(payment["payment_id"])
    assert stored["status"] == "settled" and stored["settled_at"]
    key = settlement.audit_key(payment["payment_id"], "settled", stored["created_at"])
    audit = json.loads(aws.s3.get_object(Bucket="payments-test-audit", Key=key)["Body"].read())
    assert audit["event"] == "payment.settled" and audit["payment"]["card"]["last4"] == payment["card"]["last4"]
    notes = [json.loads(message["Body"]) for message in drain(aws, aws.capture_url)]
    assert [note["event"] for note in notes if note["payment_id"] == payment["payment_id"]] == ["payment.settled"]


def test_a_duplicate_message_does_not_settle_twice(aws, worker, context):
    payment = create_payment(context)
    body = json.dumps({"payment_ids": [payment["payment_id"]]})
    worker.handler(sqs_event([body]), context)
    first = repository.get(payment["payment_id"])
    assert worker.handler(sqs_event([body]), context) == {"batchItemFailures": []}
    second = repository.get(payment["payment_id"])
    assert second["version"] == first["version"] and second["settled_at"] == first["settled_at"]


def test_state_never_moves_backwards(aws, context):
    payment = create_payment(context)
    now = repository.utc_now()
    repository.transition(payment["payment_id"], "settled", now)
    for wanted in ("approved", "failed", "declined", "settled"):
        with pytest.raises(repository.InvalidTransition):
            repository.transition(payment["payment_id"], wanted, now)
    assert repository.get(payment["payment_id"])["status"] == "settled"


def test_expired_card_at_settlement_fails_the_payment(aws, context):
    payment = create_payment(context)
    from datetime import datetime
    assert settlement.settle(payment["payment_id"], datetime(2040, 1, 1, tzinfo=UTC)) == "failed"
    assert repository.get(payment["payment_id"])["failure_reason"] == "card_expired"


def test_failing_messages_are_partial_batch_failures(aws, worker, context):
    good = create_payment(context)
    event = sqs_event([json.dumps({"payment_ids": [good["payment_id"]]}), json.dumps({"payment_ids": ["pay_" + "f" * 24]}),
                       "not json", json.dumps({"payment_ids": []})])
    result = worker.handler(event, context)
    failed = {failure["itemIdentifier"] for failure in result["batchItemFailures"]}
    assert failed == {record["messageId"] for record in event["Records"][1:]}
    assert repository.get(good["payment_id"])["status"] == "settled"


def test_a_message_that_keeps_failing_lands_in_the_dlq(aws, worker, context):
    drain(aws, aws.dlq_url)
    drain(aws, aws.queue_url)
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps({"payment_ids": ["pay_" + "e" * 24]}))
    for _ in range(4):  # SQS hands the message to the worker until maxReceiveCount (3), then to the DLQ
        messages = aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        event = sqs_event([message["Body"] for message in messages])
        for record, message in zip(event["Records"], messages, strict=False):
            record["messageId"] = message["MessageId"]
        failures = {failure["itemIdentifier"] for failure in worker.handler(event, context)["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failures:
                aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
    dead = drain(aws, aws.dlq_url)
    assert [json.loads(message["Body"]) for message in dead] == [{"payment_ids": ["pay_" + "e" * 24]}]


def test_review_payment_is_not_settled(aws, worker, context):
    payment = create_payment(context, amount=2_000_000)  # HIGH_AMOUNT + new customer -> review
    assert payment["status"] == "review"
    assert settlement.settle(payment["payment_id"]) == "review"
    assert repository.get(payment["payment_id"])["status"] == "review"


def test_audit_logger_writes_notifications(aws, context):
    app = load_app("audit_logger")
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {
        "MessageId": "msg-1", "Timestamp": "2026-11-23T10:00:00.000Z", "TopicArn": aws.topic_arn,
        "Message": json.dumps({"event": "payment.settled", "payment_id": "pay_" + "1" * 24}),
        "MessageAttributes": {"event": {"Type": "String", "Value": "payment.settled"}}}}]}
    result = app.handler(event, context)
    assert result == {"written": ["notifications/2026/11/23/msg-1.json"]}
    record = json.loads(aws.s3.get_object(Bucket="payments-test-audit", Key=result["written"][0])["Body"].read())
    assert record["notification"]["payment_id"] == "pay_" + "1" * 24 and record["attributes"] == {"event": "payment.settled"}
    app.handler(event, context)  # redelivery overwrites the same record
    versions = aws.s3.list_object_versions(Bucket="payments-test-audit", Prefix=result["written"][0])["Versions"]
    assert len(versions) == 2 and all(v["Key"] == result["written"][0] for v in versions)
    with pytest.raises(Exception):  # noqa: B017 a malformed record must fail, whatever the error type
        app.handler({"Records": [{"nope": 1}]}, context)


def _checksum_of(aws, key: str) -> str | None:
    return aws.s3.head_object(Bucket="payments-test-audit", Key=key, ChecksumMode="ENABLED").get("ChecksumSHA256")


def test_every_audit_record_is_written_with_a_checksum(aws, worker, context):
    # S3 refuses a PutObject without Content-MD5 or a checksum on a bucket under Object Lock
    # (the audit bucket is, PCI DSS 10.3): both writers must send one.
    payment = create_payment(context)
    worker.handler(sqs_event([json.dumps({"payment_ids": [payment["payment_id"]]})]), context)
    stored = repository.get(payment["payment_id"])
    assert _checksum_of(aws, settlement.audit_key(payment["payment_id"], "settled", stored["created_at"]))
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {
        "MessageId": "msg-2", "Timestamp": "2026-11-23T10:00:00.000Z", "TopicArn": aws.topic_arn,
        "Message": json.dumps({"event": "payment.settled", "payment_id": payment["payment_id"]}),
        "MessageAttributes": {}}}]}
    written = load_app("audit_logger").handler(event, context)["written"]
    assert _checksum_of(aws, written[0])


def test_a_payment_gone_after_a_lost_race_is_not_found_and_nothing_is_sent(aws, context, monkeypatch):
    # the transition lost to another worker, then the re-read finds no payment: PaymentNotFound
    # (the message is retried, then kept in the DLQ), never an audit record of nothing
    payment = create_payment(context)
    stored = repository.get(payment["payment_id"])
    answers = iter([stored, None])
    monkeypatch.setattr(repository, "get", lambda payment_id: next(answers))

    def lost_race(payment_id, wanted, now, extra=None):
        raise repository.InvalidTransition(payment_id, "settled", wanted)

    monkeypatch.setattr(repository, "transition", lost_race)
    written = []
    monkeypatch.setattr(settlement, "write_audit", written.append)
    with pytest.raises(repository.PaymentNotFound):
        settlement.settle(payment["payment_id"])
    assert written == []
