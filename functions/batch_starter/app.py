"""Starts the batch workflow for an uploaded CSV (S3 "Object Created" under incoming/, delivered by an
EventBridge rule; the event carries bucket, key, version and size, so the object is never read).

EventBridge cannot name the executions it starts, so this function does: the execution is named
after the batch id (a SHA-256 of bucket, key and version, 32 hex characters: within the 80
allowed, none of the forbidden ones), with the same input for the same event. A duplicate
delivery of the event while the run is open is answered with that run (StartExecution is
idempotent for a standard workflow given the same name and input); after it has closed, with
ExecutionAlreadyExists: either way no second run starts. The state machine lives in the
workflow layer, which grants this function's role states:StartExecution on it; its ARN is built
from the function's own ARN and the fixed name `payments-<environment>-<BATCH_STATE_MACHINE>`
(an import would make compute and workflow depend on each other).
"""
from __future__ import annotations

import json

from paylib import aws, batch
from paylib.observability import lambda_handler, logger


def state_machine_arn(context: object) -> str:
    """arn:<partition>:states:<region>:<account>:stateMachine:payments-<env>-<name>."""
    function_arn: str = getattr(context, "invoked_function_arn", "")
    _, partition, _, region, account, *_ = function_arn.split(":")
    name = f"payments-{aws.env('ENVIRONMENT')}-{aws.env('BATCH_STATE_MACHINE')}"
    return f"arn:{partition}:states:{region}:{account}:stateMachine:{name}"


@lambda_handler
def handler(event: dict, context: object) -> dict:
    upload = batch.uploaded_object(event)
    if not upload.is_incoming_csv:
        logger.info("object ignored", extra={"object_key": upload.key})
        return {"started": False, "reason": "not an incoming CSV"}
    execution_input = {"batch_id": upload.batch_id, "bucket": upload.bucket, "key": upload.key,
                       "version": upload.version, "version_id": upload.version_id, "size": upload.size}
    states = aws.client("stepfunctions")
    try:
        answer = states.start_execution(stateMachineArn=state_machine_arn(context), name=upload.batch_id,
                                        input=json.dumps(execution_input, sort_keys=True))
    except states.exceptions.ExecutionAlreadyExists:
        logger.info("batch already started", extra={"batch_id": upload.batch_id})
        return {"started": False, "batch_id": upload.batch_id, "reason": "already started"}
    logger.info("batch started", extra={"batch_id": upload.batch_id, "size": upload.size})
    return {"started": True, "batch_id": upload.batch_id, "execution_arn": answer["executionArn"]}
