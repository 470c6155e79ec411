"""The compatibility layer: patches to moto 5.2.5 applied before the server starts.

One module per area; each `apply()` names, in comments, the moto gap every patch covers. The
rule for all of them: never more lenient than AWS (a template AWS refuses must fail here too).

- cloudformation/: the stack engine replacing moto's CloudFormation stacks and change sets
  (moto's resource models and the other services' backends are still moto's);
- the area modules (ec2, kms, ssm, ...): fixes to moto's CloudFormation models of a service,
  and emulator providers for the types moto has no model for.
"""
from __future__ import annotations

import importlib
import threading

AREAS = (
    "cloudformation", "ec2", "kms", "ssm", "secretsmanager", "rds", "awslambda", "apigateway", "elbv2",
    "ecs", "ecr", "acm", "s3", "sqs", "sns", "logs", "iam", "cloudwatch", "applicationautoscaling", "wafv2",
    "stepfunctions", "events", "dynamodb", "custom", "recorded", "services",
)

_applied = False
_lock = threading.Lock()


def apply() -> None:
    """Applies every patch once (idempotent)."""
    global _applied
    with _lock:
        if _applied:
            return
        for area in AREAS:
            module = importlib.import_module(f"{__name__}.{area}")
            module.apply()
        _applied = True
