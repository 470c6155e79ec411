"""SQS: queue policies (queues are moto's model)."""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[request.account_id][request.region]


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


class QueuePolicyProvider(Provider):
    """moto gap: AWS::SQS::QueuePolicy has no model (the queues never get the policy). Sets the
    queues' Policy attribute; deletion removes it. Ref: an id of CloudFormation's making."""

    resource_type = "AWS::SQS::QueuePolicy"
    support = "created"

    def create(self, request: Request) -> State:
        sqs = backend(request)
        queues = list(request.properties.get("Queues") or [])
        if not queues:
            raise ResourceFailure("Properties validation failed: Queues must contain at least one queue URL")
        policy = json.dumps(request.properties["PolicyDocument"])
        for url in queues:
            sqs.set_queue_attributes(_queue_name(url), {"Policy": policy})
        return State(physical_id=request.physical_name, data={"queues": queues})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self.delete(request, state)
        fresh = self.create(request)
        state.data = fresh.data
        return state

    def delete(self, request: Request, state: State) -> None:
        sqs = backend(request)
        for url in state.data["queues"]:
            try:
                sqs.set_queue_attributes(_queue_name(url), {"Policy": ""})
            except Exception:
                pass  # the queue is gone


def apply() -> None:
    register(QueuePolicyProvider())
