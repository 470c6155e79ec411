"""EC2 networking: VPC, subnets, routes, gateways, endpoints, security groups, flow logs, EIPs.

moto gaps covered (moto 5.2.5 ec2/models): several CloudFormation models cannot be deleted by
moto at all (route tables, routes, VPC endpoints, internet gateways and their attachments, NAT
gateways, EIPs, flow logs, security group ingress rules), so deleting a stack leaves them and
the VPC then "has dependencies"; AWS::EC2::SubnetRouteTableAssociation is stored outside the
route table (DescribeRouteTables shows no association, its Ref is the route table id);
AWS::EC2::SecurityGroup ignores SecurityGroupEgress (the default allow-all egress stays) and
replaces the group on every update; AWS::EC2::SecurityGroupIngress has no physical id and
AWS::EC2::SecurityGroupEgress no model; VPC DNS attributes, subnet MapPublicIpOnLaunch and most
Tags are ignored. Each provider below says which of these it fixes.
"""
from __future__ import annotations

from typing import Any

from .cloudformation.providers import MotoProvider, Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[request.account_id][request.region]


def tag_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {t["Key"]: str(t["Value"]) for t in tags or []}


def apply_tags(request: Request, resource_id: str, tags: Any) -> None:
    """The resource's Tags plus the aws:cloudformation:* tags CloudFormation adds to EC2 resources."""
    values = {
        "aws:cloudformation:stack-name": request.stack_name,
        "aws:cloudformation:stack-id": request.stack_id,
        "aws:cloudformation:logical-id": request.logical_id,
        **tag_dict(tags),
    }
    backend(request).create_tags([resource_id], values)


class TaggedProvider(MotoProvider):
    """A moto EC2 model whose handler ignores Tags: tagged after creation."""

    def create(self, request: Request) -> State:
        state = super().create(request)
        apply_tags(request, state.physical_id, request.properties.get("Tags"))
        return state

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        ec2 = backend(request)
        old = tag_dict(old_properties.get("Tags"))
        removed = {k: v for k, v in old.items() if k not in tag_dict(request.properties.get("Tags"))}
        if removed:
            ec2.delete_tags([state.physical_id], removed)
        apply_tags(request, state.physical_id, request.properties.get("Tags"))
        return state


class VpcProvider(TaggedProvider):
    """moto gaps: EnableDnsSupport / EnableDnsHostnames ignored (applied with ModifyVpcAttribute);
    the VPC's default security group lacks AWS's default inbound rule (all traffic from the
    group itself), which is added, so closing the default group (the network layer's custom
    resource) has something to close."""

    def create(self, request: Request) -> State:
        state = super().create(request)
        self._attributes(request, state)
        ec2 = backend(request)
        default = ec2.get_security_group_by_name_or_id("default", state.physical_id)
        if default is not None and not any(r.source_group.get("GroupId") == default.id for r in default.ingress_rules):
            ec2.authorize_security_group_ingress(
                group_name_or_id=default.id, ip_protocol="-1", from_port=None, to_port=None, ip_ranges=[],
                source_groups=[{"GroupId": default.id}], vpc_id=state.physical_id)
        return state

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        state = super().update(request, state, old_properties)
        self._attributes(request, state)
        return state

    def _attributes(self, request: Request, state: State) -> None:
        ec2 = backend(request)
        for prop, attribute in (("EnableDnsSupport", "enable_dns_support"), ("EnableDnsHostnames", "enable_dns_hostnames")):
            if prop in request.properties:
                ec2.modify_vpc_attribute(state.physical_id, attribute, str(request.properties[prop]).lower() == "true")

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_vpc(state.physical_id)


class SubnetProvider(TaggedProvider):
    """moto gap: MapPublicIpOnLaunch ignored; set on the subnet."""

    def create(self, request: Request) -> State:
        state = super().create(request)
        if str(request.properties.get("MapPublicIpOnLaunch", "false")).lower() == "true":
            state.handle.map_public_ip_on_launch = "true"
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_subnet(state.physical_id)


