"""network layer: the VPC every other layer runs in.

Design decisions:
- Three explicit availability zones from the config (never Fn::GetAZs, which can return two in
  some accounts); nine /24 subnets carved in Python from the /16 so the plan is visible in tests:
  public at .0-.2, private (egress) at .10-.12, isolated (database) at .20-.22.
- NAT follows `network.nat_gateways` (0 to one per AZ): the first that many AZs get a NAT gateway;
  a private route table uses its own AZ's NAT, else the first AZ's; with 0 the private tables
  have no default route (endpoints carry the AWS traffic). Private route tables are per AZ at
  every count so changing it only changes routes, never subnet associations.
- The VPC's own default security group is closed by a small custom resource that revokes its two
  default rules. CloudFormation has no property for this (CDK's `restrictDefaultSecurityGroup`
  is the same custom resource under the hood); nothing may use the default group.
- Flow logs need a KMS-encrypted log group, but this layer deploys before security (whose keys
  need nothing from the network). So network owns a small dedicated key, `network-logs`, used
  only for its own log groups; no import from security, no cycle.
- Security groups never rely on the implicit allow-all egress: every group states its egress.
  Groups that should start nothing carry the "matches no traffic" rule (ICMP type 252 code 86 to
  255.255.255.255/32, the convention CDK uses for allowAllOutbound=false). Rules between groups
  are standalone Ingress/Egress resources so the groups never reference each other in a cycle.
- Lambda and app tasks keep 443 egress to 0.0.0.0/0 in every NAT mode: the S3 and DynamoDB
  gateway endpoints are reached at those services' public addresses (their prefix-list ids are
  not available to a template), and with a NAT the AWS APIs without an interface endpoint are
  public too. What 0.0.0.0/0 can actually reach is bounded by the route tables (no NAT: only the
  endpoints).
- Gateway endpoints keep the default endpoint policy: an explicit policy would need a wildcard
  action to stay equivalent, and the buckets and tables carry their own resource policies.
"""
from __future__ import annotations

import ipaddress

import awacs.ec2 as ec2_actions
import awacs.logs as logs_actions
from awacs.aws import Allow, PolicyDocument, Statement
from troposphere import GetAtt, Join, Ref, Sub, Template, awslambda, ec2, iam
from troposphere.cloudformation import CustomResource

from .blocks import kms_key, log_group, logs_service_statement, service_trust
from .common import export, ignore_cfn_lint, new_template, resource_name, skip_checkov, tags
from .config import EnvironmentConfig

LAYER = "network"

TIERS = ("public", "private", "isolated")
# Third octet of each tier's first /24 inside the /16.
TIER_OFFSETS = {"public": 0, "private": 10, "isolated": 20}
# Interface endpoints (private DNS) the private tier needs: ECS image pulls and logs, secrets,
# queues, keys, and what the functions call (SNS publish, Step Functions start, metrics).
INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "kms", "logs", "monitoring", "secretsmanager", "sns", "sqs", "states")
GATEWAY_ENDPOINT_SERVICES = ("s3", "dynamodb")
HTTPS = 443
HTTP = 80
POSTGRES = 5432
ANYWHERE = "0.0.0.0/0"

# A rule no packet matches: states "no egress" so CloudFormation does not add its allow-all rule.
NO_TRAFFIC_EGRESS = ec2.SecurityGroupRule(
    IpProtocol="icmp", FromPort=252, ToPort=86, CidrIp="255.255.255.255/32", Description="Disallow all traffic"
)

