"""Application Auto Scaling: scalable targets and scaling policies."""
from __future__ import annotations

from typing import Any

from .cloudformation.providers import Provider, Request, State, register


def backend(request: Request) -> Any:
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    return applicationautoscaling_backends[request.account_id][request.region]


class ScalableTargetProvider(Provider):
    """moto gap: AWS::ApplicationAutoScaling::ScalableTarget has no model. Registered with
    RegisterScalableTarget (moto checks, as AWS, that the ECS service exists). Ref: CloudFormation's
    id "resource-id|dimension|namespace"."""

    resource_type = "AWS::ApplicationAutoScaling::ScalableTarget"
    support = "created"

    def _register(self, request: Request) -> Any:
        p = request.properties
        suspended = p.get("SuspendedState")
        return backend(request).register_scalable_target(
            p["ServiceNamespace"], p["ResourceId"], p["ScalableDimension"], int(p["MinCapacity"]), int(p["MaxCapacity"]),
            p.get("RoleARN") or request.arn("iam", "role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
                                                  "AWSServiceRoleForApplicationAutoScaling_ECSService", region=""),
            suspended,
        )

    def create(self, request: Request) -> State:
        self._register(request)
        p = request.properties
        target_id = f"{p['ResourceId']}|{p['ScalableDimension']}|{p['ServiceNamespace']}"
        return State(physical_id=target_id, attributes={"Id": target_id},
                     data={"namespace": p["ServiceNamespace"], "resource": p["ResourceId"], "dimension": p["ScalableDimension"]})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self._register(request)
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).deregister_scalable_target(state.data["namespace"], state.data["resource"], state.data["dimension"])


class ScalingPolicyProvider(Provider):
    """moto gap: AWS::ApplicationAutoScaling::ScalingPolicy has no model. PutScalingPolicy here.
    Ref and GetAtt Arn: the policy ARN."""

    resource_type = "AWS::ApplicationAutoScaling::ScalingPolicy"
    support = "created"

    def _target(self, request: Request) -> tuple[str, str, str]:
        p = request.properties
        if p.get("ScalingTargetId"):
            resource, dimension, namespace = p["ScalingTargetId"].split("|")
            return namespace, resource, dimension
        return p["ServiceNamespace"], p["ResourceId"], p["ScalableDimension"]

    def _put(self, request: Request) -> Any:
        p = request.properties
        namespace, resource, dimension = self._target(request)
        body = {k: v for k, v in p.items() if k.endswith("PolicyConfiguration")}
        return backend(request).put_scaling_policy(p["PolicyName"], namespace, resource, dimension, body, p.get("PolicyType"))

    def create(self, request: Request) -> State:
        policy = self._put(request)
        namespace, resource, dimension = self._target(request)
        return State(physical_id=policy.policy_arn, attributes={"Arn": policy.policy_arn},
                     data={"name": request.properties["PolicyName"], "namespace": namespace, "resource": resource,
                           "dimension": dimension})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self._put(request)
        return state

    def delete(self, request: Request, state: State) -> None:
        d = state.data
        backend(request).delete_scaling_policy(d["name"], d["namespace"], d["resource"], d["dimension"])


def apply() -> None:
    register(ScalableTargetProvider())
    register(ScalingPolicyProvider())