class RouteTableProvider(TaggedProvider):
    """moto gap: no delete (left behind, the VPC then cannot be deleted); DeleteRouteTable here."""

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_route_table(state.physical_id)


class RouteProvider(MotoProvider):
    """moto gap: no delete; DeleteRoute here. Physical id as AWS shows it (rtb-x|destination)."""

    def create(self, request: Request) -> State:
        state = super().create(request)
        p = request.properties
        destination = p.get("DestinationCidrBlock") or p.get("DestinationIpv6CidrBlock") or p.get("DestinationPrefixListId")
        state.physical_id = f"{p['RouteTableId']}|{destination}"
        state.ref = state.physical_id
        return state

    def ref(self, state: State) -> Any:
        return state.physical_id

    def delete(self, request: Request, state: State) -> None:
        p = request.properties
        backend(request).delete_route(p["RouteTableId"], p.get("DestinationCidrBlock"),
                                      p.get("DestinationIpv6CidrBlock"), p.get("DestinationPrefixListId"))


class SubnetRouteTableAssociationProvider(Provider):
    """moto gap: moto's model stores the association outside the route table (DescribeRouteTables
    shows nothing, the subnet keeps the main route table) and its Ref is the route table id;
    created here with AssociateRouteTable (Ref: the association id), deleted with
    DisassociateRouteTable."""

    resource_type = "AWS::EC2::SubnetRouteTableAssociation"
    support = "created"

    def create(self, request: Request) -> State:
        association_id = backend(request).associate_route_table(
            request.properties["RouteTableId"], subnet_id=request.properties["SubnetId"])
        return State(physical_id=association_id, attributes={"Id": association_id})

    def delete(self, request: Request, state: State) -> None:
        backend(request).disassociate_route_table(state.physical_id)


class InternetGatewayProvider(TaggedProvider):
    """moto gap: no delete and Tags ignored; DeleteInternetGateway here."""

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_internet_gateway(state.physical_id)


class GatewayAttachmentProvider(MotoProvider):
    """moto gap: no delete (the VPC stays attached); DetachInternetGateway here. Physical id
    IGW|vpc-id as AWS shows it (moto's is the VPC id)."""

    def create(self, request: Request) -> State:
        state = super().create(request)
        p = request.properties
        state.physical_id = f"{'IGW' if p.get('InternetGatewayId') else 'VGW'}|{p['VpcId']}"
        return state

    def ref(self, state: State) -> Any:
        return state.physical_id

    def delete(self, request: Request, state: State) -> None:
        p = request.properties
        if p.get("InternetGatewayId"):
            backend(request).detach_internet_gateway(p["InternetGatewayId"], p["VpcId"])
        elif p.get("VpnGatewayId"):
            backend(request).detach_vpn_gateway(p["VpnGatewayId"], p["VpcId"])


class VpcEndpointProvider(TaggedProvider):
    """moto gap: no delete (interface endpoints' network interfaces and gateway endpoints' routes
    stay); DeleteVpcEndpoints here. Tags applied."""

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_vpc_endpoints([state.physical_id])


class FlowLogProvider(MotoProvider):
    """moto gap: no delete; DeleteFlowLogs here."""

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_flow_logs([state.physical_id])


class EipProvider(TaggedProvider):
    """moto gap: no delete (the address stays allocated) and Tags ignored; ReleaseAddress here.
    Ref is the public IP, GetAtt AllocationId / PublicIp as in AWS."""

    def create(self, request: Request) -> State:
        state = MotoProvider.create(self, request)
        apply_tags(request, state.handle.allocation_id, request.properties.get("Tags"))
        state.attributes = {"AllocationId": state.handle.allocation_id, "PublicIp": state.handle.public_ip}
        return state

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        apply_tags(request, state.handle.allocation_id, request.properties.get("Tags"))
        return state

    def attribute(self, state: State, name: str) -> Any:
        if name in state.attributes:
            return state.attributes[name]
        return super().attribute(state, name)

    def delete(self, request: Request, state: State) -> None:
        backend(request).release_address(allocation_id=state.handle.allocation_id)