# Runs once per deploy (Create/Update) to revoke the default security group's two default rules.
# Kept inline (ZipFile) so the network stack needs no artifact upload.
RESTRICT_DEFAULT_SG_CODE = '''\
import json
import urllib.request

import boto3
from botocore.exceptions import ClientError

EC2 = boto3.client("ec2")


def _revoke(call, group_id, permission):
    try:
        call(GroupId=group_id, IpPermissions=[permission])
    except ClientError as error:
        if error.response["Error"]["Code"] != "InvalidPermission.NotFound":
            raise


def restrict(group_id):
    _revoke(EC2.revoke_security_group_ingress, group_id,
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]})
    _revoke(EC2.revoke_security_group_egress, group_id,
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]})


def handler(event, context):
    group_id = event["ResourceProperties"]["GroupId"]
    status, reason = "SUCCESS", "default security group has no rules"
    try:
        if event["RequestType"] in ("Create", "Update"):
            restrict(group_id)
    except Exception as error:
        status, reason = "FAILED", f"{type(error).__name__}: {error}"[:500]
    body = json.dumps({
        "Status": status,
        "Reason": reason,
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"restricted-{group_id}",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30):
        pass
    return status
'''


class RestrictDefaultSecurityGroup(CustomResource):
    resource_type = "Custom::RestrictDefaultSecurityGroup"


def zone_suffix(zone: str) -> str:
    """`eu-west-1a` -> `A`: the logical-id suffix of an AZ's resources."""
    return zone[-1].upper()


def subnet_cidrs(config: EnvironmentConfig) -> dict[str, list[str]]:
    """The /24 of each tier in each AZ, in AZ order."""
    vpc = ipaddress.IPv4Network(config.network.cidr)
    all_24s = list(vpc.subnets(new_prefix=24))
    zone_count = len(config.network.availability_zones)
    return {tier: [str(all_24s[TIER_OFFSETS[tier] + i]) for i in range(zone_count)] for tier in TIERS}


def nat_zones(config: EnvironmentConfig) -> list[str]:
    """The AZs that get a NAT gateway."""
    zones = config.network.availability_zones
    return list(zones[: config.network.nat_gateways])


def _camel(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace("-", ".").split("."))


def build(config: EnvironmentConfig) -> Template:
    template = new_template(config, LAYER, "VPC over 3 AZs, subnets, NAT, endpoints, flow logs, security groups")
    vpc = _vpc(template, config)
    subnets = _subnets(template, config, vpc)
    logs_key = _network_logs_key(template, config)
    _close_default_security_group(template, config, vpc, logs_key)
    _public_routing(template, config, vpc, subnets["public"])
    private_tables = _private_routing(template, config, vpc, subnets)
    isolated_table = _isolated_routing(template, config, vpc, subnets["isolated"])
    groups = _security_groups(template, config, vpc)
    _gateway_endpoints(template, config, vpc, [*private_tables, isolated_table])
    _interface_endpoints(template, config, vpc, subnets["private"], groups["Endpoint"])
    _flow_logs(template, config, vpc, logs_key)
    if config.network.peering.enabled:
        _peering(template, config, vpc, [*private_tables, isolated_table])
    _exports(template, config, vpc, subnets, groups)
    return template


