"""One batch of rows of a large CSV: a child execution of the batch workflow's Distributed Map.

Input, as the map's ItemBatcher sends it: {"BatchInput": {batch_id, bucket, key, execution_arn},
"Items": [{"index", "row": {<header>: <value>}}]}. Output: the batch's part of the report (no
card data). A rejected row is a counted outcome, never an error; an error here is retried by
the workflow and may run the batch again, which writes nothing twice (paylib.batch_map).
"""
from __future__ import annotations

from paylib import batch_map
from paylib.observability import lambda_handler


@lambda_handler
def handler(event: dict, context: object) -> dict:
    return batch_map.ingest_batch(event)