class NatGatewayProvider(MotoProvider):
    """moto gap: no delete (the gateway keeps its EIP, the EIP then cannot be released) and
    Tags / ConnectivityType ignored; created with CreateNatGateway, deleted with
    DeleteNatGateway."""

    def create(self, request: Request) -> State:
        p = request.properties
        gateway = backend(request).create_nat_gateway(
            p["SubnetId"], p.get("AllocationId"), tags=tag_dict(p.get("Tags")),
            connectivity_type=p.get("ConnectivityType", "public"))
        apply_tags(request, gateway.id, p.get("Tags"))
        return self.state_from(gateway, request)

    def delete(self, request: Request, state: State) -> None:
        ec2 = backend(request)
        ec2.delete_nat_gateway(state.physical_id)
        # AWS releases the gateway's network interface; the EIP is disassociated from it
        for address in ec2.addresses:
            if getattr(address, "allocation_id", None) == request.properties.get("AllocationId"):
                address.association_id = None
                address.eni = None


def _rule_arguments(rule: dict, egress: bool) -> dict:
    ranges: list[dict] = []
    if rule.get("CidrIp"):
        ranges.append({"CidrIp": rule["CidrIp"], **({"Description": rule["Description"]} if rule.get("Description") else {})})
    if rule.get("CidrIpv6"):
        ranges.append({"CidrIpv6": rule["CidrIpv6"], **({"Description": rule["Description"]} if rule.get("Description") else {})})
    groups = []
    other = rule.get("DestinationSecurityGroupId") if egress else (rule.get("SourceSecurityGroupId") or rule.get("SourceSecurityGroupName"))
    if other:
        key = "GroupName" if not egress and rule.get("SourceSecurityGroupName") and not rule.get("SourceSecurityGroupId") else "GroupId"
        group = {key: other}
        if rule.get("Description"):
            group["Description"] = rule["Description"]
        groups.append(group)
    prefixes = []
    prefix = rule.get("DestinationPrefixListId") if egress else rule.get("SourcePrefixListId")
    if prefix:
        prefixes.append({"PrefixListId": prefix})
    protocol = str(rule.get("IpProtocol", "-1"))
    return {
        "ip_protocol": protocol,
        "from_port": rule.get("FromPort", -1 if protocol == "-1" else None),
        "to_port": rule.get("ToPort", -1 if protocol == "-1" else None),
        "ip_ranges": ranges, "source_groups": groups, "prefix_list_ids": prefixes,
    }


def _authorize(ec2: Any, group_id: str, vpc_id: str | None, rule: dict, egress: bool) -> list[str]:
    arguments = _rule_arguments(rule, egress)
    if not (arguments["ip_ranges"] or arguments["source_groups"] or arguments["prefix_list_ids"]):
        raise ResourceFailure("Either CidrIp, CidrIpv6, a security group or a prefix list must be specified")
    call = ec2.authorize_security_group_egress if egress else ec2.authorize_security_group_ingress
    rules, _ = call(group_name_or_id=group_id, vpc_id=vpc_id, **arguments)
    return [r.id for r in rules]


def _revoke(ec2: Any, group_id: str, vpc_id: str | None, rule_ids: list[str], egress: bool) -> None:
    group = ec2.get_security_group_by_name_or_id(group_id, vpc_id)
    if group is None:
        return
    rules = group.egress_rules if egress else group.ingress_rules
    for rule in [r for r in rules if r.id in rule_ids]:
        rules.remove(rule)


