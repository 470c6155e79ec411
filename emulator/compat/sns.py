"""SNS: topic policies and subscriptions (topics are moto's model)."""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import Provider, Request, State, register


def backend(request: Request) -> Any:
    from moto.sns.models import sns_backends

    return sns_backends[request.account_id][request.region]


class TopicPolicyProvider(Provider):
    """moto gap: AWS::SNS::TopicPolicy has no model. Sets the topics' Policy attribute; deletion
    restores the default policy (as AWS does)."""

    resource_type = "AWS::SNS::TopicPolicy"
    support = "created"

    def create(self, request: Request) -> State:
        sns = backend(request)
        topics = list(request.properties.get("Topics") or [])
        for arn in topics:
            sns.set_topic_attribute(arn, "Policy", json.dumps(request.properties["PolicyDocument"]))
        return State(physical_id=request.physical_name, data={"topics": topics})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        fresh = self.create(request)
        state.data = fresh.data
        return state

    def delete(self, request: Request, state: State) -> None:
        sns = backend(request)
        for arn in state.data["topics"]:
            try:
                topic = sns.get_topic(arn)
                topic._policy_json = topic._create_default_topic_policy(topic.region, topic.account_id, topic.name)
            except Exception:
                pass  # the topic is gone


class SubscriptionProvider(Provider):
    """moto gap: AWS::SNS::Subscription has no model (nothing subscribes). Subscribe here, with
    the subscription attributes (RedrivePolicy, FilterPolicy, RawMessageDelivery ...); deletion
    unsubscribes. Ref: the subscription ARN. An email subscription stays pending confirmation, as
    in AWS (nobody clicks the link)."""

    resource_type = "AWS::SNS::Subscription"
    support = "created"
    ATTRIBUTES = ("DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy",
                  "SubscriptionRoleArn", "ReplayPolicy")

    def create(self, request: Request) -> State:
        sns = backend(request)
        p = request.properties
        subscription = sns.subscribe(p["TopicArn"], p.get("Endpoint"), p["Protocol"])
        for name in self.ATTRIBUTES:
            if name in p:
                value = p[name]
                value = json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower() if isinstance(value, bool) else value
                sns.set_subscription_attributes(subscription.arn, name, value)
        return State(physical_id=subscription.arn, ref=subscription.arn, attributes={"Arn": subscription.arn})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        sns = backend(request)
        for name in self.ATTRIBUTES:
            if name in request.properties and request.properties[name] != old_properties.get(name):
                value = request.properties[name]
                value = json.dumps(value) if isinstance(value, (dict, list)) else value
                sns.set_subscription_attributes(state.physical_id, name, value)
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).unsubscribe(state.physical_id)


def apply() -> None:
    register(TopicPolicyProvider())
    register(SubscriptionProvider())