def _vpc(template: Template, config: EnvironmentConfig) -> ec2.VPC:
    vpc = template.add_resource(
        ec2.VPC(
            "Vpc",
            CidrBlock=config.network.cidr,
            EnableDnsSupport=True,
            EnableDnsHostnames=True,
            Tags=tags(config, resource_name(config, "vpc")),
        )
    )
    gateway = template.add_resource(
        ec2.InternetGateway("InternetGateway", Tags=tags(config, resource_name(config, "igw")))
    )
    template.add_resource(
        ec2.VPCGatewayAttachment("InternetGatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway))
    )
    return vpc


def _subnets(template: Template, config: EnvironmentConfig, vpc: ec2.VPC) -> dict[str, list[ec2.Subnet]]:
    cidrs = subnet_cidrs(config)
    return {
        tier: [
            _subnet(template, config, vpc, tier, zone, cidr)
            for zone, cidr in zip(config.network.availability_zones, cidrs[tier], strict=False)
        ]
        for tier in TIERS
    }


def _subnet(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, tier: str, zone: str, cidr: str) -> ec2.Subnet:
    subnet = template.add_resource(
        ec2.Subnet(
            f"{tier.capitalize()}Subnet{zone_suffix(zone)}",
            VpcId=Ref(vpc),
            CidrBlock=cidr,
            AvailabilityZone=zone,
            # Nothing in the public tier needs an automatic public IP: the ALB and the NAT
            # gateways get theirs from AWS and from their Elastic IPs.
            MapPublicIpOnLaunch=False,
            Tags=tags(config, resource_name(config, tier, zone), Tier=tier),
        )
    )
    return ignore_cfn_lint(
        subnet, "W3010", "3 AZs named in config (Fn::GetAZs may give 2)"
    )


def _route_table(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, logical_id: str, name: str):
    return template.add_resource(ec2.RouteTable(logical_id, VpcId=Ref(vpc), Tags=tags(config, name)))


def _associate(template: Template, table: ec2.RouteTable, subnet: ec2.Subnet) -> None:
    template.add_resource(
        ec2.SubnetRouteTableAssociation(
            f"{subnet.title}RouteTableAssociation", RouteTableId=Ref(table), SubnetId=Ref(subnet)
        )
    )


def _public_routing(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, public: list[ec2.Subnet]) -> None:
    table = _route_table(template, config, vpc, "PublicRouteTable", resource_name(config, "public-rt"))
    template.add_resource(
        ec2.Route(
            "PublicDefaultRoute",
            DependsOn="InternetGatewayAttachment",
            RouteTableId=Ref(table),
            DestinationCidrBlock=ANYWHERE,
            GatewayId=Ref("InternetGateway"),
        )
    )
    for subnet in public:
        _associate(template, table, subnet)


def _nat_gateways(template: Template, config: EnvironmentConfig, public: list[ec2.Subnet]) -> dict[str, ec2.NatGateway]:
    """NAT gateways by AZ, each in that AZ's public subnet with its own Elastic IP."""
    public_by_zone = dict(zip(config.network.availability_zones, public, strict=False))
    gateways = {}
    for zone in nat_zones(config):
        suffix = zone_suffix(zone)
        address = template.add_resource(
            ec2.EIP(
                f"NatAddress{suffix}",
                DependsOn="InternetGatewayAttachment",
                Domain="vpc",
                Tags=tags(config, resource_name(config, "nat", zone)),
            )
        )
        gateways[zone] = template.add_resource(
            ec2.NatGateway(
                f"NatGateway{suffix}",
                AllocationId=GetAtt(address, "AllocationId"),
                SubnetId=Ref(public_by_zone[zone]),
                Tags=tags(config, resource_name(config, "nat", zone)),
            )
        )
    return gateways


def _private_routing(
    template: Template, config: EnvironmentConfig, vpc: ec2.VPC, subnets: dict[str, list[ec2.Subnet]]
) -> list[ec2.RouteTable]:
    gateways = _nat_gateways(template, config, subnets["public"])
    tables = []
    for zone, subnet in zip(config.network.availability_zones, subnets["private"], strict=False):
        suffix = zone_suffix(zone)
        table = _route_table(template, config, vpc, f"PrivateRouteTable{suffix}", resource_name(config, "private-rt", zone))
        _associate(template, table, subnet)
        # The AZ's own NAT if it has one, else the first AZ's; without NAT no default route at all.
        nat = gateways.get(zone) or next(iter(gateways.values()), None)
        if nat is not None:
            template.add_resource(
                ec2.Route(
                    f"PrivateDefaultRoute{suffix}",
                    RouteTableId=Ref(table),
                    DestinationCidrBlock=ANYWHERE,
                    NatGatewayId=Ref(nat),
                )
            )
        tables.append(table)
    return tables


def _isolated_routing(
    template: Template, config: EnvironmentConfig, vpc: ec2.VPC, isolated: list[ec2.Subnet]
) -> ec2.RouteTable:
    """One table for the database tier: local routes and gateway endpoints only."""
    table = _route_table(template, config, vpc, "IsolatedRouteTable", resource_name(config, "isolated-rt"))
    for subnet in isolated:
        _associate(template, table, subnet)
    return table


def _close_default_security_group(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, logs_key) -> None:
    function_name = resource_name(config, "restrict-default-sg")
    group_log = log_group(
        template, config, "RestrictDefaultSgLogGroup", f"/payments/{config.name}/{function_name}", GetAtt(logs_key, "Arn")
    )
    default_group = GetAtt(vpc, "DefaultSecurityGroup")
    role = _restrict_default_sg_role(template, config, default_group, group_log)
    function = _restrict_default_sg_function(template, config, function_name, role, group_log)
    template.add_resource(
        RestrictDefaultSecurityGroup(
            "DefaultSecurityGroupRestriction", ServiceToken=GetAtt(function, "Arn"), GroupId=default_group
        )
    )


def _restrict_default_sg_role(template: Template, config: EnvironmentConfig, default_group: GetAtt, group_log) -> iam.Role:
    """May revoke the rules of this VPC's default security group and write its own log, nothing else."""
    return template.add_resource(
        iam.Role(
            "RestrictDefaultSgRole",
            AssumeRolePolicyDocument=service_trust("lambda.amazonaws.com", on_behalf_of_this_account=False),
            Policies=[
                iam.Policy(
                    PolicyName="revoke-default-sg-rules",
                    PolicyDocument=PolicyDocument(
                        Version="2012-10-17",
                        Statement=[
                            Statement(
                                Effect=Allow,
                                Action=[ec2_actions.RevokeSecurityGroupIngress, ec2_actions.RevokeSecurityGroupEgress],
                                Resource=[
                                    Sub(
                                        "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/${Group}",
                                        Group=default_group,
                                    )
                                ],
                            ),
                            Statement(
                                Effect=Allow,
                                Action=[logs_actions.CreateLogStream, logs_actions.PutLogEvents],
                                Resource=[GetAtt(group_log, "Arn")],
                            ),
                        ],
                    ),
                )
            ],
            Tags=tags(config),
        )
    )


def _restrict_default_sg_function(template: Template, config: EnvironmentConfig, function_name: str, role: iam.Role,
                                  group_log) -> awslambda.Function:
    function = template.add_resource(
        awslambda.Function(
            "RestrictDefaultSgFunction",
            FunctionName=function_name,
            Description="Removes every rule of the VPC's default security group (nothing may use it)",
            Runtime="python3.12",
            Handler="index.handler",
            Code=awslambda.Code(ZipFile=RESTRICT_DEFAULT_SG_CODE),
            Role=GetAtt(role, "Arn"),
            Timeout=60,
            MemorySize=128,
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(group_log)),
            Tags=tags(config, function_name),
        )
    )
    skip_checkov(function, "CKV_AWS_116", "invoked synchronously by CloudFormation, which reports any failure")
    skip_checkov(function, "CKV_AWS_117", "deploy-time helper calling only the EC2 API; no VPC access needed")
    skip_checkov(
        function,
        "CKV_AWS_115",
        "runs once per deploy; a reservation would take from the account's unreserved pool (10 in a new account)",
    )
    return function


