"""Ingests CSV files uploaded under incoming/ in the batch bucket (EventBridge "Object Created").

The event is an EventBridge event: detail.bucket.name, detail.object.key (and sequencer,
version-id). Objects outside incoming/*.csv are ignored. See paylib.batch for the file format,
the merchant prefix (incoming/<merchant_id>/<name>.csv) and the exactly-once design. When another ingestion holds the lease until this invocation's
time runs out, the invocation fails and Lambda's asynchronous retry runs it again later.
"""
from __future__ import annotations

import time
from urllib.parse import unquote_plus

from paylib import batch
from paylib.observability import lambda_handler, logger

PREFIX, SUFFIX = "incoming/", ".csv"
SAFETY_MARGIN_MS = 30_000


class InvalidEvent(ValueError):
    pass


def object_of(event: dict) -> tuple[str, str, str, str | None]:
    detail = event.get("detail") if isinstance(event, dict) else None
    try:
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
        key = obj["key"]
    except (TypeError, KeyError):
        raise InvalidEvent("not an S3 Object Created event") from None
    key = unquote_plus(key) if "%" in key or "+" in key else key
    version = obj.get("sequencer") or obj.get("version-id") or obj.get("etag") or event.get("id", "")
    return bucket, key, str(version), obj.get("version-id")


def _deadline(context: object) -> float:
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: 900_000)()
    return time.monotonic() + max(0, remaining_ms - SAFETY_MARGIN_MS) / 1000


@lambda_handler
def handler(event: dict, context: object) -> dict:
    bucket, key, version, version_id = object_of(event)
    if not (key.startswith(PREFIX) and key.lower().endswith(SUFFIX)):
        logger.info("object ignored", extra={"object_key": key})
        return {"ingested": False, "reason": "not an incoming CSV"}
    report = batch.ingest(bucket, key, version, version_id, _deadline(context))
    if report is None:
        return {"ingested": False, "reason": "already ingested or no longer present"}
    return {"ingested": True, "batch_id": report["batch_id"], "counts": report["counts"]}
