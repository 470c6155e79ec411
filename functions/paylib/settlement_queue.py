"""The settlement queue: approved payments are sent here (API, batch, workflow), the queue
worker settles them. Its own module so that a function that only sends (the workflow's Process
step) imports nothing else of the payment path on a cold start."""
from __future__ import annotations

import json

from . import aws


def enqueue_for_settlement(payment_ids: list[str]) -> None:
    """One message may carry many payment ids (batch ingestion sends up to 100). At least once:
    settlement is a conditional state change, so a second message for a payment is harmless."""
    aws.client("sqs").send_message(
        QueueUrl=aws.env("PAYMENT_QUEUE_URL"),
        MessageBody=json.dumps({"payment_ids": payment_ids}, separators=(",", ":")),
    )