def _rule(protocol: str, port: int, description: str, **target) -> ec2.SecurityGroupRule:
    return ec2.SecurityGroupRule(IpProtocol=protocol, FromPort=port, ToPort=port, Description=description, **target)


def _security_group(template, config, logical_id, purpose, description, ingress, egress) -> ec2.SecurityGroup:
    properties = dict(
        GroupDescription=description,
        # No GroupName: a description change replaces the group, and a custom name would make
        # that ordinary change fail on the name clash. The Name tag carries the name instead.
        VpcId=Ref("Vpc"),
        SecurityGroupEgress=egress,
        Tags=tags(config, resource_name(config, purpose)),
    )
    if ingress:
        properties["SecurityGroupIngress"] = ingress
    return template.add_resource(ec2.SecurityGroup(logical_id, **properties))


def _security_groups(template: Template, config: EnvironmentConfig, vpc: ec2.VPC) -> dict[str, ec2.SecurityGroup]:
    port = config.compute.ecs.container_port
    ingress = [_rule("tcp", HTTPS, "HTTPS from the internet", CidrIp=ANYWHERE)]
    if config.compute.http_redirect:
        ingress.append(_rule("tcp", HTTP, "HTTP from the internet, answered only with a redirect to HTTPS", CidrIp=ANYWHERE))
    alb = _security_group(
        template, config, "AlbSecurityGroup", "alb-sg",
        "Load balancer: HTTPS from the internet" + (", HTTP only to redirect" if config.compute.http_redirect else ""),
        ingress,
        [NO_TRAFFIC_EGRESS],
    )
    if config.compute.http_redirect:
        skip_checkov(alb, "CKV_AWS_260", "dev only: port 80 answers with a redirect to HTTPS (compute.http_redirect)")
    app = _security_group(
        template, config, "AppSecurityGroup", "app-sg", "App tasks: container port from the load balancer only", [],
        [_rule("tcp", HTTPS, "HTTPS to AWS APIs (endpoints, gateway endpoints, NAT)", CidrIp=ANYWHERE)],
    )
    function = _security_group(
        template, config, "LambdaSecurityGroup", "lambda-sg", "Lambda functions: no inbound", [],
        [_rule("tcp", HTTPS, "HTTPS to AWS APIs (endpoints, gateway endpoints, NAT)", CidrIp=ANYWHERE)],
    )
    # No function reaches PostgreSQL (the hosted rotation Lambda was the only one, gone with
    # RDS-managed rotation), so only the app tasks are admitted. The description still names
    # Lambda because changing a group's description replaces the group, and the data stack
    # imports its id.
    database = _security_group(
        template, config, "DatabaseSecurityGroup", "db-sg", "Aurora: PostgreSQL from app tasks and Lambda only", [],
        [NO_TRAFFIC_EGRESS],
    )
    endpoint = _security_group(
        template, config, "EndpointSecurityGroup", "endpoint-sg", "Interface endpoints: HTTPS from the VPC",
        [_rule("tcp", HTTPS, "HTTPS from inside the VPC", CidrIp=config.network.cidr)],
        [NO_TRAFFIC_EGRESS],
    )
    _link(template, "AlbToApp", alb, app, port, "load balancer to app tasks (traffic and health checks)")
    _link(template, "AppToDatabase", app, database, POSTGRES, "app tasks to PostgreSQL")
    return {"Alb": alb, "App": app, "Lambda": function, "Database": database, "Endpoint": endpoint}


