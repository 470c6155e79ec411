"""Powertools Logger, Metrics and Tracer shared by every function.

Rules: never log an event, a body, a card number or a CVC; log identifiers (payment_id,
batch_id), codes and counts. Metrics go to the `Payments` namespace as EMF.
"""
from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "payments")
NAMESPACE = "Payments"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

__all__ = ["logger", "metrics", "tracer", "MetricUnit", "NAMESPACE"]
