"""Ingests one uploaded CSV in a single invocation: the batch workflow's path for files up to
the environment's `batch.distributed_threshold_bytes` (functions/batch_ingestion.asl.json).
For larger files it is the workflow's Report step: the Distributed Map's results (its batches
run in functions/batch_map_ingestion) folded into the same report (input: the workflow's state
{object, execution_arn, map | map_error}; see paylib.batch_map.finish), so both paths' reports
come from this function.

The workflow passes the upload in the shape of an EventBridge "Object Created" event
(detail.bucket.name, detail.object.key, sequencer, version-id) plus its execution ARN. Objects
outside incoming/*.csv are ignored. See paylib.batch for the file format, the merchant prefix
(incoming/<merchant_id>/<name>.csv) and the exactly-once design. When another ingestion holds the
lease until this invocation's time runs out, the invocation fails with LeaseUnavailable and the
workflow retries it later.
"""
from __future__ import annotations

import time

from paylib import batch, batch_map
from paylib.batch import InvalidEvent
from paylib.observability import lambda_handler, logger

__all__ = ["InvalidEvent", "handler"]
SAFETY_MARGIN_MS = 30_000


def _deadline(context: object) -> float:
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: 900_000)()
    return time.monotonic() + max(0, remaining_ms - SAFETY_MARGIN_MS) / 1000


@lambda_handler
def handler(event: dict, context: object) -> dict:
    if "object" in event:  # the Distributed Map's Report step
        return batch_map.finish(event)
    upload = batch.uploaded_object(event)
    if not upload.is_incoming_csv:
        logger.info("object ignored", extra={"object_key": upload.key})
        return {"ingested": False, "reason": "not an incoming CSV"}
    report = batch.ingest(upload.bucket, upload.key, upload.version, upload.version_id, _deadline(context),
                          execution_arn=event.get("execution_arn"))
    if report is None:
        return {"ingested": False, "reason": "already ingested or no longer present"}
    return {"ingested": True, "batch_id": report["batch_id"], "counts": report["counts"]}