def _link(template: Template, name: str, source: ec2.SecurityGroup, target: ec2.SecurityGroup, port: int, what: str) -> None:
    """Egress on the source group and ingress on the target group for one TCP port."""
    template.add_resource(
        ec2.SecurityGroupEgress(
            f"{name}Egress", GroupId=Ref(source), IpProtocol="tcp", FromPort=port, ToPort=port,
            DestinationSecurityGroupId=Ref(target), Description=what,
        )
    )
    template.add_resource(
        ec2.SecurityGroupIngress(
            f"{name}Ingress", GroupId=Ref(target), IpProtocol="tcp", FromPort=port, ToPort=port,
            SourceSecurityGroupId=Ref(source), Description=what,
        )
    )


def _gateway_endpoints(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, tables: list[ec2.RouteTable]) -> None:
    for service in GATEWAY_ENDPOINT_SERVICES:
        template.add_resource(
            ec2.VPCEndpoint(
                f"{_camel(service)}GatewayEndpoint",
                VpcId=Ref(vpc),
                VpcEndpointType="Gateway",
                ServiceName=Sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                RouteTableIds=[Ref(table) for table in tables],
                Tags=tags(config, resource_name(config, service, "endpoint")),
            )
        )


def _interface_endpoints(
    template: Template, config: EnvironmentConfig, vpc: ec2.VPC, private: list[ec2.Subnet], group: ec2.SecurityGroup
) -> None:
    for service in INTERFACE_ENDPOINT_SERVICES:
        template.add_resource(
            ec2.VPCEndpoint(
                f"{_camel(service)}InterfaceEndpoint",
                VpcId=Ref(vpc),
                VpcEndpointType="Interface",
                ServiceName=Sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                PrivateDnsEnabled=True,
                SubnetIds=[Ref(subnet) for subnet in private],
                SecurityGroupIds=[Ref(group)],
                Tags=tags(config, resource_name(config, service.replace(".", "-"), "endpoint")),
            )
        )