class SecurityGroupProvider(Provider):
    """moto gaps: SecurityGroupEgress ignored (AWS replaces the default allow-all egress with
    the listed rules), ingress CidrIp mishandled, every update replaces the group (new id);
    here the group is created with CreateSecurityGroup, its rules authorized as listed, and
    updates change rules and tags in place. Ref: the group id; GetAtt GroupId, VpcId."""

    resource_type = "AWS::EC2::SecurityGroup"
    support = "created"

    def create(self, request: Request) -> State:
        ec2 = backend(request)
        p = request.properties
        group = ec2.create_security_group(name=p.get("GroupName") or request.physical_name,
                                          description=p.get("GroupDescription"), vpc_id=p.get("VpcId"))
        apply_tags(request, group.id, p.get("Tags"))
        state = State(physical_id=group.id, handle=group,
                      attributes={"GroupId": group.id, "VpcId": group.vpc_id})
        self._set_rules(request, state)
        return state

    def _set_rules(self, request: Request, state: State) -> None:
        ec2 = backend(request)
        group = state.handle
        p = request.properties
        group.ingress_rules[:] = []
        for rule in p.get("SecurityGroupIngress", []):
            _authorize(ec2, group.id, group.vpc_id, rule, egress=False)
        if "SecurityGroupEgress" in p:
            group.egress_rules[:] = []
            for rule in p["SecurityGroupEgress"]:
                _authorize(ec2, group.id, group.vpc_id, rule, egress=True)

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self._set_rules(request, state)
        old = tag_dict(old_properties.get("Tags"))
        removed = {k: v for k, v in old.items() if k not in tag_dict(request.properties.get("Tags"))}
        if removed:
            backend(request).delete_tags([state.physical_id], removed)
        apply_tags(request, state.physical_id, request.properties.get("Tags"))
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_security_group(group_id=state.physical_id)


class SecurityGroupRuleProvider(Provider):
    """moto gaps: AWS::EC2::SecurityGroupIngress has no physical id and no delete (the rule
    stays), AWS::EC2::SecurityGroupEgress has no model at all. Both authorize the rule with
    the EC2 API; the rule id (sgr-...) is the physical id; deletion revokes it."""

    support = "created"

    def __init__(self, resource_type: str, egress: bool):
        self.resource_type = resource_type
        self.egress = egress

    def create(self, request: Request) -> State:
        ec2 = backend(request)
        p = request.properties
        group_id = p.get("GroupId")
        if not group_id and p.get("GroupName"):
            group_id = ec2.get_security_group_by_name_or_id(p["GroupName"], None).id
        group = ec2.get_security_group_by_name_or_id(group_id, None)
        if group is None:
            raise ResourceFailure(f"The security group '{group_id}' does not exist")
        rule_ids = _authorize(ec2, group.id, group.vpc_id, p, self.egress)
        return State(physical_id=rule_ids[0], attributes={"Id": rule_ids[0]},
                     data={"group": group.id, "vpc": group.vpc_id, "rules": rule_ids})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self.delete(request, state)
        return self.create(request)

    def delete(self, request: Request, state: State) -> None:
        _revoke(backend(request), state.data["group"], state.data["vpc"], state.data["rules"], self.egress)


def apply() -> None:
    register(VpcProvider("AWS::EC2::VPC"))
    register(SubnetProvider("AWS::EC2::Subnet"))
    register(RouteTableProvider("AWS::EC2::RouteTable"))
    register(RouteProvider("AWS::EC2::Route"))
    register(SubnetRouteTableAssociationProvider())
    register(InternetGatewayProvider("AWS::EC2::InternetGateway"))
    register(GatewayAttachmentProvider("AWS::EC2::VPCGatewayAttachment"))
    register(VpcEndpointProvider("AWS::EC2::VPCEndpoint"))
    register(FlowLogProvider("AWS::EC2::FlowLog"))
    register(EipProvider("AWS::EC2::EIP"))
    register(NatGatewayProvider("AWS::EC2::NatGateway"))
    register(SecurityGroupProvider())
    register(SecurityGroupRuleProvider("AWS::EC2::SecurityGroupIngress", egress=False))
    register(SecurityGroupRuleProvider("AWS::EC2::SecurityGroupEgress", egress=True))
