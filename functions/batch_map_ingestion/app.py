"""Ingests one batch of the batch workflow's Distributed Map (functions/batch_ingestion.asl.json):
the map reads a large CSV itself and hands each child execution

    {"BatchInput": {"batch_id", "bucket", "key", "execution_arn"},
     "Items": [{"index": 0, "row": {"merchant_reference": "...", ...}}, ...]}

This function runs those rows through the single path's code (paylib.batch_map.ingest_batch:
the same validation, screening and conditional writes under the upload's batch id) and returns
the batch's part of the report, which the map's ResultWriter stores for batch_ingestion's Report
step. A function of its own so the map's children have their own reserved concurrency
(batch.reserved_concurrency, at least batch.max_concurrency) and a role without the upload,
report and results permissions they never use.
"""
from __future__ import annotations

from paylib import batch_map
from paylib.batch import InvalidEvent
from paylib.observability import lambda_handler

__all__ = ["InvalidEvent", "handler"]


@lambda_handler
def handler(event: dict, context: object) -> dict:
    return batch_map.ingest_batch(event)
