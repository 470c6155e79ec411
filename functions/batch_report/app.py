"""The batch workflow's last step for a large CSV: the Distributed Map's results (ResultWriter
files under results/<batch_id>/) folded into the same report as the single-function path,
failed batches named by their rows, the upload and the results deleted, the batch completed.
Input: the workflow's state ({object, execution_arn, map | map_error}); see paylib.batch_map.
"""
from __future__ import annotations

from paylib import batch_map
from paylib.observability import lambda_handler


@lambda_handler
def handler(event: dict, context: object) -> dict:
    return batch_map.finish(event)
