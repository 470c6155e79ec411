"""Settles approved payments from the payment queue, reporting partial batch failures.

Each message body is {"payment_ids": [...]}. A message whose payments all settle (or are
already final) succeeds; otherwise its id is returned in batchItemFailures, SQS redelivers it
after the visibility timeout and, after maxReceiveCount, moves it to the DLQ. Re-settling a
message is safe: settlement is a conditional state change.
"""
from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from paylib import settlement
from paylib.observability import lambda_handler, logger

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class MalformedMessage(ValueError):
    pass


def payment_ids_of(body: str) -> list[str]:
    try:
        parsed = json.loads(body)
    except ValueError:
        raise MalformedMessage("message body is not JSON") from None
    ids = parsed.get("payment_ids") if isinstance(parsed, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(item, str) for item in ids):
        raise MalformedMessage("message has no payment_ids list")
    return ids


def settle_message(record) -> None:
    failures = 0
    for payment_id in payment_ids_of(record.body):
        try:
            settlement.settle(payment_id)
        except Exception:
            failures += 1
            logger.exception("settlement failed", extra={"payment_id": payment_id, "message_id": record.message_id})
    if failures:
        raise RuntimeError(f"{failures} payment(s) of the message could not be settled")


@lambda_handler
def handler(event: dict, context: object) -> dict:
    return process_partial_response(event=event, record_handler=settle_message, processor=processor, context=context)
