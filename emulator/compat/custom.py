"""Custom resources.

moto gap covered: moto runs a custom resource by invoking its Lambda in Docker and waiting for
the function to call back over HTTP; without Docker (the emulator's case) the resource never
completes and the stack stays CREATE_IN_PROGRESS. Lambda code cannot run here, so:
- Custom::RestrictDefaultSecurityGroup (the network layer's function, the same as CDK's) gets
  an emulator provider doing what the function does, directly in moto's EC2 backend: on
  Create/Update it revokes the default security group's self-referencing ingress rule and its
  allow-all egress rule; on Delete it does nothing (neither does the function);
- any other custom resource type fails with a clear reason (UnsupportedCustomResource).
In both cases the ServiceToken must name a Lambda function that exists, as in AWS.
"""
from __future__ import annotations

from .cloudformation.providers import Provider, Request, State, register_custom
from .errors import ResourceFailure


def _check_service_token(request: Request) -> None:
    from moto.awslambda.utils import get_backend

    token = request.properties.get("ServiceToken")
    if not token:
        raise ResourceFailure("Properties validation failed for resource "
                              f"{request.logical_id} with message: #: required key [ServiceToken] not found")
    if ":lambda:" not in token:
        raise ResourceFailure(f"ServiceToken {token} is not a Lambda function (the emulator supports Lambda-backed custom resources only)")
    try:
        get_backend(request.account_id, request.region).get_function(token)
    except Exception:
        raise ResourceFailure(f"Received response status [FAILED] from custom resource. Message returned: "
                              f"Function not found: {token}") from None


class RestrictDefaultSecurityGroup(Provider):
    resource_type = "Custom::RestrictDefaultSecurityGroup"
    support = "emulated"

    def create(self, request: Request) -> State:
        _check_service_token(request)
        group_id = request.properties.get("GroupId")
        self._restrict(request, group_id)
        return State(physical_id=f"restricted-{group_id}", data={"group": group_id})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        _check_service_token(request)
        self._restrict(request, request.properties.get("GroupId"))
        return state

    def _restrict(self, request: Request, group_id: str) -> None:
        from moto.ec2.models import ec2_backends

        ec2 = ec2_backends[request.account_id][request.region]
        group = ec2.get_security_group_by_name_or_id(group_id, None)
        if group is None:
            raise ResourceFailure(f"Received response status [FAILED] from custom resource. Message returned: "
                                  f"ClientError: The security group '{group_id}' does not exist")
        # the function revokes exactly two permissions (and ignores InvalidPermission.NotFound)
        group.ingress_rules[:] = [
            r for r in group.ingress_rules
            if not (r.ip_protocol == "-1" and r.source_group.get("GroupId") == group_id)
        ]
        group.egress_rules[:] = [
            r for r in group.egress_rules
            if not (r.ip_protocol == "-1" and r.ip_range.get("CidrIp") == "0.0.0.0/0")
        ]

    def attribute(self, state: State, name: str) -> object:
        raise ResourceFailure(f"Custom::RestrictDefaultSecurityGroup returns no attribute {name}")


def apply() -> None:
    register_custom(RestrictDefaultSecurityGroup())