def _network_logs_key(template: Template, config: EnvironmentConfig):
    """The network's own key for its log groups (it deploys before the security layer)."""
    return kms_key(
        template,
        config,
        "NetworkLogsKey",
        "network-logs",
        [
            logs_service_statement(),
        ],
    )


def _flow_logs(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, logs_key) -> None:
    group = log_group(
        template,
        config,
        "FlowLogGroup",
        f"/payments/{config.name}/vpc-flow-logs",
        GetAtt(logs_key, "Arn"),
        retention_days=config.network.flow_log_retention_days,
    )
    role = template.add_resource(
        iam.Role(
            "FlowLogRole",
            AssumeRolePolicyDocument=service_trust(
                "vpc-flow-logs.amazonaws.com",
                # Only flow logs of this account may assume the role (confused deputy).
                Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc-flow-log/*"),
            ),
            Policies=[
                iam.Policy(
                    PolicyName="deliver-flow-logs",
                    PolicyDocument=PolicyDocument(
                        Version="2012-10-17",
                        Statement=[
                            Statement(
                                Effect=Allow,
                                Action=[
                                    logs_actions.CreateLogStream,
                                    logs_actions.DescribeLogStreams,
                                    logs_actions.PutLogEvents,
                                ],
                                Resource=[GetAtt(group, "Arn")],
                            )
                        ],
                    ),
                )
            ],
            Tags=tags(config),
        )
    )
    template.add_resource(
        ec2.FlowLog(
            "VpcFlowLog",
            ResourceId=Ref(vpc),
            ResourceType="VPC",
            TrafficType="ALL",
            LogDestinationType="cloud-watch-logs",
            LogGroupName=Ref(group),
            DeliverLogsPermissionArn=GetAtt(role, "Arn"),
            Tags=tags(config, resource_name(config, "vpc-flow-log")),
        )
    )


def _peering(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, tables: list[ec2.RouteTable]) -> None:
    """Peering to another VPC of the same account and region (CloudFormation accepts such a
    request without a peer role), routed from the private and isolated tiers. The peer side
    adds the return routes in its own stack."""
    peering = config.network.peering
    connection = template.add_resource(
        ec2.VPCPeeringConnection(
            "PeeringConnection",
            VpcId=Ref(vpc),
            PeerVpcId=peering.peer_vpc_id,
            Tags=tags(config, resource_name(config, "peering")),
        )
    )
    for table in tables:
        template.add_resource(
            ec2.Route(
                f"Peering{table.title}Route",
                RouteTableId=Ref(table),
                DestinationCidrBlock=peering.peer_cidr,
                VpcPeeringConnectionId=Ref(connection),
            )
        )


def _joined(resources) -> Join:
    return Join(",", [Ref(resource) for resource in resources])


def _exports(template: Template, config: EnvironmentConfig, vpc: ec2.VPC, subnets, groups) -> None:
    export(template, config, LAYER, "VpcId", Ref(vpc), "VPC id")
    export(template, config, LAYER, "VpcCidr", GetAtt(vpc, "CidrBlock"), "VPC IPv4 CIDR")
    for tier in TIERS:
        export(
            template, config, LAYER, f"{tier.capitalize()}SubnetIds", _joined(subnets[tier]),
            f"{tier} subnet ids, comma-separated, in AZ order",
        )
    for name, group in groups.items():
        export(template, config, LAYER, f"{name}SecurityGroupId", Ref(group), f"{name} security group id")
