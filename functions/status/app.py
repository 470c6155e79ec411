"""GET /status: 200 when every dependency answers, 503 otherwise.

Each check is a cheap read-only call (DescribeTable, GetQueueAttributes); an error is reported by
its AWS error code only, never its message (which may name resources).
"""
from __future__ import annotations

import os

from botocore.exceptions import BotoCoreError, ClientError
from paylib import aws, snapstart
from paylib.errors import response
from paylib.handlers import api_endpoint
from paylib.observability import lambda_handler, logger

# SnapStart hooks (docs/payments.md): harmless where SnapStart is off, ready where it is on.
snapstart.register(("dynamodb", "sqs"))

TABLE_VARIABLES = ("TRANSACTIONS_TABLE", "IDEMPOTENCY_TABLE", "VELOCITY_TABLE")
VERSION = os.environ.get("SERVICE_VERSION", "1.0.0")


def _check(call) -> dict:
    try:
        call()
        return {"ok": True}
    except ClientError as error:
        return {"ok": False, "error": aws.error_code(error) or "ClientError"}
    except (BotoCoreError, aws.MissingConfiguration) as error:
        return {"ok": False, "error": type(error).__name__}


def checks() -> dict:
    results = {}
    for variable in TABLE_VARIABLES:
        name = variable.lower().removesuffix("_table") + "_table"
        results[name] = _check(lambda v=variable: _table_active(aws.env(v)))
    results["payment_queue"] = _check(lambda: aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.env("PAYMENT_QUEUE_URL"), AttributeNames=["ApproximateNumberOfMessages"]))
    return results


def _table_active(name: str) -> None:
    status = aws.client("dynamodb").describe_table(TableName=name)["Table"]["TableStatus"]
    if status not in ("ACTIVE", "UPDATING"):
        raise aws.MissingConfiguration(f"table status {status}")


@api_endpoint
def report(event: dict, context: object) -> dict:
    results = checks()
    healthy = all(check["ok"] for check in results.values())
    if not healthy:
        logger.warning("dependency check failed", extra={"checks": results})
    return response(200 if healthy else 503, {"status": "ok" if healthy else "degraded", "version": VERSION,
                                              "checks": results})


@lambda_handler
def handler(event: dict, context: object) -> dict:
    return report(event, context)
