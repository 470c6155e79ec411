"""Writes every payment notification (SNS) as an audit record to the audit bucket.

Key: notifications/<yyyy>/<mm>/<dd>/<sns message id>.json, so a redelivered notification
overwrites its own record instead of adding a second one. Notifications carry ids, statuses and
amounts only (never card data); the record keeps the message, its attributes and the times.
"""
from __future__ import annotations

import json

from paylib import aws
from paylib.observability import lambda_handler, logger


class InvalidEvent(ValueError):
    pass


def audit_entry(record: dict) -> tuple[str, dict]:
    try:
        sns = record["Sns"]
        message_id, timestamp, message = sns["MessageId"], sns["Timestamp"], sns["Message"]
    except (TypeError, KeyError):
        raise InvalidEvent("not an SNS record") from None
    try:
        payload = json.loads(message)
    except ValueError:
        payload = {"unparsed_message_length": len(message)}
    attributes = {name: value.get("Value") for name, value in (sns.get("MessageAttributes") or {}).items()}
    day = timestamp[:10].replace("-", "/")
    entry = {"message_id": message_id, "published_at": timestamp, "topic_arn": sns.get("TopicArn"),
             "attributes": attributes, "notification": payload}
    return f"notifications/{day}/{message_id}.json", entry


@lambda_handler
def handler(event: dict, context: object) -> dict:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise InvalidEvent("event has no Records")
    written = []
    for record in records:
        key, entry = audit_entry(record)
        aws.put_audit_record(key, entry)
        written.append(key)
    logger.info("audit records written", extra={"count": len(written)})
    return {"written": written}
