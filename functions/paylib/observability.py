"""Powertools Logger and Metrics shared by every function, and the envelope of every handler.

Rules: never log an event, a body, a card number or a CVC; log identifiers (payment_id,
batch_id), codes and counts. Metrics go to the `Payments` namespace as EMF.

Design decision (cold start): the functions run with X-Ray active tracing, so Lambda records
each invocation's segments (init, invocation, overhead) by itself. The X-Ray SDK, which the
Powertools Tracer loads to add one subsegment per AWS call, is the largest single import of a
handler (about as long as `import boto3` itself; see docs/payments.md), so it is loaded only
where `PAYMENTS_XRAY_SUBSEGMENTS=true` is set on a function: a switch for an investigation,
paid for with that cold-start time.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from .shapes import Event

Handler = Callable[[Event, Any], Any]  # a Lambda handler: (event, context) -> answer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "payments")
NAMESPACE = "Payments"
XRAY_SUBSEGMENTS_SETTING = "PAYMENTS_XRAY_SUBSEGMENTS"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def xray_subsegments_enabled() -> bool:
    return os.environ.get(XRAY_SUBSEGMENTS_SETTING, "").strip().lower() == "true"


def lambda_handler(function: Handler) -> Handler:
    """Logging context (never the event), metrics flushed after each invocation, and the X-Ray
    SDK's subsegments only when the setting asks for them."""
    wrapped = metrics.log_metrics(function)
    if xray_subsegments_enabled():
        from aws_lambda_powertools import Tracer  # imports the X-Ray SDK: see the module docstring
        wrapped = Tracer(service=SERVICE).capture_lambda_handler(capture_response=False)(wrapped)
    return logger.inject_lambda_context(log_event=False)(wrapped)


__all__ = ["logger", "metrics", "lambda_handler", "MetricUnit", "NAMESPACE"]
