"""Elastic Load Balancing v2: load balancers, target groups, listeners, rules.

moto gaps covered (moto 5.2.5 elbv2/models.py): GetAtt LoadBalancerFullName,
CanonicalHostedZoneID and SecurityGroups raise NotImplementedError; TargetGroupFullName does
not exist; target groups, listeners and rules cannot be deleted by moto's CloudFormation
(the stack's deletion leaves them, and the load balancer's target groups then block nothing but
stay listed); Tags, LoadBalancerAttributes, TargetGroupAttributes and Type are ignored.
An HTTPS/TLS listener's certificate must exist in ACM of its account and region and be ISSUED,
as in AWS (moto only checks the backend's own region).
"""
from __future__ import annotations

from typing import Any

from .cloudformation.providers import MotoProvider, Request, State, register
from .errors import ResourceFailure

# Route 53 hosted zone ids of Application Load Balancers per region (AWS's published values).
ALB_HOSTED_ZONES = {
    "us-east-1": "Z35SXDOTRQ7X7K", "us-east-2": "Z3AADJGX6KTTL2", "us-west-1": "Z368ELLRRE2KJ0",
    "us-west-2": "Z1H1FL5HABSF5", "eu-west-1": "Z32O12XQLNTSW2", "eu-west-2": "ZHURV8PSTC4K8",
    "eu-west-3": "Z3Q77PNBQS71R4", "eu-central-1": "Z215JYRZR1TBD5", "eu-north-1": "Z23TAZ7KFUKKKC",
    "ap-southeast-1": "Z1LMS91P8CMLE5", "ap-southeast-2": "Z1GM3OXH4ZPM65", "ap-northeast-1": "Z14GRHDCWA56QT",
}


def backend(request: Request) -> Any:
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[request.account_id][request.region]


def _tags(request: Request, arn: str) -> None:
    tags = request.properties.get("Tags") or []
    if tags:
        backend(request).add_tags([arn], tags)


def _full_name(arn: str, marker: str) -> str:
    # arn:aws:elasticloadbalancing:region:acct:loadbalancer/app/name/id -> app/name/id
    return arn.split(f":{marker}/", 1)[1] if f":{marker}/" in arn else arn


class LoadBalancerProvider(MotoProvider):
    def create(self, request: Request) -> State:
        elb = backend(request)
        p = request.properties
        balancer = elb.create_load_balancer(
            self.resource_name(request), p.get("SecurityGroups") or [], p.get("Subnets") or [],
            scheme=p.get("Scheme", "internet-facing"), loadbalancer_type=p.get("Type", "application"),
            tags=p.get("Tags") or [],
        )
        attributes = {a["Key"]: str(a["Value"]) for a in p.get("LoadBalancerAttributes") or []}
        if attributes:
            elb.modify_load_balancer_attributes(balancer.arn, attributes)
        balancer.activate()
        return self.state_from(balancer, request)

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        elb = backend(request)
        p = request.properties
        attributes = {a["Key"]: str(a["Value"]) for a in p.get("LoadBalancerAttributes") or []}
        if attributes:
            elb.modify_load_balancer_attributes(state.physical_id, attributes)
        if p.get("SecurityGroups"):
            elb.set_security_groups(state.physical_id, p["SecurityGroups"])
        _tags(request, state.physical_id)
        return state

    def attribute(self, state: State, name: str) -> Any:
        balancer = state.handle
        values = {
            "LoadBalancerFullName": _full_name(balancer.arn, "loadbalancer"),
            "CanonicalHostedZoneID": ALB_HOSTED_ZONES.get(balancer.arn.split(":")[3], "Z32O12XQLNTSW2"),
            "SecurityGroups": list(balancer.security_groups or []),
            "LoadBalancerArn": balancer.arn, "LoadBalancerName": balancer.name, "DNSName": balancer.dns_name,
        }
        if name in values:
            return values[name]
        return super().attribute(state, name)

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_load_balancer(state.physical_id)


class TargetGroupProvider(MotoProvider):
    def create(self, request: Request) -> State:
        state = super().create(request)
        elb = backend(request)
        p = request.properties
        attributes = {a["Key"]: str(a["Value"]) for a in p.get("TargetGroupAttributes") or []}
        if attributes:
            elb.modify_target_group_attributes(state.physical_id, attributes)
        if "HealthCheckEnabled" in p:
            state.handle.healthcheck_enabled = str(p["HealthCheckEnabled"]).lower()
        _tags(request, state.physical_id)
        return state

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        elb = backend(request)
        p = request.properties
        attributes = {a["Key"]: str(a["Value"]) for a in p.get("TargetGroupAttributes") or []}
        if attributes:
            elb.modify_target_group_attributes(state.physical_id, attributes)
        _tags(request, state.physical_id)
        return state

    def attribute(self, state: State, name: str) -> Any:
        group = state.handle
        values = {
            "TargetGroupFullName": "targetgroup/" + _full_name(group.arn, "targetgroup"),
            "TargetGroupArn": group.arn, "TargetGroupName": group.name,
            "LoadBalancerArns": list(group.load_balancer_arns),
        }
        if name in values:
            return values[name]
        return super().attribute(state, name)

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_target_group(state.physical_id)


def _check_certificates(request: Request) -> None:
    from moto.acm.models import acm_backends

    p = request.properties
    certificates = p.get("Certificates") or []
    if p.get("Protocol") in ("HTTPS", "TLS") and not certificates:
        raise ResourceFailure("Resource handler returned message: \"A certificate must be specified for HTTPS "
                              "listeners\" (Error Code: CertificateNotFound)")
    for certificate in certificates:
        arn = certificate.get("CertificateArn", "")
        parts = arn.split(":")
        found = None
        if len(parts) >= 6 and parts[2] == "acm":
            try:
                found = acm_backends[parts[4]][parts[3]]._certificates.get(arn)
            except Exception:
                found = None
        if found is None or parts[4] != request.account_id or parts[3] != request.region:
            raise ResourceFailure(f"Resource handler returned message: \"Certificate '{arn}' not found (Service: "
                                  "ElasticLoadBalancingV2, Status Code: 400)\" (Error Code: CertificateNotFound)")
        found.check()
        if found.status != "ISSUED":
            raise ResourceFailure(f"Resource handler returned message: \"Certificate '{arn}' is not valid: its status is "
                                  f"{found.status}\" (Error Code: UnsupportedCertificate)")


class ListenerProvider(MotoProvider):
    def create(self, request: Request) -> State:
        _check_certificates(request)
        state = super().create(request)
        _tags(request, state.physical_id)
        return state

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        _check_certificates(request)
        return super().update(request, state, old_properties)

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_listener(state.physical_id)


class ListenerRuleProvider(MotoProvider):
    def create(self, request: Request) -> State:
        state = super().create(request)
        _tags(request, state.physical_id)
        return state

    def attribute(self, state: State, name: str) -> Any:
        if name == "RuleArn":
            return state.physical_id
        if name == "IsDefault":
            return False
        return super().attribute(state, name)

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_rule(state.physical_id)


def apply() -> None:
    register(LoadBalancerProvider("AWS::ElasticLoadBalancingV2::LoadBalancer"))
    register(TargetGroupProvider("AWS::ElasticLoadBalancingV2::TargetGroup"))
    register(ListenerProvider("AWS::ElasticLoadBalancingV2::Listener"))
    register(ListenerRuleProvider("AWS::ElasticLoadBalancingV2::ListenerRule"))
